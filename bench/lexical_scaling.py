"""What keeping BM25 fresh costs a new process (each ``arag ask``) as the collection grows.

Run: ``.venv/bin/python bench/lexical_scaling.py [--sizes 100000,300000] [--ids-only 1000000]``
Writes ``bench/results/lexical_scaling.json`` and prints a Markdown table.

Hybrid search (the default) ranks with BM25 beside the embeddings, and its index must match
the collection. A process knows that it does either by listing every chunk id (the fingerprint
of the sorted ids names the index on disk) or, where nothing was written since the last
listing, from Chroma's write stamp and the record that listing left. For each size, new
processes time their first search three ways, in the same run:

- **listed, pages of 50k**: listing every id in pages of 50,000, as the app did until now;
- **listed, one page**: listing them in one page (Chroma's cost grows with the offset);
- **stamp**: the write stamp matches the recorded listing, so the index is loaded without listing.

and a warm search (median of 50 questions in a process that has searched once). Chunks carry
synthetic vectors and texts of six sentences drawn from the dev-250 paragraphs, written through
Chroma directly (what ingestion would write, without the encoder's time). ``--ids-only`` sizes
hold ids and vectors alone (writing a million texts takes Chroma over 40 minutes here) and
measure only the listing, which does not read the texts.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hotpotqa import REPO, print_table, write_report  # noqa: E402
from scaling import DIM, topic_centres, vectors  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "hotpotqa" / "dev-250.jsonl"
WRITE_STEP = 5000
REPEATS = 3


def chunk_ids(start: int, n: int) -> list[str]:
    # Shaped like ingestion's ids (32 hex digits), which is what listing and fingerprinting handle.
    return [hashlib.sha256(str(i).encode()).hexdigest()[:32] for i in range(start, start + n)]


def write_collection(work_dir: Path, size: int, with_text: bool) -> None:
    from tqdm import tqdm

    from arag.index.store import ChunkStore
    from arag.settings import Settings

    store = ChunkStore(Settings(data_dir=work_dir, collection="lexical"), model_id="synthetic@384", dim=DIM)
    rows = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]
    sentences = [s for row in rows for p in row["contexts"] for s in p["paragraph_text"].split(". ") if s]
    pick, rng = random.Random(0), np.random.default_rng(7)
    centres = topic_centres(rng)
    with tqdm(total=size, desc=f"write {size:,}{'' if with_text else ' (ids only)'}", unit="chunk") as bar:
        for start in range(0, size, WRITE_STEP):
            n = min(WRITE_STEP, size - start)
            batch = {"ids": chunk_ids(start, n), "embeddings": vectors(rng, centres, n)}
            if with_text:
                batch["documents"] = [". ".join(pick.choice(sentences) for _ in range(6)) for _ in range(n)]
                batch["metadatas"] = [{"title": f"Doc {(start + i) // 10}", "source": f"doc{(start + i) // 10}"} for i in range(n)]
            store.collection.add(**batch)
            bar.update(n)


def child(work_dir: Path, mode: str) -> dict:
    """Run in a new process: the first search (or listing) and, for ``warm``, later searches."""
    from arag.index import lexical
    from arag.index.store import ChunkStore
    from arag.settings import Settings

    questions = [json.loads(line)["question_text"] for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]
    store = ChunkStore(Settings(data_dir=work_dir, collection="lexical"), model_id="synthetic@384", dim=DIM)
    store.collection  # opening the collection is not BM25's cost
    index = lexical.LexicalIndex(store)
    if mode == "list-50k":
        lexical.ID_PAGE = 50_000
    if mode in ("list-50k", "list-1page"):
        (index.path / lexical.LISTING).unlink(missing_ok=True)
    if mode == "ids-50k":
        lexical.ID_PAGE = 50_000
    if mode.startswith("ids-"):
        started = time.perf_counter()
        ids = index._list_ids()
        return {"seconds": time.perf_counter() - started, "ids": len(ids)}
    started = time.perf_counter()
    index.search(questions[0], k=20)
    first = time.perf_counter() - started
    warm = []
    if mode == "warm":
        for question in questions[1:51]:
            started = time.perf_counter()
            index.search(question, k=20)
            warm.append((time.perf_counter() - started) * 1000)
    return {"seconds": first, "listings": index.listings, "builds": index.builds,
            "warm_median_ms": statistics.median(warm) if warm else None}


def in_new_process(work_dir: Path, mode: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", mode, "--work-dir", str(work_dir)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,300000", help="collection sizes with texts")
    parser.add_argument("--ids-only", default="1000000", help="sizes with ids and vectors only: listing measured alone")
    parser.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "arag-bench-lexical")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "lexical_scaling.json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.work_dir, args.child)))
        return

    rows = []
    plan = [(int(s), True) for s in args.sizes.split(",") if s] + [(int(s), False) for s in args.ids_only.split(",") if s]
    shutil.rmtree(args.work_dir, ignore_errors=True)
    for size, with_text in plan:
        # A folder of its own for each: Chroma keeps a client per path open in this process.
        work_dir = args.work_dir / f"{size}-{'texts' if with_text else 'ids'}"
        write_collection(work_dir, size, with_text)
        row: dict = {"chunks": size, "texts": with_text}
        if with_text:
            built = in_new_process(work_dir, "build")
            assert built["builds"] == 1, built
            row["build_s"] = round(built["seconds"], 2)
            for mode in ("list-50k", "list-1page", "stamp"):
                runs = [in_new_process(work_dir, mode) for _ in range(REPEATS)]
                assert all(r["builds"] == 0 and r["listings"] == (0 if mode == "stamp" else 1) for r in runs), runs
                row[f"first_search_{mode}_s"] = round(statistics.median(r["seconds"] for r in runs), 3)
            row["warm_search_median_ms"] = round(in_new_process(work_dir, "warm")["warm_median_ms"], 2)
        for mode in ("ids-50k", "ids-1page"):
            runs = [in_new_process(work_dir, mode) for _ in range(REPEATS if with_text else 2)]
            assert all(r["ids"] == size for r in runs), runs
            row[f"list_{mode[4:]}_s"] = round(statistics.median(r["seconds"] for r in runs), 2)
        rows.append(row)
        print(json.dumps(row), file=sys.stderr)
        shutil.rmtree(work_dir, ignore_errors=True)

    write_report(args.out, repeats=REPEATS, rows=rows)
    print_table(["chunks", "list ids, pages of 50k s", "list ids, one page s", "first search: listed (50k pages) s",
                 "listed (one page) s", "stamp, no listing s", "warm search median ms", "index build s"],
                [[f"{r['chunks']:,}{'' if r['texts'] else ' (ids only)'}", r["list_50k_s"], r["list_1page_s"],
                  r.get("first_search_list-50k_s", "–"), r.get("first_search_list-1page_s", "–"),
                  r.get("first_search_stamp_s", "–"), r.get("warm_search_median_ms", "–"), r.get("build_s", "–")]
                 for r in rows])


if __name__ == "__main__":
    main()
