"""Retrieval quality and latency of dense, BM25 and hybrid retrieval on HotpotQA questions.

Run: ``.venv/bin/python bench/retrieval_quality.py [--data ../shared/data/hotpotqa/dev-250.jsonl]``
Writes ``bench/results/retrieval_quality.json`` and prints a Markdown table.

The paragraphs of all questions, pooled and deduplicated by title (2,495 for dev-250), are
written as one JSONL file of ``{id, title, text}`` records and ingested by the ordinary
:class:`Ingestor`, so they are chunked, embedded and indexed exactly like user documents.
Each question is a query; its supporting paragraphs are the relevant ones. A chunk stands
for its paragraph: a ranking of chunks becomes a ranking of distinct paragraphs (titles), so
recall@k is the share of the supporting paragraphs among the first k of them, and nDCG@10
uses binary gains. Each retriever returns its 20 best chunks.

The ingested collection lives in ``--work-dir`` and later runs reuse it (re-ingesting an
unchanged file embeds nothing); the BM25 index is deleted first so its build is timed.
Latencies are per question, in one process, with the models loaded and indexes warm.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hotpotqa import REPO, ingest_pool, load_questions, machine, percentile  # noqa: E402

from arag.evaluation.metrics import ndcg_at, recall_at  # noqa: E402

#: Chunks each retriever returns; about 19 distinct paragraphs, enough for the cut-offs below.
DEPTH = 20
CUTOFFS = (2, 10)


def evaluate(name: str, search, questions: list[dict]) -> dict:
    """Metrics and per-question latency of ``search(question) -> titles, best first``."""
    sums = {f"recall@{k}": 0.0 for k in CUTOFFS} | {"ndcg@10": 0.0}
    millis = []
    for q in questions:
        started = time.perf_counter()
        titles = search(q["question"])
        millis.append((time.perf_counter() - started) * 1000)
        relevant = set(q["relevant"])
        for k in CUTOFFS:
            sums[f"recall@{k}"] += recall_at(titles, relevant, k)
        sums["ndcg@10"] += ndcg_at(titles, relevant)
    metrics = {key: round(value / len(questions), 3) for key, value in sums.items()}
    return {
        "retriever": name, **metrics,
        "median_ms": round(statistics.median(millis), 1), "p95_ms": round(percentile(millis, 0.95), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "hotpotqa" / "dev-250.jsonl")
    parser.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "arag-bench-retrieval-quality",
                        help="where the pooled corpus and its index are kept between runs")
    parser.add_argument("--fresh", action="store_true", help="delete --work-dir first and ingest again")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "retrieval_quality.json")
    args = parser.parse_args()

    from arag.index.lexical import LexicalIndex
    from arag.retrieval.retriever import DenseRetriever, HybridRetriever

    questions, paragraphs = load_questions(args.data)
    ingestor = ingest_pool(args.data, args.work_dir, fresh=args.fresh)
    settings, store, embedder = ingestor.settings, ingestor.store, ingestor.embedder
    titles = {cid: meta["title"] for cid, meta in store.iter_metadata()}

    shutil.rmtree(settings.data_dir / "lexical", ignore_errors=True)
    lexical = LexicalIndex(store)
    started = time.perf_counter()
    lexical.search("warm-up", k=1)
    build_s = time.perf_counter() - started
    started = time.perf_counter()
    LexicalIndex(store).search("warm-up", k=1)
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    listing = lexical._list_ids()
    listing_ms = (time.perf_counter() - started) * 1000
    embedder.embed_queries(["warm up the encoder"])

    dense = DenseRetriever(embedder, store, settings.candidates, settings.rrf_k)
    hybrid = HybridRetriever(embedder, store, lexical, settings.candidates, settings.rrf_k)
    rows = [
        evaluate("dense (all-MiniLM-L6-v2, cosine)", lambda q: [c["title"] for c in dense.search(q, DEPTH)], questions),
        evaluate("BM25 (bm25s, English stopwords, Snowball stemmer)",
                 lambda q: [titles[cid] for cid, _ in lexical.search(q, DEPTH)], questions),
        evaluate(f"hybrid (RRF k={settings.rrf_k}, {settings.candidates} candidates each)",
                 lambda q: [c["title"] for c in hybrid.search(q, DEPTH)], questions),
    ]
    out = {
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d"),
        "data": args.data.name,
        "questions": len(questions),
        "paragraphs": len(paragraphs),
        "chunks": store.count(),
        "depth": DEPTH,
        "candidates": settings.candidates,
        "rrf_k": settings.rrf_k,
        "bm25_build_s": round(build_s, 2),
        "bm25_load_s": round(load_s, 2),
        "id_listing_ms": round(listing_ms, 1),
        "id_listing_chunks": len(listing),
        "results": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n")

    print(f"{out['questions']} questions, {out['paragraphs']} paragraphs in {out['chunks']} chunks; "
          f"machine: {out['machine']}\n")
    print("| retriever | recall@2 | recall@10 | nDCG@10 | median ms/query | p95 ms/query |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['retriever']} | {r['recall@2']:.3f} | {r['recall@10']:.3f} | {r['ndcg@10']:.3f} | {r['median_ms']} | {r['p95_ms']} |")
    print(f"\nBM25 index: built in {out['bm25_build_s']} s, loaded by a second instance in {out['bm25_load_s']} s; "
          f"listing the {len(listing)} chunk ids for the fingerprint takes {out['id_listing_ms']} ms.")


if __name__ == "__main__":
    main()
