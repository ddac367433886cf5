"""Link-expansion weight and context size, fitted on one dataset's questions and checked on the other's.

The shipped link weight (0.75 for late interaction) was fitted on two-hop pairs made from
HotpotQA's pooled paragraphs, about 16% of which are dev-250's own supporting pairs. Here each
dataset's questions are run through the default graph up to grading (hybrid retrieval and the
second hop, links off), every candidate is scored once by the app's judge, and then, for each
weight of the grid, the candidates are expanded, ordered, and cut to the context size, as the
rerank node does. A weight fitted on HotpotQA's questions is read on 2Wiki's and the other way
round; the table shows both, and the weight that holds on both is the one to ship.

    python bench/link_transfer.py --data-dir /tmp/arag-links \
        hotpotqa=../shared/data/hotpotqa/dev-250.jsonl 2wiki=../shared/data/2wiki/dev-330.jsonl

Writes ``bench/results/link_transfer.json`` and prints the Markdown table. Retrieval and scoring
only (no LLM call): about 5 minutes on 2 cores once the corpora are indexed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from arag.environment import apply_offline_environment

apply_offline_environment()

from arag.evaluation.datasets import load_dataset  # noqa: E402 - after the offline environment
from arag.evaluation.metrics import ndcg_at  # noqa: E402
from arag.evaluation.runner import EvalIndexes, machine  # noqa: E402
from arag.relevance import links  # noqa: E402
from arag.relevance.judge import DEFAULT_LINK_WEIGHTS  # noqa: E402
from arag.relevance.links import expand_links  # noqa: E402
from arag.settings import Settings  # noqa: E402
from arag.training.link_weights import WEIGHT_GRID  # noqa: E402
from graphs import build_graph  # noqa: E402

CONTEXT_SIZES = (4, 5, 6)
#: The size the weight is fitted for: the default ``top_k``.
FIT_SIZE = Settings.model_fields["top_k"].default


def judged_pools(name: str, path: Path, data_dir: Path) -> list[dict]:
    """Each question's candidates after retrieval and the second hop, scored by the judge without links."""
    dataset = load_dataset(path)
    indexed = EvalIndexes(Settings(data_dir=data_dir), dataset, progress=False).for_config({})
    graph = build_graph(components=indexed.components)
    judge = indexed.components.judge_for(indexed.components.settings)
    pools = []
    started = time.perf_counter()
    for question in dataset.questions:
        state = graph.invoke({"question": question.question}, {"configurable": {
            "write_answer": False, "max_retries": 0, "link_expansion": False, "answer_style": "short"}})
        judged = judge.judge(state["standalone_question"], state["candidates"], links=False)
        pools.append({"question": state["standalone_question"], "relevant": sorted(question.relevant), "candidates": [
            {"chunk_id": c["chunk_id"], "doc": indexed.chunk_docs.get(c["chunk_id"], c["chunk_id"]), "title": c["title"],
             "text": c["text"], "relevance": c["relevance"]} for c in judged]})
    print(f"{name}: {len(pools)} questions scored in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return pools


def context_metrics(pools: list[dict], weight: float, question_weight: float = links.QUESTION_LINK_WEIGHT) -> dict:
    """All-supporting share at each context size, and nDCG@10 of the ordered candidates, at these weights."""
    holds = {k: 0 for k in CONTEXT_SIZES}
    ndcg = 0.0
    for pool in pools:
        named = links.named_in_question(pool["candidates"], pool["question"], question_weight)
        ranked = sorted(expand_links(named, weight), key=lambda c: -c["relevance"])
        docs = [c["doc"] for c in ranked]
        relevant = set(pool["relevant"])
        for k in CONTEXT_SIZES:
            holds[k] += relevant <= set(docs[:k])
        ndcg += ndcg_at(docs, relevant)
    n = max(1, len(pools))
    return {**{f"all_supporting@{k}": round(v / n, 4) for k, v in holds.items()}, "ndcg@10": round(ndcg / n, 4),
            "pool_all_supporting": round(sum(set(p["relevant"]) <= {c["doc"] for c in p["candidates"]} for p in pools) / n, 4)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("datasets", nargs=2, help="NAME=PATH, two of them")
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("bench/results/link_transfer.json"))
    args = parser.parse_args(argv)
    named = [tuple(d.split("=", 1)) for d in args.datasets]
    pools = {}
    for name, path in named:
        # The scored pools are kept beside the index, so the table can be redrawn without scoring again.
        cache = args.data_dir / f"link-transfer-{name}-{load_dataset(Path(path)).corpus_hash()}.json"
        if not cache.exists():
            cache.write_text(json.dumps(judged_pools(name, Path(path), args.data_dir)))
        pools[name] = json.loads(cache.read_text())
    key = f"all_supporting@{FIT_SIZE}"
    shipped = DEFAULT_LINK_WEIGHTS["late-interaction"]
    names = [n for n, _ in named]
    result = {"date": time.strftime("%Y-%m-%d"), "machine": machine(), "fit_on": key, "link_sources": links.LINK_SOURCES}
    # The link weight with the question's weight as shipped, then the question's weight with the link weight as shipped.
    for label, metrics_at, shipped_value in (
            ("link weight", lambda p, w: context_metrics(p, w), shipped),
            ("question weight", lambda p, w: context_metrics(p, shipped, w), links.QUESTION_LINK_WEIGHT)):
        grid = {name: {str(w): metrics_at(p, w) for w in WEIGHT_GRID} for name, p in pools.items()}
        fitted = {name: max(WEIGHT_GRID, key=lambda w: (rows[str(w)][key], -w)) for name, rows in grid.items()}
        result[label] = {"grid": grid, "fitted": fitted, "shipped": shipped_value}
        print(f"\n| {label} | fitted on | " + " | ".join(f"{n} all-supporting@{k}" for n in names for k in CONTEXT_SIZES)
              + " | " + " | ".join(f"{n} nDCG@10" for n in names) + " |")
        print("|---" * (2 + len(names) * (len(CONTEXT_SIZES) + 1)) + "|")
        for w in WEIGHT_GRID:
            marks = ", ".join(n for n in names if fitted[n] == w) + (" (shipped)" if w == shipped_value else "")
            cells = [grid[n][str(w)][f"all_supporting@{k}"] for n in names for k in CONTEXT_SIZES]
            cells += [grid[n][str(w)]["ndcg@10"] for n in names]
            print(f"| {w} | {marks} | " + " | ".join(f"{c:.3f}" for c in cells) + " |")
    print("\npool holds every supporting paragraph: " + ", ".join(
        f"{n} {result['link weight']['grid'][n]['0.0']['pool_all_supporting']:.3f}" for n in names))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0

if __name__ == "__main__":
    sys.exit(main())
