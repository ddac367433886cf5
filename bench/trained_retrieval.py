"""Locally trained embedder and reranker on HotpotQA: retrieval, reranking and grading, side by side.

Run: ``.venv/bin/python bench/trained_retrieval.py [--synthetic 900] [--max-pairs 2500]``
Writes ``bench/results/trained_retrieval.json`` and prints the Markdown tables the docs quote.

Protocol. The paragraphs of all questions in ``--data`` (dev-250: 2,495, deduplicated by
title) are ingested like user documents (``bench/hotpotqa.py``). Training pairs come from
that corpus alone, exactly as ``arag train-embedder`` / ``arag train-reranker`` make them:
queries written by the local LLM for ``--synthetic`` sampled paragraphs (E5 manner) plus
unsupervised pairs (inverse cloze, crops, titles), hard negatives mined with BM25 and MiniLM,
a held-out split by document. No question of the dataset is seen before evaluation. The
questions are then the queries and their supporting paragraphs the relevant ones:

1. Retrieval (top 10 of the whole pool): BM25, base MiniLM, the trained embedder, SPLADE-tiny,
   and reciprocal-rank fusions of them.
2. Reranking the top 30 of the best fusion with each scorer: late interaction and the
   BGE-M3-style combination of dense, lexical and multi-vector scores (weights learned on the
   held-out pairs), each over the token vectors of the base MiniLM and of the trained embedder,
   read from token-vector stores filled as ingestion fills them; SPLADE; and the trained
   cross-encoder (``--no-cross-encoder`` leaves it out, saving its half hour of training).
3. Link expansion (``relevance.links``) on top of each reranker: a candidate named by one of the
   two most relevant candidates gains relevance, with a weight fitted per scorer on two-hop pairs
   made from held-out documents of the corpus (``training.pairs.bridge_pairs``), never on the
   questions. The nDCG@10 the questions would give at each weight of the grid is printed beside
   it, as a sensitivity check only.
4. Grading: each question's 10 paragraphs (2 supporting, 8 distractors) judged relevant when
   the scorer's calibrated probability is at least 0.5, without and with link expansion. Two
   calibrations, both fitted on held-out candidate lists: absolute (each score on its own,
   classes weighted equally) and set-aware (the score and its gap to the list's best, lists also
   seen without their positive; what the app uses). Lower thresholds are reported too.

Models trained earlier can be reused with ``--reuse`` (the newest versions in the work dir).
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
from hotpotqa import REPO, ingest_pool, load_questions, machine, percentile  # noqa: E402

from arag.evaluation.metrics import ndcg_at, recall_at  # noqa: E402

RERANK_TOP = 30


def metrics_of(rankings: list[list[str]], questions: list[dict]) -> dict:
    n = len(questions)
    return {
        "recall@2": round(sum(recall_at(r, set(q["relevant"]), 2) for r, q in zip(rankings, questions)) / n, 3),
        "recall@10": round(sum(recall_at(r, set(q["relevant"]), 10) for r, q in zip(rankings, questions)) / n, 3),
        "ndcg@10": round(sum(ndcg_at(r, set(q["relevant"])) for r, q in zip(rankings, questions)) / n, 3),
    }


def rrf(*rankings: list[str], k: int = 60) -> list[str]:
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank + 1)
    return sorted(scores, key=lambda i: -scores[i])


def absolute_calibration(candidates, scores):
    """The calibration that reads each score on its own, class-balanced (the app's before set-aware grading)."""
    from arag.relevance.calibration import Calibrator

    labels = [float(c == pair.positive_id) for (pair, ids, _) in candidates for c in ids]
    return Calibrator.fit(np.concatenate(scores), labels)


def dense_search(embedder, matrix: np.ndarray, ids: list[str], queries: list[str], depth: int) -> tuple[list[list[str]], list[float]]:
    out, millis = [], []
    for q in queries:
        started = time.perf_counter()
        vector = embedder.embed_queries([q])[0]
        top = np.argsort(-(matrix @ vector))[:depth]
        millis.append((time.perf_counter() - started) * 1000)
        out.append([ids[j] for j in top])
    return out, millis


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "hotpotqa" / "dev-250.jsonl")
    parser.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "arag-bench-retrieval-quality")
    parser.add_argument("--llm", default="llamacpp:local-1.5b", help="LLM that writes the synthetic queries")
    parser.add_argument("--synthetic", type=int, default=900)
    parser.add_argument("--max-pairs", type=int, default=2500)
    parser.add_argument("--embedder-epochs", type=float, default=1.0)
    parser.add_argument("--reranker-epochs", type=float, default=1.0)
    parser.add_argument("--limit", type=int, help="evaluate on the first N questions only (a quick check)")
    parser.add_argument("--held-out-queries", type=int, default=120, help="held-out pairs used to fit calibrations")
    parser.add_argument("--reuse", action="store_true", help="evaluate the newest trained models instead of training")
    parser.add_argument("--no-cross-encoder", action="store_true",
                        help="neither train nor evaluate the cross-encoder (it costs about 30 min of training on 2 cores)")
    parser.add_argument("--train-only", action="store_true", help="stop after training (evaluate later with --reuse)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "trained_retrieval.json")
    args = parser.parse_args()

    from arag.embeddings.embedder import Embedder, embedding_text
    from arag.index.lexical import query_terms
    from arag.index.token_store import TokenVectorStore
    from arag.model_registry import ModelRegistry
    from arag.relevance.calibration import Calibrator, fit_logistic, threshold_metrics
    from arag.relevance.links import expand_links
    from arag.relevance.scorers import CrossEncoderScorer, LateInteractionScorer, MultiScorer, SpladeScorer, idf_weights
    from arag.runtime.components import Components
    from arag.training.finetune import FineTuneConfig
    from arag.training.link_weights import WEIGHT_GRID
    from arag.training.negatives import dense_matrix
    from arag.training.pairs import passages_from_store, read_pairs
    from arag.training.trainer import (
        PairOptions,
        calibrate,
        fit_links,
        rerank_candidates,
        score_candidates,
        train_embedder,
        train_reranker,
        workspace,
    )

    questions, paragraphs = load_questions(args.data)
    questions = questions[: args.limit] if args.limit else questions
    ingestor = ingest_pool(args.data, args.work_dir)
    settings = ingestor.settings.model_copy(update={"llm": args.llm})
    components = Components(settings, embedder=ingestor.embedder, store=ingestor.store)
    registry = ModelRegistry(settings)
    options = PairOptions(mode="both", synthetic=args.synthetic, max_pairs=args.max_pairs)
    training: dict = {}
    reranker_dir = None
    if args.reuse:
        embedder_dir = registry.versions("embedder")[-1]
        if not args.no_cross_encoder:
            reranker_dir = registry.versions("reranker")[-1]
    else:
        cfg_e = FineTuneConfig(epochs=args.embedder_epochs, batch_size=16, group_size=4, learning_rate=3e-5, save_steps=100)
        embedder_dir = train_embedder(components, options, cfg_e, activate=False).model_dir
        if not args.no_cross_encoder:
            cfg_r = FineTuneConfig(epochs=args.reranker_epochs, batch_size=8, group_size=4, learning_rate=5e-5, save_steps=100)
            reranker_dir = train_reranker(components, options, cfg_r, activate=False).model_dir
    for kind, model_dir in (("embedder", embedder_dir), ("reranker", reranker_dir)):
        if model_dir is None:
            continue
        card = json.loads((model_dir / "card.json").read_text())
        training[kind] = {"model": model_dir.name, "seconds": card["seconds"], "data": card["data"],
                          "config": card["config"], "held_out_metrics": card["metrics"]}
    if args.train_only:
        print(json.dumps(training, indent=2, default=float))
        return

    store, base = components.store, components.embedder
    passages = passages_from_store(store)
    ids = [p.id for p in passages]
    title_of = {p.id: p.title.split(" — ")[0] for p in passages}
    meta = dict(store.iter_metadata())
    texts = [embedding_text(meta[i].get("title", ""), meta[i].get("heading", ""), p.text) for i, p in zip(ids, passages)]
    queries = [q["question"] for q in questions]

    def titles(ranking: list[str]) -> list[str]:
        return [title_of[c] for c in ranking]

    # 1. Retrieval.
    rows, timing = [], {}
    lexical = components.lexical
    started = time.perf_counter()
    bm25 = [[cid for cid, _ in lexical.search(q, 40)] for q in queries]
    timing["bm25_ms"] = round((time.perf_counter() - started) * 1000 / len(queries), 1)
    base_matrix = dense_matrix(store, ids)
    base_dense, base_ms = dense_search(base, base_matrix, ids, queries, 40)
    trained = Embedder(embedder_dir)

    def token_store(embedder, name):
        """Token vectors of every chunk, as ingestion stores them; returns (store, pooled matrix, chunks/s)."""
        tokens = TokenVectorStore(args.work_dir / "token-vectors" / f"{name}.sqlite", embedder.model_id)
        started = time.perf_counter()
        matrix = tokens.fill(texts, embedder, progress=True)
        return tokens, matrix, len(texts) / (time.perf_counter() - started)

    base_tokens, _, _ = token_store(base, "base")
    trained_tokens, trained_matrix, index_rate = token_store(trained, "trained")
    trained_dense, trained_ms = dense_search(trained, trained_matrix, ids, queries, 40)
    splade = SpladeScorer()
    started = time.perf_counter()
    from scipy import sparse

    blocks = []
    for start in range(0, len(texts), 256):
        blocks.append(sparse.csr_matrix(splade.encode(texts[start : start + 256])))
    splade_matrix = sparse.vstack(blocks).tocsr()
    splade_rate = len(texts) / (time.perf_counter() - started)
    splade_ranked, splade_ms = [], []
    for q in queries:
        t0 = time.perf_counter()
        qv = splade.encode([q])[0]
        scores = splade_matrix @ qv
        splade_ranked.append([ids[j] for j in np.argsort(-scores)[:40]])
        splade_ms.append((time.perf_counter() - t0) * 1000)

    fusions = {
        "RRF(BM25, MiniLM)": [rrf(a, b) for a, b in zip(bm25, base_dense)],
        "RRF(BM25, trained)": [rrf(a, b) for a, b in zip(bm25, trained_dense)],
        "RRF(BM25, SPLADE)": [rrf(a, b) for a, b in zip(bm25, splade_ranked)],
        "RRF(BM25, trained, SPLADE)": [rrf(a, b, c) for a, b, c in zip(bm25, trained_dense, splade_ranked)],
        "RRF(BM25, MiniLM, trained, SPLADE)": [rrf(a, b, c, d) for a, b, c, d in zip(bm25, base_dense, trained_dense, splade_ranked)],
    }
    singles = {
        "BM25": (bm25, timing["bm25_ms"]),
        "MiniLM (base, dense)": (base_dense, statistics.median(base_ms)),
        f"trained embedder ({embedder_dir.name}, dense)": (trained_dense, statistics.median(trained_ms)),
        "SPLADE-tiny (sparse)": (splade_ranked, statistics.median(splade_ms)),
    }
    for name, (ranked, ms) in singles.items():
        rows.append({"stage": "retrieval", "method": name, **metrics_of([titles(r) for r in ranked], questions),
                     "median_ms_per_query": round(ms, 1)})
    for name, ranked in fusions.items():
        rows.append({"stage": "retrieval", "method": name, **metrics_of([titles(r) for r in ranked], questions)})
    best_fusion = max((r for r in rows if r["method"] in fusions), key=lambda r: r["ndcg@10"])["method"]
    pool = [r[:RERANK_TOP] for r in fusions[best_fusion]]
    by_id = {p.id: p for p in passages}
    covered = sum(len(set(titles(c)) & set(q["relevant"])) for c, q in zip(pool, questions)) / (2 * len(questions))

    # Calibration and M3 weights from held-out synthetic/unsupervised pairs of the corpus (never the questions).
    # Late interaction and multi read the token vectors stored for each model, as the app does.
    held = read_pairs(workspace(settings) / "pairs-held-out.jsonl")
    held_candidates = rerank_candidates(components, held, args.held_out_queries)
    idf = idf_weights(texts, query_terms)
    token_scorers = {}
    for label, embedder, tokens in (("MiniLM", base, base_tokens), ("trained embedder", trained, trained_tokens)):
        late = LateInteractionScorer(embedder, tokens)
        multi = MultiScorer(embedder, idf, tokens=tokens)
        features = [multi.features(pair.query, cand_texts) for pair, _, cand_texts in held_candidates]
        labels = np.concatenate([[float(c == pair.positive_id) for c in cand_ids] for pair, cand_ids, _ in held_candidates])
        multi.weights, _ = fit_logistic(np.vstack(features), labels)
        token_scorers[f"late interaction ({label} token vectors)"] = (late, multi, features, 2)
        token_scorers[f"M3-style dense + lexical + multi-vector ({label}, learned weights)"] = (multi, multi, features, None)
    scorers, absolute = {}, {}
    for name, (scorer, multi, features, column) in token_scorers.items():
        held_scores = [f[:, column] if column is not None else f @ multi.weights for f in features]
        scorers[name] = (scorer, calibrate(held_candidates, held_scores)[0])
        absolute[name] = absolute_calibration(held_candidates, held_scores)
    held_splade = score_candidates(splade, held_candidates)
    scorers["SPLADE-tiny"] = (splade, calibrate(held_candidates, held_splade)[0])
    absolute["SPLADE-tiny"] = absolute_calibration(held_candidates, held_splade)
    if reranker_dir is not None:
        scorers[f"trained cross-encoder ({reranker_dir.name})"] = (CrossEncoderScorer(reranker_dir),
                                                                   Calibrator.load(reranker_dir / "calibration.json"))

    started = time.perf_counter()
    link_weights = fit_links(components, passages, held, scorers, args.held_out_queries, seed=29)
    link_fit_seconds = round(time.perf_counter() - started, 1)

    def expanded_ranking(chunk_ids, probabilities, weight):
        chunks = [{"chunk_id": c, "title": by_id[c].title, "text": by_id[c].text, "relevance": float(p)}
                  for c, p in zip(chunk_ids, probabilities)]
        return [c["chunk_id"] for c in sorted(expand_links(chunks, weight), key=lambda c: -c["relevance"])]

    # 2. Reranking the fused top 30.
    def passage_texts(chunk_ids):
        return [f"{by_id[c].title}\n{by_id[c].text}" for c in chunk_ids]

    shared_features: dict[tuple, np.ndarray] = {}

    feature_seconds: dict[tuple, float] = {}

    def scores_for(name, scorer, key, query, passages_):
        """Late interaction is the M3 features' third column: one computation serves both, and
        each is charged its time (see ``charged``).
        """
        if name in token_scorers:
            _, multi, _, column = token_scorers[name]
            key = (id(multi), *key)
            if key not in shared_features:
                t0 = time.perf_counter()
                shared_features[key] = multi.features(query, passages_)
                feature_seconds[key] = time.perf_counter() - t0
            f = shared_features[key]
            return f[:, column] if column is not None else f @ multi.weights
        return scorer.score(query, passages_)

    def charged(name, key, measured):
        return feature_seconds[(id(token_scorers[name][1]), *key)] if name in token_scorers else measured

    sensitivity = {}
    for name, (scorer, cal) in scorers.items():
        reranked, seconds, raw_scores = [], [], []
        for n, (q, cands) in enumerate(zip(queries, pool)):
            t0 = time.perf_counter()
            s = scores_for(name, scorer, ("rerank", n), q, passage_texts(cands))
            seconds.append(charged(name, ("rerank", n), time.perf_counter() - t0))
            raw_scores.append(s)
            reranked.append([cands[i] for i in np.argsort(-s, kind="stable")])
        rows.append({"stage": f"rerank top {RERANK_TOP} of {best_fusion}", "method": name,
                     **metrics_of([titles(r) for r in reranked], questions),
                     "median_s_per_query": round(statistics.median(seconds), 3),
                     "p95_s_per_query": round(percentile(seconds, 0.95), 3),
                     "pairs_per_s": round(RERANK_TOP / statistics.median(seconds), 1)})
        if name in link_weights:
            weight = link_weights[name].weight
            linked = [expanded_ranking(c, cal(s), weight) for c, s in zip(pool, raw_scores)]
            rows.append({"stage": f"rerank top {RERANK_TOP} + link expansion", "method": f"{name}, weight {weight}",
                         **metrics_of([titles(r) for r in linked], questions)})
            sensitivity[name] = {str(w): metrics_of([titles(expanded_ranking(c, cal(s), w)) for c, s in zip(pool, raw_scores)],
                                                    questions)["ndcg@10"] for w in WEIGHT_GRID}

    # 3. Grading supporting vs distractor paragraphs at calibrated thresholds.
    contexts = [json.loads(line) for line in args.data.read_text(encoding="utf-8").splitlines() if line.strip()][: len(questions)]
    grading = []
    for name, (scorer, cal) in scorers.items():
        probs, absolute_probs, linked_probs, gold, best = [], [], [], [], []
        weight = link_weights[name].weight if name in link_weights else 0.0
        for n, row in enumerate(contexts):
            cands = [f"{c['title']}\n{c['paragraph_text']}" for c in row["contexts"]]
            raw = scores_for(name, scorer, ("grade", n), row["question_text"], cands)
            p = cal(raw)
            probs += list(p)
            best.append(float(p.max()))
            if name in absolute:
                absolute_probs += list(absolute[name](raw))
            chunks = [{"chunk_id": str(i), "title": c["title"], "text": c["paragraph_text"], "relevance": float(v)}
                      for i, (c, v) in enumerate(zip(row["contexts"], p))]
            linked_probs += [c["relevance"] for c in expand_links(chunks, weight)]
            gold += [float(c["is_supporting"]) for c in row["contexts"]]
        if absolute_probs:
            grading.append({"scorer": name, "calibration": "absolute", **threshold_metrics(absolute_probs, gold, 0.5)})
        grading.append({"scorer": name, "calibration": "set-aware", **threshold_metrics(probs, gold, 0.5),
                        "by_threshold": {str(t): threshold_metrics(probs, gold, t) for t in (0.1, 0.2, 0.3, 0.4)},
                        # A question with no paragraph kept is sent to a rewrite or the web by the graph.
                        "questions_keeping_any": {str(t): round(float(np.mean([m >= t for m in best])), 3)
                                                  for t in (0.2, 0.5)}})
        if weight > 0:
            grading.append({"scorer": f"{name} + link expansion (weight {weight})", "calibration": "set-aware",
                            **threshold_metrics(linked_probs, gold, 0.5)})

    out = {
        "machine": machine(), "date": time.strftime("%Y-%m-%d"), "data": args.data.name,
        "questions": len(questions), "paragraphs": len(paragraphs), "chunks": len(ids),
        "training": training, "indexing_chunks_per_s": {"MiniLM / trained embedder (same architecture)": round(index_rate, 1),
                                                       "SPLADE-tiny": round(splade_rate, 1)},
        "rerank_pool": {"fusion": best_fusion, "depth": RERANK_TOP, "supporting_paragraphs_in_pool": round(covered, 3)},
        "calibrations": {name: cal.__dict__ for name, (_, cal) in scorers.items()},
        "absolute_calibrations": {name: cal.__dict__ for name, cal in absolute.items()},
        "multi_weights": {name: list(map(float, entry[0].weights)) for name, entry in token_scorers.items() if entry[3] is None},
        "link_weights": {name: w.__dict__ for name, w in link_weights.items()}, "link_fit_seconds": link_fit_seconds,
        "link_sensitivity_on_questions": sensitivity,
        "results": rows, "grading": grading,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2, ensure_ascii=False, default=float) + "\n")

    print(f"{out['questions']} questions, {out['paragraphs']} paragraphs in {out['chunks']} chunks; machine: {out['machine']}\n")
    print("| stage | method | recall@2 | recall@10 | nDCG@10 | speed |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        speed = (f"{r['median_ms_per_query']} ms/query" if "median_ms_per_query" in r else
                 f"{r['median_s_per_query']} s/query ({r['pairs_per_s']} pairs/s)" if "pairs_per_s" in r else "")
        print(f"| {r['stage']} | {r['method']} | {r['recall@2']:.3f} | {r['recall@10']:.3f} | {r['ndcg@10']:.3f} | {speed} |")
    print("\n| grading scorer (threshold 0.5) | calibration | accuracy | precision | recall |\n|---|---|---|---|---|")
    for g in grading:
        print(f"| {g['scorer']} | {g['calibration']} | {g['accuracy']:.3f} | {g['precision']:.3f} | {g['recall']:.3f} |")
    for kind, t in training.items():
        print(f"\n{kind} {t['model']}: {t['data'].get('train')} training pairs {t['data'].get('kinds')}; seconds {t['seconds']}")
    print(f"\nsupporting paragraphs in the rerank pool: {covered:.3f}; indexing: {out['indexing_chunks_per_s']}")
    for name, w in link_weights.items():
        print(f"link weight for {name}: {w.weight} (two-hop pairs: {w.fitted_on}; nDCG@10 there by weight {w.ndcg_by_weight}); "
              f"on the questions by weight: {sensitivity.get(name)}")


if __name__ == "__main__":
    main()
