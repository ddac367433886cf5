"""The local LLMs as relevance graders, for the record: accuracy and cost of their yes-probability.

Run: ``.venv/bin/python bench/llm_grader.py [--limit 10] [--presets local-0.5b,local-1.5b]``
Writes ``bench/results/llm_grader.json`` and prints a Markdown table.

For each of the first ``--limit`` questions of dev-250, each of its 10 paragraphs (2 supporting,
8 distractors) is scored by :class:`relevance.scorers.LLMYesScorer` (logit of "yes" minus
"no" as the first token of the reply, one forward pass a passage, the question's prefix cached).
A paragraph counts as judged relevant when the model's own probability of "yes" is at least
0.5. Also given: nDCG@10 of ordering each question's 10 paragraphs by the score, and the
seconds a pair costs, from which reranking 30 candidates is extrapolated.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hotpotqa import REPO, print_table, write_report  # noqa: E402

from arag.evaluation.metrics import ndcg_at  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "hotpotqa" / "dev-250.jsonl")
    parser.add_argument("--limit", type=int, default=10)
    parser.add_argument("--presets", default="local-0.5b,local-1.5b")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "llm_grader.json")
    args = parser.parse_args()

    from arag.llms.factory import make_chat_model
    from arag.relevance.calibration import threshold_metrics
    from arag.relevance.scorers import LLMYesScorer
    from arag.settings import Settings

    rows = [json.loads(line) for line in args.data.read_text(encoding="utf-8").splitlines() if line.strip()][: args.limit]
    results = []
    for preset in args.presets.split(","):
        settings = Settings(llm=f"llamacpp:{preset}", llm_context_tokens=1024)
        scorer = LLMYesScorer(make_chat_model(settings, progress=False))
        scorer.score("warm up", ["a passage"])
        probabilities, gold, seconds, ndcgs = [], [], [], []
        for row in rows:
            passages = [f"{c['title']}\n{c['paragraph_text']}" for c in row["contexts"]]
            started = time.perf_counter()
            raw = scorer.score(row["question_text"], passages)
            seconds.append((time.perf_counter() - started) / len(passages))
            probabilities += list(1 / (1 + np.exp(-raw)))
            gold += [float(c["is_supporting"]) for c in row["contexts"]]
            order = [row["contexts"][i]["title"] for i in np.argsort(-raw, kind="stable")]
            ndcgs.append(ndcg_at(order, {c["title"] for c in row["contexts"] if c["is_supporting"]}))
        per_pair = statistics.mean(seconds)
        results.append({"llm": preset, "questions": len(rows), "pairs": len(gold),
                        **threshold_metrics(probabilities, gold, 0.5),
                        "yes_rate": round(float(np.mean(np.asarray(probabilities) >= 0.5)), 3),
                        "ndcg@10_within_question": round(statistics.mean(ndcgs), 3),
                        "s_per_pair": round(per_pair, 2), "s_for_30_candidates": round(30 * per_pair, 1)})
        print(json.dumps(results[-1]), file=sys.stderr)
    write_report(args.out, data=args.data.name, results=results)
    print_table(["LLM grader (p(yes) ≥ 0.5)", "accuracy", "precision", "recall", "yes-rate",
                 "nDCG@10 of the 10 paragraphs", "s/pair", "s for 30 candidates"],
                [[r["llm"], f"{r['accuracy']:.3f}", f"{r['precision']:.3f}", f"{r['recall']:.3f}", f"{r['yes_rate']:.2f}",
                  f"{r['ndcg@10_within_question']:.3f}", r["s_per_pair"], r["s_for_30_candidates"]] for r in results])

if __name__ == "__main__":
    main()
