"""How the index scales: writing and querying Chroma from 1k to 1M chunks, against exact NumPy search.

Run: ``.venv/bin/python bench/scaling.py [--sizes 1000,10000,100000,1000000] [--queries 200]``
Writes ``bench/results/scaling.json`` and prints a Markdown table.

Real chunks cost the embedding model's time (see ``bench/ask_latency.py`` and
``bench/trained_retrieval.py`` for real ingestion); what grows with the collection is the
store. So the chunks here carry synthetic 384-d vectors shaped like sentence embeddings
(unit vectors drawn around 2,000 topic centres, so neighbours exist as they do in real
text), a short text and metadata, and go through the app's own :class:`ChunkStore`:

- **write**: chunks a second of ``ChunkStore.upsert`` while the collection grows to each
  size, and the time to upsert the last 1,000 chunks again unchanged (what re-ingesting an
  unchanged file would cost if it were not skipped before the store). From
  ``--vectors-only-from`` (1M) on, chunks are written as ids and vectors alone: Chroma's
  full-text index of the text dominates writing, and that size measures the vector index;
- **query**: top-10 latency (median, p95) of Chroma's HNSW index and of brute-force NumPy
  search over the same vectors, and Chroma's recall@10 against the exact answer. Queries are
  perturbed copies of stored vectors, as questions sit near the chunks that answer them.
  ``--search-efs 64,128,256`` repeats the queries at each search breadth (Chroma's ``ef_search``,
  which can change after the index is built but takes effect only in a process that opens the
  collection afterwards, so each breadth is queried by a new process): what recall costs in
  milliseconds at each size.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hotpotqa import REPO, percentile, print_table, write_report  # noqa: E402

DIM = 384
TOPICS = 2000
CHUNK = 5000


def topic_centres(rng: np.random.Generator) -> np.ndarray:
    centres = rng.normal(0, 1, (TOPICS, DIM)).astype(np.float32)
    return centres / np.linalg.norm(centres, axis=1, keepdims=True)


def vectors(rng: np.random.Generator, centres: np.ndarray, n: int) -> np.ndarray:
    topic = rng.integers(0, len(centres), n)
    v = centres[topic] + rng.normal(0, 0.045, (n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def near_queries(rng: np.random.Generator, matrix: np.ndarray, n: int) -> np.ndarray:
    """Perturbed copies of stored vectors: questions sit near the chunks that answer them."""
    queries = matrix[rng.integers(0, len(matrix), n)] + rng.normal(0, 0.03, (n, DIM)).astype(np.float32)
    return queries / np.linalg.norm(queries, axis=1, keepdims=True)


def chroma_recall(store, queries: np.ndarray, exact: list[set[str]]) -> tuple[list[float], list[float]]:
    """Milliseconds and recall@10 of each top-10 query against the exact top 10."""
    millis, recalls = [], []
    for q, truth in zip(queries, exact):
        started = time.perf_counter()
        hits = store.query(q, 10)
        millis.append((time.perf_counter() - started) * 1000)
        recalls.append(len(truth & {h["id"] for h in hits}) / 10)
    return millis, recalls


def recall_in_new_process(work_dir: Path, queries: np.ndarray, exact: list[set[str]]) -> tuple[list[float], list[float]]:
    """:func:`chroma_recall` run by a new process, which opens the collection with its current configuration."""
    import subprocess

    job = work_dir / "queries.npz"
    np.savez(job, queries=queries, exact=np.array([sorted(t) for t in exact]))
    out = subprocess.run([sys.executable, __file__, "--query-job", str(job), "--work-dir", str(work_dir)],
                         check=True, capture_output=True, text=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    return result["ms"], result["recalls"]


def run_query_job(job: Path, work_dir: Path) -> None:
    from arag.index.store import ChunkStore
    from arag.settings import Settings

    data = np.load(job)
    store = ChunkStore(Settings(data_dir=work_dir, collection="scaling"), model_id="synthetic@384", dim=DIM)
    store.query(data["queries"][0], 10)  # the index is read from disk on first use, not timed
    ms, recalls = chroma_recall(store, data["queries"], [set(t) for t in data["exact"]])
    print(json.dumps({"ms": ms, "recalls": recalls}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000,1000000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--vectors-only-from", type=int, default=1_000_000,
                        help="from this size on, write ids and vectors without text and metadata (Chroma's full-text "
                        "index of the text is what makes writing slow; 1M chunks with text take over 40 minutes here)")
    parser.add_argument("--search-efs", default="", help="search breadths to measure at each size (default: the app's)")
    parser.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "arag-bench-scaling")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "scaling.json")
    parser.add_argument("--query-job", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.query_job:
        return run_query_job(args.query_job, args.work_dir)

    import shutil

    from tqdm import tqdm

    from arag.index.catalog import directory_mb
    from arag.index.store import ChunkRecord, ChunkStore
    from arag.settings import Settings

    sizes = sorted(int(s) for s in args.sizes.split(","))
    shutil.rmtree(args.work_dir, ignore_errors=True)
    store = ChunkStore(Settings(data_dir=args.work_dir, collection="scaling"), model_id="synthetic@384", dim=DIM)
    rng = np.random.default_rng(7)
    centres = topic_centres(rng)
    matrix = np.zeros((sizes[-1], DIM), dtype=np.float32)
    rows, written = [], 0
    for size in sizes:
        started = time.perf_counter()
        with tqdm(total=size - written, desc=f"write to {size:,}", unit="chunk") as bar:
            while written < size:
                n = min(CHUNK, size - written)
                block = vectors(rng, centres, n)
                matrix[written : written + n] = block
                if size >= args.vectors_only_from:
                    store.collection.add(ids=[f"c{written + i}" for i in range(n)], embeddings=block)
                else:
                    store.upsert([ChunkRecord(f"c{written + i}", f"synthetic chunk {written + i}",
                                              {"source": f"doc{(written + i) // 10}", "title": f"Doc {(written + i) // 10}"}, v)
                                  for i, v in enumerate(block)])
                written += n
                bar.update(n)
        write_rate = (size - (rows[-1]["chunks"] if rows else 0)) / (time.perf_counter() - started)
        started = time.perf_counter()
        if size >= args.vectors_only_from:
            store.collection.upsert(ids=[f"c{i}" for i in range(size - 1000, size)], embeddings=matrix[size - 1000 : size])
        else:
            store.upsert([ChunkRecord(f"c{i}", f"synthetic chunk {i}", {"source": f"doc{i // 10}", "title": f"Doc {i // 10}"},
                                      matrix[i]) for i in range(size - 1000, size)])
        unchanged_s = time.perf_counter() - started

        view = matrix[:size]
        queries = near_queries(rng, view, args.queries)
        exact, exact_ms = [], []
        for q in queries:
            t0 = time.perf_counter()
            scores = view @ q
            top = np.argpartition(-scores, 10)[:10]
            top = top[np.argsort(-scores[top])]
            exact_ms.append((time.perf_counter() - t0) * 1000)
            exact.append({f"c{i}" for i in top})
        disk_mb = directory_mb(args.work_dir)
        for search_ef in [int(e) for e in args.search_efs.split(",") if e] or [None]:
            if search_ef is None:
                hnsw_ms, recalls = chroma_recall(store, queries, exact)
            else:
                store.collection.modify(configuration={"hnsw": {"ef_search": search_ef}})
                hnsw_ms, recalls = recall_in_new_process(args.work_dir, queries, exact)
            row = {
                "chunks": size, "vectors_only": size >= args.vectors_only_from,
                "search_ef": search_ef or store.collection.configuration_json["hnsw"]["ef_search"],
                "write_chunks_per_s": round(write_rate, 1), "upsert_1000_unchanged_s": round(unchanged_s, 2),
                "chroma_median_ms": round(statistics.median(hnsw_ms), 2), "chroma_p95_ms": round(percentile(hnsw_ms, 0.95), 2),
                "numpy_median_ms": round(statistics.median(exact_ms), 2), "numpy_p95_ms": round(percentile(exact_ms, 0.95), 2),
                "chroma_recall@10": round(statistics.mean(recalls), 4), "disk_mb": disk_mb,
            }
            rows.append(row)
            print(json.dumps(row), file=sys.stderr)

    write_report(args.out, dim=DIM, queries=args.queries, rows=rows)
    print_table(["chunks", "search ef", "write chunks/s", "re-upsert 1,000 unchanged s", "Chroma top-10 median ms", "p95 ms",
                 "NumPy exact median ms", "p95 ms", "Chroma recall@10", "disk MiB"],
                [[f"{r['chunks']:,}{' (vectors only)' if r['vectors_only'] else ''}", r["search_ef"], f"{r['write_chunks_per_s']:,.0f}",
                  r["upsert_1000_unchanged_s"], r["chroma_median_ms"], r["chroma_p95_ms"], r["numpy_median_ms"],
                  r["numpy_p95_ms"], f"{r['chroma_recall@10']:.3f}", f"{r['disk_mb']:,.0f}"] for r in rows])

if __name__ == "__main__":
    main()
