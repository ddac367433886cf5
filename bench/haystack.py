"""Long context against RAG: the answer's two paragraphs hidden among more and more distractors.

Run: ``.venv/bin/python bench/haystack.py [--questions 6] [--skip 0] [--sizes 8,50,200] [--data FILE]``
Writes ``bench/results/haystack.json`` and ``bench/results/haystack.png`` and prints the table the
README quotes.

Protocol. The pooled paragraphs of ``--data`` (dev-250: 2,495) are ingested once, as
``arag eval`` ingests a dataset. For each of the first ``--questions`` questions and each size N,
a haystack is the question's two supporting paragraphs and N distractors: its own eight first,
then paragraphs of the questions after it. The supporting pair is placed at a depth that cycles
over the start, the middle and the end of the haystack, question by question. Both paths run
through the shipped graph, scoped to the haystack's documents (the ``sources`` setting):

- ``long-context``: no retrieval; the model reads the haystack in its order (``long_context``,
  a 32,768-token window), as far as the window holds;
- ``rag``: the shipped default (hybrid search, second hop, calibrated grade, rerank, four or five
  passages) over the same haystack.

Short answers are graded by token F1 against the gold answer; seconds and prompt tokens are the
graph's own. The configurations alternate question by question; the model's KV cache is cleared
before each call, so each pays for its whole prompt.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hotpotqa import REPO, print_table, write_report  # noqa: E402

from arag.evaluation.datasets import load_dataset  # noqa: E402
from arag.evaluation.metrics import token_f1  # noqa: E402
from arag.evaluation.runner import index_corpus  # noqa: E402
from arag.llms.llamacpp import forget_prompt_caches  # noqa: E402
from arag.settings import Settings  # noqa: E402
from arag.text import strip_citations  # noqa: E402
from graphs import build_graph  # noqa: E402

WINDOW = 32768
DEPTHS = ("start", "middle", "end")


def haystack(question, later, size: int, depth: str) -> list[str]:
    """The documents of one haystack, in reading order: ``size`` distractors, the supporting pair at ``depth``."""
    own = [d for d in question.documents if d not in question.relevant]
    others = [d for q in later for d in q.documents if d not in question.relevant and d not in own]
    distractors = list(dict.fromkeys(own + others))[:size]
    if len(distractors) < size:
        raise SystemExit(f"only {len(distractors)} distractors for a haystack of {size}: use fewer questions or sizes")
    supporting = sorted(question.relevant)
    at = {"start": 0, "middle": len(distractors) // 2, "end": len(distractors)}[depth]
    return distractors[:at] + supporting + distractors[at:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "hotpotqa" / "dev-250.jsonl")
    parser.add_argument("--questions", type=int, default=6)
    parser.add_argument("--skip", type=int, default=0,
                        help="start after this many questions (their haystacks and depths as in a run from the first)")
    parser.add_argument("--sizes", default="8,50,200")
    parser.add_argument("--work", type=Path, default=Path("/tmp/arag-haystack"))
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "haystack.json")
    parser.add_argument("--draw", type=Path, nargs="+", metavar="REPORT",
                        help="measure nothing: draw --out's picture from the rows of these result files")
    args = parser.parse_args()
    if args.draw:
        draw_from(args.draw, args.out.with_suffix(".png"))
        return
    sizes = [int(s) for s in args.sizes.split(",")]

    dataset = load_dataset(args.data)
    settings = Settings(data_dir=args.work / "data", answer_style="short")
    indexed = index_corpus(settings, dataset)
    graph = build_graph(components=indexed.components)
    questions = [q for q in dataset.questions if len(q.relevant) == 2][args.skip : args.skip + args.questions]
    later = dataset.questions[args.skip + args.questions :]
    configs = {"long-context": {"long_context": True, "llm_context_tokens": WINDOW}, "rag": {}}
    rows = []
    for number, question in enumerate(questions, start=args.skip):
        depth = DEPTHS[number % len(DEPTHS)]
        for size in sizes:
            sources = [indexed.prefix + d for d in haystack(question, later, size, depth)]
            for name, overrides in configs.items():
                forget_prompt_caches()
                started = time.perf_counter()
                state = graph.invoke({"question": question.question},
                                     {"configurable": {"answer_style": "short", "sources": sources, **overrides}})
                seconds = time.perf_counter() - started
                read = next((e for e in state["trace"] if e["node"] == "read_all"), {})
                context = {indexed.chunk_docs.get(d["chunk_id"], "") for d in state.get("documents") or []}
                rows.append({
                    "question": question.id, "size": size, "depth": depth, "config": name,
                    "f1": round(token_f1(strip_citations(state.get("answer", "")), question.answers), 4),
                    "answer": state.get("answer", ""), "gold": question.answers[0],
                    "supporting_read": sorted(question.relevant & context),
                    "documents_read": len({d.get("source") for d in state.get("documents") or []}),
                    "prompt_tokens": sum(e.get("prompt_tokens", 0) for e in state["trace"]),
                    "seconds": round(seconds, 2), "window_full": bool(read) and read["read"] < read["in_scope"],
                })
                print(f"{question.id} size {size} {depth} {name}: F1 {rows[-1]['f1']} in {seconds:.1f} s "
                      f"({rows[-1]['prompt_tokens']} prompt tokens)", file=sys.stderr)

    table = summarise(rows)
    command = "python bench/haystack.py " + " ".join(sys.argv[1:])
    write_report(args.out, command=command, data=args.data.name, window=WINDOW, table=table, rows=rows)
    print_summary(table)
    draw(table, args.out.with_suffix(".png"))


def summarise(rows: list[dict]) -> list[dict]:
    """One line per haystack size and path: mean F1, share with both supporting read, median tokens and seconds."""
    table = []
    for size in sorted({r["size"] for r in rows}):
        for name in dict.fromkeys(r["config"] for r in rows):
            got = [r for r in rows if r["size"] == size and r["config"] == name]
            table.append({
                "size": size, "config": name, "questions": len(got),
                "f1": round(statistics.mean(r["f1"] for r in got), 3),
                "both_supporting_read": round(statistics.mean(len(r["supporting_read"]) == 2 for r in got), 2),
                "prompt_tokens": round(statistics.median(r["prompt_tokens"] for r in got)),
                "median_s": round(statistics.median(r["seconds"] for r in got), 1),
                "window_full": sum(r["window_full"] for r in got),
            })
    return table


def print_summary(table: list[dict]) -> None:
    print_table(["paragraphs (2 supporting + distractors)", "path", "questions", "F1", "both supporting in context",
                 "prompt tokens (median)", "median s"],
                [[t["size"] + 2, t["config"], t["questions"], t["f1"], t["both_supporting_read"], t["prompt_tokens"],
                  t["median_s"]] for t in table])


def draw_from(reports: list[Path], path: Path) -> None:
    """One picture from the rows of several runs (say, the large haystack run on its own), with who ran what."""
    rows, runs = [], []
    for report in reports:
        data = json.loads(report.read_text())
        rows += data["rows"]
        runs.append(f"{data['date']} {data['machine']['cpu'].split(' Processor')[0]}")
    table = summarise(rows)
    print_summary(table)
    draw(table, path, note="runs: " + "; ".join(dict.fromkeys(runs)))


def draw(table: list[dict], path: Path, note: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (quality, cost) = plt.subplots(1, 2, figsize=(9, 3.6))
    for name, style in (("long-context", "o-"), ("rag", "s--")):
        got = [t for t in table if t["config"] == name]
        quality.plot([t["size"] + 2 for t in got], [t["f1"] for t in got], style, label=name)
        cost.plot([t["size"] + 2 for t in got], [t["median_s"] for t in got], style, label=name)
        for t in got:
            quality.annotate(f"{t['questions']} q", (t["size"] + 2, t["f1"]), fontsize=7,
                             textcoords="offset points", xytext=(3, 3))
    cost.set_yscale("log")
    for axis, label in ((quality, "F1"), (cost, "median seconds")):
        axis.set_xscale("log")
        axis.set_xlabel("paragraphs in the haystack")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
    quality.legend()
    fig.suptitle("Long context against RAG (HotpotQA dev, 1.5B model, 2 cores)")
    if note:
        fig.text(0.5, 0.01, note, ha="center", fontsize=7)
    fig.tight_layout(rect=(0, 0.04 if note else 0, 1, 1))
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
