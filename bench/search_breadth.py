"""Chroma's search breadth (``ARAG_HNSW_SEARCH_EF``): recall@10 and latency for a few values.

Run: ``.venv/bin/python bench/search_breadth.py [--chunks 30000] [--values 10,64,200] [--builds 2]``
Writes ``bench/results/search_breadth.json`` and prints a Markdown table.

The breadth is fixed when a collection is created, so each value gets its own collections
(``--builds`` of them, as HNSW construction varies from build to build), filled through the
app's :class:`ChunkStore` with the synthetic vectors of ``bench/scaling.py``, and queried with
200 perturbed copies of stored vectors against exact NumPy search.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hotpotqa import REPO, percentile, print_table, write_report  # noqa: E402
from scaling import CHUNK, DIM, chroma_recall, near_queries, topic_centres, vectors  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=30_000)
    parser.add_argument("--values", default="10,64,200")
    parser.add_argument("--builds", type=int, default=2)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "search_breadth.json")
    args = parser.parse_args()

    from arag.index.store import ChunkStore
    from arag.settings import Settings

    rng = np.random.default_rng(7)
    matrix = vectors(rng, topic_centres(rng), args.chunks)
    queries = near_queries(rng, matrix, args.queries)
    exact = [{f"c{i}" for i in np.argsort(-(matrix @ q))[:10]} for q in queries]

    rows = []
    for value in (int(v) for v in args.values.split(",")):
        recalls, millis = [], []
        for build in range(args.builds):
            with tempfile.TemporaryDirectory() as work:
                settings = Settings(data_dir=Path(work), collection="breadth", hnsw_search_ef=value)
                store = ChunkStore(settings, model_id="synthetic@384", dim=DIM)
                for start in range(0, args.chunks, CHUNK):
                    block = range(start, min(start + CHUNK, args.chunks))
                    store.collection.add(ids=[f"c{i}" for i in block], embeddings=matrix[block.start : block.stop])
                build_ms, build_recalls = chroma_recall(store, queries, exact)
                millis += build_ms
                recalls += build_recalls
        rows.append({"search_ef": value, "builds": args.builds, "recall@10": round(statistics.mean(recalls), 4),
                     "median_ms": round(statistics.median(millis), 2), "p95_ms": round(percentile(millis, 0.95), 2)})
        print(rows[-1], file=sys.stderr)
    write_report(args.out, chunks=args.chunks, queries=args.queries, rows=rows)
    print_table(["search breadth", "recall@10", "median ms", "p95 ms"],
                [[r["search_ef"], f"{r['recall@10']:.3f}", r["median_ms"], r["p95_ms"]] for r in rows])


if __name__ == "__main__":
    main()
