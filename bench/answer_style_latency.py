"""Warm seconds of the sample questions in two answer styles, interleaved in one process.

Run: ``.venv/bin/python bench/answer_style_latency.py [--styles sentence,auto] [--rounds 2]``
Writes ``bench/results/answer_style_latency.json`` and prints a Markdown table.

Separate runs of ``bench/ask_latency.py`` per style are minutes apart, and this machine's speed
drifts by a fifth over such a span. Here one process (models loaded once, the sample corpus
ingested into a fresh data directory, a warm-up question) asks the 10 questions of
``ask_latency.py`` in each style in turn, the styles' order swapped every round, so drift falls on
both. Per question: the median seconds over the rounds in each style, and the style each question
got (under "auto" it depends on the question). A question sent to the same prompt by both styles
shows what the other style's questions leave in the model's cache for it.
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
from ask_latency import QUESTIONS  # noqa: E402
from hotpotqa import REPO, machine, print_table  # noqa: E402


def main() -> None:
    from arag.ingestion.ingest import Ingestor
    from arag.runtime.components import Components
    from arag.settings import Settings
    from arag.text import answer_style_for
    from graphs import build_graph

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--styles", default="sentence,auto", help="two comma-separated answer styles")
    parser.add_argument("--rounds", type=int, default=2, help="times each style asks every question")
    parser.add_argument("--preset", default="local-1.5b")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "answer_style_latency.json")
    args = parser.parse_args()
    styles = args.styles.split(",")
    if len(styles) != 2 or args.rounds < 1:
        raise SystemExit("give two answer styles and at least one round")
    data_dir = Path(tempfile.mkdtemp(prefix="arag-style-latency-"))
    try:
        settings = Settings(data_dir=data_dir, llm=f"llamacpp:{args.preset}")
        ingestor = Ingestor.from_settings(settings)
        ingestor.ingest([REPO / "arag" / "samples"], progress=False)
        graph = build_graph(components=Components(settings, embedder=ingestor.embedder, store=ingestor.store))
        graph.invoke({"question": "warm-up: what is Python?"})
        seconds: dict[str, dict[str, list[float]]] = {style: {q: [] for q in QUESTIONS} for style in styles}
        answers: dict[str, dict[str, str]] = {style: {} for style in styles}
        for round_ in range(args.rounds):
            for style in styles if round_ % 2 == 0 else styles[::-1]:
                for question in QUESTIONS:
                    started = time.perf_counter()
                    out = graph.invoke({"question": question}, {"configurable": {"answer_style": style}})
                    seconds[style][question].append(round(time.perf_counter() - started, 2))
                    answers[style][question] = out["answer"]
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    rows = [{"question": q, **{f"{s}_style": answer_style_for(s, q) for s in styles},
             **{f"{s}_median_s": round(statistics.median(seconds[s][q]), 2) for s in styles},
             **{f"{s}_seconds": seconds[s][q] for s in styles},
             **{f"{s}_answer": answers[s][q] for s in styles}} for q in QUESTIONS]
    totals = {s: round(sum(r[f"{s}_median_s"] for r in rows), 2) for s in styles}
    result = {"machine": machine(), "date": time.strftime("%Y-%m-%d"), "preset": args.preset, "rounds": args.rounds,
              "command": "python bench/answer_style_latency.py " + " ".join(sys.argv[1:]),
              "sum_of_medians_s": totals, "rows": rows}
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print_table(["question", *(f"{s}: style" for s in styles), *(f"{s}: median s" for s in styles)],
                [[r["question"], *(r[f"{s}_style"] for s in styles), *(r[f"{s}_median_s"] for s in styles)] for r in rows])
    print("\nsum of the medians: " + ", ".join(f"{s} {t} s" for s, t in totals.items()))


if __name__ == "__main__":
    main()
