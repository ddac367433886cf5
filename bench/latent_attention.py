"""Latent-attention pooling and two-stage training (NV-Embed) against mean pooling, on HotpotQA and 2Wiki.

Run: ``.venv/bin/python bench/latent_attention.py [--pairs 800] [--max-steps 40]``
Writes ``bench/results/latent-attention.json`` and ``bench/results/latent-attention.md`` (date,
machine, command). The defaults are sized for about 25 minutes on 2 cores: six trainings of 40
steps (at about 3 s a step of 16 pairs with one hard negative each), six embeddings of a pool of
2,300–2,800 chunks, two ingestions. ``--max-steps`` and ``--pairs`` scale the training;
``--questions N`` pools the first N questions only (a quick check).

Protocol. Each pool (HotpotQA dev-250, 2Wiki dev-330: the paragraphs of all questions, deduplicated
by title) is ingested like user documents (``bench/hotpotqa.py``). One set of training pairs is made
from its passages alone, as ``arag train-embedder --pairs unsupervised`` makes them (inverse cloze,
crops, titles; BM25 and MiniLM hard negatives; whole documents held out); no question is seen before
evaluation. From the packaged all-MiniLM-L6-v2, on those same pairs, for the same optimiser steps:

- mean pooling through FlagEmbedding (the path ``arag train-embedder`` takes by default);
- latent-attention pooling, one stage (arag's own loop, ``--pooling latent-attention``);
- latent-attention pooling, two stages (``--stages 2``: the second half of the steps on a blend of the
  pairs with same-document and title-to-section tasks from the training documents, hard negatives only).

All three put the same instruction before queries (``--query-instruction``, NV-Embed's by default), so
pooling and stages are what differs. Each, and the untrained MiniLM, is scored on the held-out pairs
(nDCG@10 over the whole pool: what the trainer's swap rule reads) and on the dataset's questions
(nDCG@10, recall@10 and recall@2 of their supporting paragraphs, as ``bench/trained_retrieval.py``
scores them), with its training minutes.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hotpotqa import REPO, ingest_pool, load_questions, print_table, write_report  # noqa: E402
from trained_retrieval import metrics_of  # noqa: E402

from arag.training.latent_attention import RETRIEVAL_INSTRUCTION  # noqa: E402

DATA = REPO.parent / "shared" / "data"
POOLS = {"hotpotqa": DATA / "hotpotqa" / "dev-250.jsonl", "2wiki": DATA / "2wiki" / "dev-330.jsonl"}
VARIANTS = {
    "mean pooling (FlagEmbedding)": {"pooling": "mean", "stages": 1},
    "latent attention, 1 stage": {"pooling": "latent-attention", "stages": 1},
    "latent attention, 2 stages": {"pooling": "latent-attention", "stages": 2},
}
UNTRAINED = "all-MiniLM-L6-v2, untrained"


def pool_file(data: Path, questions: int | None, work_dir: Path) -> Path:
    """``data`` itself, or its first ``questions`` lines written into the work directory."""
    if not questions:
        return data
    path = work_dir / f"{data.stem}-first-{questions}.jsonl"
    work_dir.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in data.read_text(encoding="utf-8").splitlines()[:questions]),
                    encoding="utf-8")
    return path


def run_pool(name: str, data: Path, args) -> dict:
    """Pairs once, then each variant trained, embedded and scored; the untrained model from the index's own vectors."""
    from arag.embeddings.embedder import Embedder, embedding_text, packaged_minilm_dir
    from arag.model_registry import ModelRegistry
    from arag.runtime.components import Components
    from arag.training.finetune import FineTuneConfig
    from arag.training.latent_attention import resolved_config
    from arag.training.negatives import dense_matrix, dense_ranked
    from arag.training.pairs import document_title, passages_from_store
    from arag.training.trainer import PairOptions, build_pairs, evaluate_dense, fine_tune_embedder

    work_dir = args.work_dir / f"{name}-{args.questions or 'all'}"
    data = pool_file(data, args.questions, work_dir)
    questions, _ = load_questions(data)
    ingestor = ingest_pool(data, work_dir)
    settings = ingestor.settings
    components = Components(settings, embedder=ingestor.embedder, store=ingestor.store)
    options = PairOptions(mode="unsupervised", max_pairs=args.pairs)
    started = time.perf_counter()
    passages = passages_from_store(components.store)
    train, held, report = build_pairs(components, options, progress=True, passages=passages)
    report["seconds"] = round(time.perf_counter() - started, 1)
    ids = [p.id for p in passages]
    title_of = {p.id: document_title(p) for p in passages}
    # As train_embedder embeds the pool: a passage's title already joins title and heading.
    texts = [embedding_text(p.title, "", p.text) for p in passages]
    queries = [q["question"] for q in questions]

    def scores(embedder, matrix) -> dict:
        held_out = evaluate_dense(embedder, matrix, passages, held, [])
        ranked = dense_ranked(embedder, matrix, ids, queries, 40)
        return {"held_out": held_out, "questions": metrics_of([[title_of[c] for c in r] for r in ranked], questions)}

    rows = [{"model": UNTRAINED, **scores(components.embedder, dense_matrix(components.store, ids)), "training_minutes": 0.0}]
    base = packaged_minilm_dir()
    for label, variant in VARIANTS.items():
        cfg = FineTuneConfig(max_steps=args.max_steps, batch_size=args.batch_size, group_size=args.negatives_per_step + 1,
                             passage_max_len=args.passage_max_len, query_instruction=args.query_instruction or None,
                             seed=args.seed, **variant)
        cfg = resolved_config(base, cfg) if cfg.own_loop else cfg
        model_dir = ModelRegistry(settings).new_version_dir("embedder")
        print(f"{name}: training {label} into {model_dir} …", file=sys.stderr, flush=True)
        started = time.perf_counter()
        extra = fine_tune_embedder(components, base, train, held, passages, model_dir, cfg, options, progress=True)
        minutes = round((time.perf_counter() - started) / 60, 2)
        # Each trained model's ONNX export stays in the work directory, out of the shared models cache.
        trained = Embedder(model_dir, batch_size=settings.embedding_batch_size, query_instruction=cfg.query_instruction,
                           backend=components.embedder.backend, models_dir=work_dir / "models")
        row = {"model": label, "model_dir": str(model_dir), **scores(trained, trained.embed_documents(texts, progress=True)),
               "training_minutes": minutes, "config": asdict(cfg), **extra}
        rows.append(row)
        print(json.dumps({k: row[k] for k in ("model", "held_out", "questions", "training_minutes")}), file=sys.stderr, flush=True)
    return {"pool": data.name, "questions": len(questions), "passages": len(passages), "pairs": report, "rows": rows}


def markdown(report: dict, args) -> str:
    first = next(iter(report["pools"].values()))
    lines = ["# Latent-attention pooling and two-stage training (NV-Embed) against mean pooling", "",
             f"- date: {report['date']}; machine: {report['machine']}",
             f"- command: `{report['command']}`",
             f"- training: from the packaged all-MiniLM-L6-v2, {args.max_steps} steps of {args.batch_size} pairs, each with "
             f"{args.negatives_per_step} hard negative(s), passages up to {args.passage_max_len} tokens; query instruction "
             f"{json.dumps(first['rows'][1]['config']['query_instruction'])}",
             "- pairs: unsupervised (inverse cloze, crops, titles) from each pool's passages; held-out pairs come from "
             "documents no pair was trained on; questions were never trained on", ""]
    for name, pool in report["pools"].items():
        data = pool["pairs"]
        lines += [f"## {name}: {pool['pool']} ({pool['passages']} passages, {pool['questions']} questions; "
                  f"{data['train']} training pairs {data['kinds']}, {data['held_out']} held out)", "",
                  "| model | held-out pairs nDCG@10 | questions nDCG@10 | questions recall@10 | questions recall@2 "
                  "| training minutes |", "|---|---|---|---|---|---|"]
        for row in pool["rows"]:
            q = row["questions"]
            lines.append(f"| {row['model']} | {row['held_out'].get('ndcg@10', 0):.3f} | {q['ndcg@10']:.3f} | "
                         f"{q['recall@10']:.3f} | {q['recall@2']:.3f} | {row['training_minutes']:.1f} |")
        tasks = next((row["stage_two"]["tasks"] for row in pool["rows"] if "stage_two" in row), None)
        if tasks:
            lines += ["", "Second-stage blend: " + ", ".join(f"{task} {count}" for task, count in tasks.items()) + " pairs."]
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pools", default=",".join(POOLS), help=f"which pools, of {', '.join(POOLS)}")
    parser.add_argument("--pairs", type=int, default=800, help="training pairs made per pool (max-pairs; default 800)")
    parser.add_argument("--max-steps", type=int, default=40, help="optimiser steps of every trained model (default 40)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--negatives-per-step", type=int, default=1, help="hard negatives each pair brings to a step")
    parser.add_argument("--passage-max-len", type=int, default=128)
    parser.add_argument("--query-instruction", default=RETRIEVAL_INSTRUCTION,
                        help="before every query of every trained model ('' : none for mean pooling; the loop then uses its default)")
    parser.add_argument("--questions", type=int, help="pool the first N questions of each file only (a quick check)")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "arag-bench-latent-attention")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "latent-attention.json")
    args = parser.parse_args()
    unknown = set(args.pools.split(",")) - set(POOLS)
    if unknown:
        parser.error(f"unknown pool {', '.join(sorted(unknown))}; use {', '.join(POOLS)}")

    started = time.perf_counter()
    pools = {name: run_pool(name, POOLS[name], args) for name in args.pools.split(",")}
    report = write_report(args.out, command=shlex.join(["python", "bench/latent_attention.py", *sys.argv[1:]]),
                          minutes=round((time.perf_counter() - started) / 60, 1), pools=pools)
    text = markdown(report, args)
    args.out.with_suffix(".md").write_text(text, encoding="utf-8")
    for name, pool in pools.items():
        print(f"\n{name} ({pool['pool']}):")
        print_table(["model", "held-out nDCG@10", "questions nDCG@10", "recall@10", "training min"],
                    [[r["model"], r["held_out"].get("ndcg@10"), r["questions"]["ndcg@10"], r["questions"]["recall@10"],
                      r["training_minutes"]] for r in pool["rows"]])
    print(f"\n{report['minutes']} minutes; wrote {args.out} and {args.out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
