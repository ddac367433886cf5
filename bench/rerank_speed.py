"""Seconds to score 30 candidates with each relevance scorer, on an otherwise idle CPU.

Run: ``.venv/bin/python bench/rerank_speed.py [--queries 20] [--reranker DIR] [--codec int8]``
Writes ``bench/results/rerank_speed.json`` and prints a Markdown table.

The candidates are real HotpotQA paragraphs: for each of the first ``--queries`` questions of
dev-250, its own 10 paragraphs and those of the next two questions (30, as the rerank node
sees after hybrid retrieval). Each scorer is warmed up once, then timed per question;
``multi`` costs the same encoder pass as late interaction plus the lexical part.

The late-interaction scorers are timed twice: encoding every candidate at question time, and
reading the candidates' token vectors from a token-vector store filled as ingestion fills it
(``arag.index.token_store``): int8 codes, or the codec ``--codec`` names
(:func:`arag.index.token_store.codec_options`, e.g. ``residual-128x2``). With the default 20
questions the store's 220 texts bring enough tokens for a learnt codec's codebook (the
report's ``codebook`` says whether one was fitted); it is fitted on the very texts it scores,
so the score differences below flatter it against a collection that grows after its fit.
For the stored variant the script also reports what quantisation changes: the largest score
difference and how many questions' candidate order differs, plus the store's size per token.
The quality of the scorers is measured by ``bench/trained_retrieval.py``; this script is their
speed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hotpotqa import REPO, percentile, print_table, write_report  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "hotpotqa" / "dev-250.jsonl")
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--reranker", type=Path, help="a trained reranker directory (arag train-reranker) to time too")
    parser.add_argument("--codec", default="int8", help="how the store keeps token vectors: int8, pq-48, residual-128x2…")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "rerank_speed.json")
    args = parser.parse_args()

    import tempfile

    import numpy as np

    from arag.embeddings.embedder import Embedder, packaged_minilm_dir
    from arag.index.lexical import query_terms
    from arag.index.token_store import TokenVectorStore, codec_options, text_key
    from arag.relevance.scorers import CrossEncoderScorer, LateInteractionScorer, MultiScorer, SpladeScorer, idf_weights

    rows = [json.loads(line) for line in args.data.read_text(encoding="utf-8").splitlines() if line.strip()]
    paragraphs = [[f"{c['title']}\n{c['paragraph_text']}" for c in row["contexts"]] for row in rows]
    cases = [(rows[n]["question_text"], paragraphs[n] + paragraphs[n + 1] + paragraphs[n + 2])
             for n in range(min(args.queries, len(rows) - 2))]

    embedder = Embedder(packaged_minilm_dir())
    idf = idf_weights([p for group in paragraphs for p in group], query_terms)
    # Fill a token-vector store the way ingestion does: one encoder pass gives both representations.
    work = tempfile.TemporaryDirectory()
    tokens = TokenVectorStore(Path(work.name) / "tokens.sqlite", embedder.model_id, **codec_options(args.codec))
    texts = sorted({p for _, candidates in cases for p in candidates})
    started = time.perf_counter()
    _, token_vectors = embedder.encode(texts, tokens=True)
    ingest_seconds = time.perf_counter() - started
    tokens.put({text_key(t): v for t, v in zip(texts, token_vectors)})
    stored_tokens = sum(len(v) for v in token_vectors)
    store_bytes = tokens.disk_bytes()

    scorers = {"late interaction (MiniLM token vectors)": LateInteractionScorer(embedder),
               "late interaction, stored token vectors": LateInteractionScorer(embedder, tokens),
               "multi (dense + lexical + multi-vector)": MultiScorer(embedder, idf),
               "multi, stored token vectors": MultiScorer(embedder, idf, tokens=tokens),
               "SPLADE-tiny": SpladeScorer()}
    if args.reranker:
        scorers["trained cross-encoder (int8 ONNX)"] = CrossEncoderScorer(args.reranker)

    results, scores = [], {}
    for name, scorer in scorers.items():
        scorer.score(*cases[0])
        seconds, scores[name] = [], []
        for query, candidates in cases:
            started = time.perf_counter()
            scores[name].append(scorer.score(query, candidates))
            seconds.append(time.perf_counter() - started)
        median = statistics.median(seconds)
        results.append({"scorer": name, "candidates": len(cases[0][1]), "median_s": round(median, 3),
                        "p95_s": round(percentile(seconds, 0.95), 3), "pairs_per_s": round(len(cases[0][1]) / median, 1)})

    quantisation = {}
    for encoded, stored in (("late interaction (MiniLM token vectors)", "late interaction, stored token vectors"),
                            ("multi (dense + lexical + multi-vector)", "multi, stored token vectors")):
        pairs = list(zip(scores[encoded], scores[stored]))
        quantisation[stored] = {
            "max_abs_score_difference": float(max(np.abs(a - b).max() for a, b in pairs)),
            "questions_with_another_order": sum(np.argsort(-a, kind="stable").tolist() != np.argsort(-b, kind="stable").tolist()
                                                for a, b in pairs),
        }
    store = {"codec": args.codec, "codebook": tokens.fitted_codec, "texts": len(texts), "tokens": stored_tokens,
             "bytes_per_token": round(store_bytes / stored_tokens, 1),
             "ingest_encoder_s_per_text": round(ingest_seconds / len(texts), 4)}
    write_report(args.out, queries=len(cases), results=results, token_store=store, quantisation=quantisation)
    print_table(["scorer", "30 candidates, median s", "p95 s", "pairs/s"],
                [[r["scorer"], r["median_s"], r["p95_s"], r["pairs_per_s"]] for r in results])
    print(f"\ntoken-vector store: {store}\nquantisation: {quantisation}")

if __name__ == "__main__":
    main()
