"""``arag train-embedder`` and ``arag train-reranker``: pairs → hard negatives → fine-tune →
evaluate against the model in use → keep the new model only if it wins.

Both commands share one pair set per collection, kept under
``<data_dir>/training/<collection>/`` (synthetic queries are cached there per LLM, so an
interrupted run resumes). Held-out pairs come from documents that training never sees.

- The **embedder** is judged by retrieval over the whole indexed corpus (recall@1/@10,
  nDCG@10, MRR@10 of the held-out queries, plus any qrels the user supplies). If it wins,
  the chunks are re-embedded into the new model's own collection and the registry switches.
- The **reranker** is judged by reranking the hybrid retriever's top candidates of each held-out
  query, against the scorer in use (the previous trained reranker, else late interaction).
  Its scores are calibrated on held-out positives and hard negatives; the calibration is
  stored with the model.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from arag.embeddings.embedder import Embedder, backend_for_vectors, card_field, embedding_text, packaged_minilm_dir
from arag.evaluation.metrics import ndcg_from_scores, ranking_metrics
from arag.index.reembed import reembed_collection
from arag.index.store import ChunkStore, recorded_embedding_model
from arag.index.token_store import TokenVectorStore, drop_token_store
from arag.llms.usage import LLMUsage
from arag.model_registry import ModelRegistry
from arag.relevance.calibration import Calibrator, threshold_metrics
from arag.relevance.links import LinkWeight
from arag.relevance.scorers import CrossEncoderScorer, LateInteractionScorer, export_int8_onnx
from arag.training.finetune import FineTuneConfig, fine_tune, has_gpu
from arag.training.link_weights import fit_link_weight
from arag.training.negatives import dense_matrix, dense_ranked, mine_hard_negatives
from arag.training.pairs import (
    Passage,
    TrainingPair,
    bridge_pairs,
    classification_pairs,
    clean_pairs,
    document_title,
    passage_text,
    passages_from_store,
    sample_passages,
    similarity_pairs,
    split_pairs,
    synthetic_pairs,
    unsupervised_pairs,
    untitled_text,
    write_flag_data,
    write_pairs,
)

#: Local presets whose synthetic queries are mostly copied sentences (seen on HotpotQA paragraphs):
#: with these, "auto" pairs are unsupervised only.
WEAK_QUERY_WRITERS = {"llamacpp:local-0.5b", "llamacpp:local-270m"}
#: Candidates of the hybrid retriever that a reranker reorders, in evaluation as in the app.
RERANK_DEPTH = 30
#: Second-stage pairs of each non-retrieval task, as a share of the retrieval pairs: with two tasks,
#: retrieval, the task the app serves, keeps two thirds of the blend.
STAGE_TWO_TASK_SHARE = 0.25


@dataclass
class PairOptions:
    """How training pairs are made."""

    mode: str = "auto"  # "llm", "unsupervised", "both", or "auto" (llm + unsupervised if an LLM is configured)
    synthetic: int = 600  # passages the LLM writes a query for
    max_pairs: int = 3000  # after cleaning: every synthetic pair, then unsupervised ones drawn at random
    held_out: float = 0.1
    negatives: int = 7
    skip: int = 3
    seed: int = 13


@dataclass
class TrainingResult:
    kind: str
    model_dir: Path
    won: bool
    metrics: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)

    def summary(self) -> str:
        verdict = "now in use" if self.won else "kept aside (did not beat the model in use)"
        base, new = self.metrics.get("incumbent", {}), self.metrics.get("trained", {})
        line = ", ".join(f"{k} {base.get(k, 0):.3f} → {new.get(k, 0):.3f}" for k in ("ndcg@10", "recall@1", "mrr@10") if k in new)
        return f"{self.kind} {self.model_dir.name}: {line}; {verdict}"


def workspace(settings) -> Path:
    return settings.data_dir / "training" / settings.collection


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in ".-" else "-" for c in text)


def build_pairs(components, options: PairOptions, progress: bool = True,
                passages: list[Passage] | None = None) -> tuple[list[TrainingPair], list[TrainingPair], dict]:
    """(train, held-out, report) for the collection, negatives attached; cached per option set.

    ``passages`` are the collection's chunks when the caller has read them already.
    """
    settings = components.settings
    work = workspace(settings)
    passages = passages if passages is not None else passages_from_store(components.store)
    if len(passages) < 4:
        raise ValueError(f"collection {settings.collection!r} has {len(passages)} chunks; ingest documents first")
    mode = options.mode
    if mode == "auto":
        mode = "unsupervised" if settings.llm in WEAK_QUERY_WRITERS else "both"
    rng = random.Random(options.seed)
    pairs: list[TrainingPair] = []
    report: dict = {"passages": len(passages), "mode": mode}
    if mode in ("unsupervised", "both"):
        pairs += unsupervised_pairs(passages, rng)
    if mode in ("llm", "both"):
        usage = LLMUsage()
        sample = sample_passages(passages, options.synthetic, options.seed)
        cache = work / f"synthetic-queries-{_slug(settings.llm)}.jsonl"
        cache.parent.mkdir(parents=True, exist_ok=True)
        pairs += synthetic_pairs(sample, lambda: components.llm, random.Random(options.seed + 1), usage, cache=cache, progress=progress)
        report["llm"] = {"model": settings.llm, **usage.as_dict()}
    raw = len(pairs)
    pairs = clean_pairs(pairs)
    if len(pairs) > options.max_pairs:
        # Training time grows with pairs; LLM-written queries are the costlier and closer to real ones, so they stay.
        synthetic = [p for p in pairs if p.kind == "synthetic"][: options.max_pairs]
        rest = [p for p in pairs if p.kind != "synthetic"]
        pairs = synthetic + random.Random(options.seed + 4).sample(rest, options.max_pairs - len(synthetic))
    report["pairs_raw"], report["pairs"] = raw, len(pairs)
    report["kinds"] = {k: sum(p.kind == k for p in pairs) for k in sorted({p.kind for p in pairs})}
    mined = mine_hard_negatives(pairs, passages, components.embedder, components.store, components.lexical,
                                skip=options.skip, count=options.negatives, rng=random.Random(options.seed + 2),
                                progress=progress)
    train, held = split_pairs(mined, options.held_out, random.Random(options.seed + 3))
    report["train"], report["held_out"] = len(train), len(held)
    write_pairs(train, work / "pairs-train.jsonl")
    write_pairs(held, work / "pairs-held-out.jsonl")
    return train, held, report


def load_qrels(path: Path) -> list[dict]:
    """User-supplied judgments: JSONL lines ``{"query": str, "relevant": [chunk id, source or title, ...]}``."""
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            rows.append({"query": str(row["query"]), "relevant": set(map(str, row["relevant"]))})
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{n}: expected {{\"query\": ..., \"relevant\": [...]}} ({exc})") from exc
    return rows


def qrels_key(passages, qrels: list[dict]):
    """How the user's qrels name documents (chunk id, source or title), as a function of a passage."""
    named = set().union(*(q["relevant"] for q in qrels)) if qrels else set()
    for attribute in ("id", "source"):
        if named & {getattr(p, attribute) for p in passages}:
            return lambda p, a=attribute: getattr(p, a)
    return document_title


def evaluate_dense(embedder, matrix: np.ndarray, passages, held: list[TrainingPair], qrels: list[dict]) -> dict:
    """Exact dense retrieval over ``matrix`` (one row per passage): held-out pairs, and qrels if given."""
    ids = [p.id for p in passages]
    out = {}
    if held:
        ranked = dense_ranked(embedder, matrix, ids, [p.query for p in held], 10)
        out = ranking_metrics(ranked, [{p.positive_id} for p in held])
    if qrels:
        key = qrels_key(passages, qrels)
        by_id = {p.id: key(p) for p in passages}
        ranked = dense_ranked(embedder, matrix, ids, [q["query"] for q in qrels], 30)
        metrics = ranking_metrics([[by_id[c] for c in r] for r in ranked], [q["relevant"] for q in qrels])
        out |= {f"qrels {k}": v for k, v in metrics.items()}
    return out


def write_card(model_dir: Path, card: dict) -> None:
    """``card.json`` for programs and ``CARD.md`` for people, beside the weights."""
    (model_dir / "card.json").write_text(json.dumps(card, indent=2, ensure_ascii=False, default=str) + "\n")
    lines = [f"# {card['kind']} {model_dir.name}", "",
             f"- base model: {card['base']}",
             f"- trained: {card['created']} in {card['seconds'].get('fine_tune', 0):.0f} s on {card['device']}",
             f"- data: {card['data'].get('train', 0)} training pairs ({card['data'].get('kinds')}), "
             f"{card['data'].get('held_out', 0)} held out, from collection {card['collection']!r}"]
    if "pooling" in card:
        config = card["config"]
        shape = f" ({config['latents']} latents, {config['heads']} heads)" if card["pooling"] == "latent-attention" else ""
        lines.append(f"- pooling: {card['pooling']}{shape}; stages: {config['stages']}")
    if "stage_two" in card["data"]:
        tasks = card["data"]["stage_two"]["tasks"]
        lines.append("- stage 2 (hard negatives only, no in-batch negatives): "
                     + ", ".join(f"{task} {count}" for task, count in tasks.items()))
    lines += [f"- settings: {json.dumps(card['config'])}", "",
              "| metric | model in use | this model |", "|---|---|---|"]
    for key, value in card["metrics"].get("trained", {}).items():
        lines.append(f"| {key} | {card['metrics'].get('incumbent', {}).get(key, '')} | {value} |")
    verdict = "it beat the model in use" if card["won"] else "it did not beat the model in use"
    lines += ["", f"Verdict: {verdict}; in use: {'yes' if card.get('active') else 'no'}."]
    (model_dir / "CARD.md").write_text("\n".join(lines) + "\n")


def wins(trained: dict, incumbent: dict, key: str = "ndcg@10", margin: float = 0.0) -> bool:
    """The swap rule: a new model replaces the one in use only if it scores strictly higher on ``key``.

    Example:
        >>> wins({"ndcg@10": 0.71}, {"ndcg@10": 0.70}), wins({"ndcg@10": 0.70}, {"ndcg@10": 0.70})
        (True, False)
    """
    return trained.get(key, 0.0) > incumbent.get(key, 0.0) + margin


def _card(kind, settings, base, report, cfg, seconds, metrics, won, extra=None) -> dict:
    """The card's fields; ``seconds`` is shared, so later stages (re-embedding) show up on a rewrite."""
    return {
        "kind": kind, "base": str(base), "collection": settings.collection,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "device": "cuda" if has_gpu() else "cpu",
        "data": report, "config": asdict(cfg), "seconds": seconds, "metrics": metrics, "won": won,
        **(extra or {}),
    }


def stage_two_tasks(components, passages: list[Passage], held: list[TrainingPair], options: PairOptions, limit: int,
                    progress: bool = True) -> list[TrainingPair]:
    """The second stage's non-retrieval tasks, from the training documents only, with hard negatives.

    Similarity (two passages of one document, :func:`pairs.similarity_pairs`) and title-to-section
    classification (:func:`pairs.classification_pairs`), at most ``limit`` pairs each. Negatives are
    mined as for retrieval pairs and read like their task's positives: bare text for similarity,
    untitled for classification.
    """
    held_sources = {p.source for p in held}
    training_passages = [p for p in passages if p.source not in held_sources]
    rng = random.Random(options.seed + 6)
    tasks: list[TrainingPair] = []
    for make, text in ((similarity_pairs, lambda p: p.text), (classification_pairs, untitled_text)):
        made = make(training_passages, rng)
        tasks += mine_hard_negatives(rng.sample(made, min(limit, len(made))), passages, components.embedder,
                                     components.store, components.lexical, skip=options.skip, count=options.negatives,
                                     rng=rng, progress=progress, text=text)
    return tasks


def fine_tune_embedder(components, base: Path, train: list[TrainingPair], held: list[TrainingPair],
                       passages: list[Passage], model_dir: Path, cfg: FineTuneConfig, options: PairOptions,
                       progress: bool = True) -> dict:
    """Train an embedder from ``base`` into ``model_dir``; returns the card's data beyond the pairs.

    Mean pooling in one stage trains with FlagEmbedding, as it always has. Latent-attention pooling and
    a second stage, which FlagEmbedding does not have, train in arag's own loop
    (:mod:`training.latent_attention`); ``cfg`` must then be :func:`latent_attention.resolved_config`'s.
    """
    work = workspace(components.settings)
    if not cfg.own_loop:
        data = work / "embedder-train.jsonl"
        write_flag_data(train, data)
        fine_tune("embedder", base, data, work / "embedder-run", model_dir, cfg, quiet=not progress)
        return {}
    from arag.training.latent_attention import TASK_INSTRUCTIONS, Stage, fine_tune_staged

    stages = [Stage("retrieval", train, in_batch_negatives=True)]
    report: dict = {}
    if cfg.stages == 2:
        tasks = stage_two_tasks(components, passages, held, options, round(STAGE_TWO_TASK_SHARE * len(train)), progress)
        stages.append(Stage("blend", train + tasks, in_batch_negatives=False))
        counts = {"retrieval": len(train)} | {kind: sum(p.kind == kind for p in tasks) for kind in TASK_INSTRUCTIONS}
        report["stage_two"] = {"tasks": counts, "instructions": {"retrieval": cfg.query_instruction, **TASK_INSTRUCTIONS}}
    report["loop"] = fine_tune_staged(base, stages, work / "embedder-run", model_dir, cfg, quiet=not progress)
    return report


def _pairs_and_fine_tune(components, kind: str, options: PairOptions, cfg: FineTuneConfig, base: Path, progress: bool):
    """Shared first half of both trainings: (all passages, held-out pairs, data report, new model dir, seconds)."""
    seconds: dict = {}
    started = time.perf_counter()
    passages = passages_from_store(components.store)
    train, held, report = build_pairs(components, options, progress, passages)
    seconds["pairs"] = round(time.perf_counter() - started, 1)
    model_dir = ModelRegistry(components.settings).new_version_dir(kind)
    started = time.perf_counter()
    if kind == "embedder":
        report |= fine_tune_embedder(components, base, train, held, passages, model_dir, cfg, options, progress)
    else:
        data = workspace(components.settings) / f"{kind}-train.jsonl"
        write_flag_data(train, data)
        fine_tune(kind, base, data, workspace(components.settings) / f"{kind}-run", model_dir, cfg, quiet=not progress)
    seconds["fine_tune"] = round(time.perf_counter() - started, 1)
    return passages, held, report, model_dir, seconds


def train_embedder(components, options: PairOptions, cfg: FineTuneConfig, base: Path | None = None,
                   qrels: list[dict] | None = None, progress: bool = True, activate: bool = True) -> TrainingResult:
    """Fine-tune an embedder on the collection's pairs; re-embed and switch to it only if it wins.

    ``cfg.pooling`` / ``cfg.stages`` other than mean / 1 train latent-attention pooling or two
    stages (NV-Embed) in arag's own loop; a base model that loop cannot train is a ValueError,
    raised before any pair is made.
    """
    settings = components.settings
    base = Path(base) if base else components.embedder.model_dir
    if cfg.own_loop:
        from arag.training.latent_attention import resolved_config

        cfg = resolved_config(base, cfg)
    passages, held, report, model_dir, seconds = _pairs_and_fine_tune(components, "embedder", options, cfg, base, progress)

    started = time.perf_counter()
    ids = [p.id for p in passages]
    incumbent = evaluate_dense(components.embedder, dense_matrix(components.store, ids), passages, held, qrels or [])
    trained_embedder = Embedder(model_dir, batch_size=settings.embedding_batch_size, query_instruction=cfg.query_instruction,
                                backend=backend_for_model(components, model_dir), models_dir=settings.models_path)
    # A passage's title already joins title and heading as ingestion does, so this is the text the index embedded.
    texts = [embedding_text(p.title, "", p.text) for p in passages]
    # The same pass keeps the token vectors the new model's collection will need if it wins.
    tokens = (TokenVectorStore.for_collection(settings.data_dir, model_collection(settings, model_dir), trained_embedder.model_id)
              if settings.store_token_vectors else None)
    matrix = (tokens.fill(texts, trained_embedder, progress) if tokens is not None
              else trained_embedder.embed_documents(texts, progress=progress, bulk=True))
    trained = evaluate_dense(trained_embedder, matrix, passages, held, qrels or [])
    seconds["evaluate"] = round(time.perf_counter() - started, 1)
    won = wins(trained, incumbent)
    if tokens is not None and not (won and activate):
        tokens.close()
        drop_token_store(settings.data_dir, model_collection(settings, model_dir))
    metrics = {"incumbent": incumbent, "trained": trained, "incumbent_model": components.embedder.model_id}
    card = _card("embedder", settings, base, report, cfg, seconds, metrics, won,
                 {"query_instruction": cfg.query_instruction, "pooling": cfg.pooling})
    write_card(model_dir, card)
    if won and activate:
        started = time.perf_counter()
        use_embedder(components, model_dir, trained_embedder, dict(zip(ids, matrix)), progress=progress)
        seconds["reembed"] = round(time.perf_counter() - started, 1)
        write_card(model_dir, card | {"active": True})
    return TrainingResult("embedder", model_dir, won, metrics, seconds)


def model_collection(settings, model_dir: Path) -> str:
    """The Chroma collection that a trained embedder's vectors go into."""
    return f"{settings.collection}--{Path(model_dir).name}"


def backend_for_model(components, model_dir: Path) -> str:
    """How a trained embedder runs: the configured backend; with "auto", as its own collection's vectors
    were made, or, before that collection exists, as the model it would replace runs (so the two are
    compared on equal terms, and the vectors of that comparison can fill the new collection).
    """
    settings = components.settings
    if settings.embedding_backend != "auto":
        return settings.embedding_backend
    built_with = recorded_embedding_model(components.store.client, model_collection(settings, model_dir))
    return backend_for_vectors(built_with, new=components.embedder.backend)


def use_embedder(components, model_dir: Path, embedder=None, known: dict | None = None, progress: bool = True,
                 on_progress=None) -> str:
    """Re-embed the collection with the embedder in ``model_dir`` and switch the registry to it.

    The chunks are copied into the model's own Chroma collection first (resumable), so readers
    see the old model with its vectors until the switch. The previous collection is dropped.
    Returns the new collection's name.
    """
    settings = components.settings
    embedder = embedder or Embedder(model_dir, batch_size=settings.embedding_batch_size,
                                    query_instruction=card_field(model_dir, "query_instruction"),
                                    backend=backend_for_model(components, model_dir), models_dir=settings.models_path)
    target = ChunkStore(settings, embedder.model_id, embedder.dim, client=components.store.client,
                        name=model_collection(settings, model_dir))
    if target.name == components.store.name:
        return target.name  # already in use
    reembed_collection(components.store, target, embedder, known, progress=progress, on_progress=on_progress)
    old = components.store
    ModelRegistry(settings).activate("embedder", {"dir": str(model_dir), "collection": target.name, "model_id": embedder.model_id})
    old.drop()
    return target.name



def rerank_candidates(components, held: list[TrainingPair], limit: int) -> list[tuple[TrainingPair, list[str], list[str]]]:
    """(pair, candidate ids, candidate texts) from the hybrid retriever for up to ``limit`` held-out pairs."""
    retriever = components.retriever_for(components.settings.model_copy(update={"retrieval": "hybrid"}))
    out = []
    for pair in held[:limit]:
        hits = retriever.search(pair.query, RERANK_DEPTH)
        out.append((pair, [h["chunk_id"] for h in hits],
                    [passage_text(Passage(h["chunk_id"], "", h["title"], h["text"])) for h in hits]))
    return out


def score_candidates(scorer, candidates, progress: bool = True) -> list[np.ndarray]:
    return [scorer.score(pair.query, texts) for pair, _, texts in
            tqdm(candidates, desc=f"score ({scorer.name})", unit="query", disable=not progress)]


def rerank_metrics(candidates, scores: list[np.ndarray]) -> dict:
    """Ranking metrics of the reordered candidates; nDCG@10 gives tied scores their expected value,
    so a scorer that cannot separate candidates gains nothing from the retriever's order.
    """
    rankings = [[ids[i] for i in np.argsort(-s, kind="stable")] for (_, ids, _), s in zip(candidates, scores)]
    relevant = [{pair.positive_id} for pair, _, _ in candidates]
    metrics = ranking_metrics(rankings, relevant)
    tie_fair = [ndcg_from_scores(list(s), ids, rel) for (_, ids, _), s, rel in zip(candidates, scores, relevant)]
    return metrics | {"ndcg@10": round(sum(tie_fair) / max(1, len(tie_fair)), 4)}


def calibrate(candidates, scores: list[np.ndarray]) -> tuple[Calibrator, dict]:
    """Set-aware Platt calibration on held-out candidate lists: the positive is relevant, the others not.

    Each list is used twice: as retrieved, and without its positive, as when retrieval found
    nothing relevant; so the best candidate of a list is not relevant just for being the best.
    The grading figures returned are at threshold 0.5 over both.
    """
    lists = []
    for (pair, ids, _), s in zip(candidates, scores):
        s, label = np.asarray(s, dtype=np.float64), np.array([float(c == pair.positive_id) for c in ids])
        lists.append((s, label))
        if label.any() and not label.all():
            lists.append((s[label == 0], label[label == 0]))
    raw, labels = np.concatenate([s for s, _ in lists]), np.concatenate([y for _, y in lists])
    groups = np.concatenate([np.full(len(s), n) for n, (s, _) in enumerate(lists)])
    calibrator = Calibrator.fit(raw, labels, groups=groups)
    return calibrator, threshold_metrics(np.concatenate([calibrator(s) for s, _ in lists]), labels)


def link_cases(candidates, scores: list[np.ndarray], calibrator: Calibrator,
               by_id: dict[str, Passage]) -> list[tuple[list[dict], set[str]]]:
    """Candidates as the judge sees them (calibrated ``relevance``), with each query's relevant ids."""
    cases = []
    for (pair, ids, _), raw in zip(candidates, scores):
        chunks = [{"chunk_id": c, "title": by_id[c].title, "text": by_id[c].text, "relevance": float(p)}
                  for c, p in zip(ids, calibrator(raw))]
        cases.append((chunks, pair.relevant_ids))
    return cases


def fit_links(components, passages: list[Passage], held: list[TrainingPair], judges: dict[str, tuple],
              limit: int, seed: int, progress: bool = True) -> dict[str, LinkWeight]:
    """Each judge's link-expansion weight, fitted on two-hop pairs whose first hop is a held-out document.

    ``judges`` maps a name to (scorer, calibrator). No link among held-out documents: no weights.
    """
    bridges = bridge_pairs(passages, random.Random(seed), sources={p.source for p in held}, limit=limit)
    if not bridges:
        return {}
    candidates = rerank_candidates(components, bridges, limit)
    by_id = {p.id: p for p in passages}
    return {name: fit_link_weight(link_cases(candidates, score_candidates(scorer, candidates, progress), cal, by_id))
            for name, (scorer, cal) in judges.items()}


def incumbent_scorer(components):
    """The scorer the app uses now for this collection: its trained cross-encoder, else late interaction."""
    active = ModelRegistry(components.settings).active_dir("reranker")
    return CrossEncoderScorer(active) if active else LateInteractionScorer(components.embedder)


def _export_onnx(model_dir: Path, seconds: dict) -> str:
    """Write the int8 ONNX export the app runs; on failure the torch weights serve (said in the card)."""
    started = time.perf_counter()
    try:
        export_int8_onnx(model_dir)
    except Exception as exc:  # noqa: BLE001 - any exporter failure leaves a working torch model
        return f"torch (ONNX export failed: {type(exc).__name__}: {exc})"
    seconds["onnx_export"] = round(time.perf_counter() - started, 1)
    return "onnxruntime int8"


def train_reranker(components, options: PairOptions, cfg: FineTuneConfig, base: Path | None = None,
                   eval_queries: int = 150, progress: bool = True, activate: bool = True) -> TrainingResult:
    """Fine-tune a cross-encoder on the collection's pairs; calibrate it; use it only if it wins."""
    settings = components.settings
    registry = ModelRegistry(settings)
    base = Path(base) if base else packaged_minilm_dir()
    passages, held, report, model_dir, seconds = _pairs_and_fine_tune(components, "reranker", options, cfg, base, progress)
    export = _export_onnx(model_dir, seconds)

    started = time.perf_counter()
    candidates = rerank_candidates(components, held, eval_queries)
    incumbent = incumbent_scorer(components)
    incumbent_scores = score_candidates(incumbent, candidates, progress)
    trained_scorer = CrossEncoderScorer(model_dir, max_length=cfg.query_max_len + cfg.passage_max_len)
    trained_scores = score_candidates(trained_scorer, candidates, progress)
    seconds["evaluate"] = round(time.perf_counter() - started, 1)
    metrics = {
        "incumbent_scorer": incumbent.name,
        "retriever_order": rerank_metrics(candidates, [-np.arange(len(ids), dtype=float) for _, ids, _ in candidates]),
        "incumbent": rerank_metrics(candidates, incumbent_scores),
        "trained": rerank_metrics(candidates, trained_scores),
    }
    calibrator, grading = calibrate(candidates, trained_scores)
    calibrator.save(model_dir / "calibration.json")
    metrics["trained_grading"] = grading
    judges = {"trained": (trained_scorer, calibrator)}
    if isinstance(incumbent, LateInteractionScorer):
        late_cal, late_grading = calibrate(candidates, incumbent_scores)
        late_cal.save(registry.calibration_path(incumbent.name, components.embedder.model_id))
        metrics["incumbent_grading"] = late_grading
        judges["incumbent"] = (incumbent, late_cal)
    started = time.perf_counter()
    weights = fit_links(components, passages, held, judges, eval_queries, options.seed + 5, progress)
    seconds["fit_links"] = round(time.perf_counter() - started, 1)
    if "trained" in weights:
        weights["trained"].save(model_dir / "links.json")
    if "incumbent" in weights:
        weights["incumbent"].save(registry.calibration_path(f"{incumbent.name}-links", components.embedder.model_id))
    metrics["link_weights"] = {name: asdict(w) for name, w in weights.items()} or "no links among held-out documents"
    won = wins(metrics["trained"], metrics["incumbent"])
    card = _card("reranker", settings, base, report, cfg, seconds, metrics, won,
                 {"max_length": cfg.query_max_len + cfg.passage_max_len, "inference": export})
    write_card(model_dir, card)
    if won and activate:
        registry.activate("reranker", {"dir": str(model_dir)})
        write_card(model_dir, card | {"active": True})
    return TrainingResult("reranker", model_dir, won, metrics, seconds)
