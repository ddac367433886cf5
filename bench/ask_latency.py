"""Ingest throughput and `ask` latency on the bundled sample corpus, per local LLM preset.

Run: ``.venv/bin/python bench/ask_latency.py [--presets local-1.5b,local-0.5b,local-270m]``
Writes ``bench/results/ask_latency.json`` and prints a Markdown table.

Measured per preset, in one process (models loaded once, as in the UI or a server):
ingestion of the corpus from scratch (chunks a second, embedding included) and again with
nothing changed; then 10 questions through the graph: median and p95 seconds, prompt and
completion tokens per LLM call. A cold ``arag ask`` (new process: imports, model loading)
is timed once per preset too: to the end of its last step before the LLM call, to its first
answer token (streamed to a pseudo-terminal, as at a person's terminal) and to its exit.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hotpotqa import REPO, machine, percentile  # noqa: E402
from tutorial_qa import QUESTIONS as GOLD_QUESTIONS  # noqa: E402
from tutorial_qa import TITLES  # noqa: E402

QUESTIONS = [
    "Which command creates a virtual environment?",
    "How do you activate a virtual environment on Windows?",
    "How do I install a specific version of a package with pip?",
    "What does pip freeze do?",
    "What happens when an exception is not handled?",
    "What is the else clause of a try statement for?",
    "What is the module search path?",
    "What is the purpose of __init__.py files in packages?",
    "How do you exit the interactive interpreter?",
    "Which module provides regular expression tools?",
]


def cold_ask(env: dict, question: str, profile: str, root: Path = REPO) -> dict:
    """A new ``arag ask`` process of the source tree ``root``, timed from its launch: when its last
    step before the LLM ends (the last progress line before the answer), when the first answer token
    appears, when it exits, and how long it took to exit after its last output (``exit_s``).

    Its standard output is a pseudo-terminal, so it streams the answer token by token as it
    does for a person at a terminal.
    """
    import pty
    import select

    controller, terminal = pty.openpty()
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "arag", "ask", question, "--profile", profile], env=env, cwd=root,
                             stdout=terminal, stderr=subprocess.PIPE)
    os.close(terminal)
    last_progress = first_token = last_output = None
    streams = {controller: "answer", child.stderr.fileno(): "progress"}
    while streams:
        ready, _, _ = select.select(list(streams), [], [], 1.0)
        for fd in ready:
            try:
                data = os.read(fd, 4096)
            except OSError:  # the terminal closes with the child
                data = b""
            if not data:
                del streams[fd]
                continue
            last_output = time.perf_counter() - started
            if streams[fd] == "progress" and first_token is None:
                last_progress = time.perf_counter() - started
            elif streams[fd] == "answer" and first_token is None and data.strip():
                first_token = time.perf_counter() - started
    if child.wait() != 0:
        raise SystemExit(f"arag ask failed with status {child.returncode}")
    total = time.perf_counter() - started
    os.close(controller)
    return {"total_s": round(total, 2), "llm_call_starts_s": round(last_progress or 0.0, 2),
            "first_token_s": round(first_token or 0.0, 2), "exit_s": round(total - (last_output or total), 3)}


def per_call(out: dict, key: str) -> float:
    """A run's ``key`` tokens (prompt or completion) over its LLM calls (at least one)."""
    return sum(e.get(key, 0) for e in out["trace"]) / max(1, out["llm_calls"])


def gold_answers(graph, questions: list[tuple[str, list[str], str]], cites_page) -> dict:
    """``(question, short answers, page that states it)`` asked of one index: how many answers hold a gold
    answer, token F1, seconds, prompt tokens a call, and how many cite the page (``cites_page(citation, page)``).
    """
    from arag.evaluation.metrics import contains_answer, token_f1

    rows = []
    for question, answers, page in questions:
        started = time.perf_counter()
        out = graph.invoke({"question": question})
        rows.append({"question": question, "gold": answers, "answer": out["answer"],
                     "seconds": round(time.perf_counter() - started, 2),
                     "holds_answer": contains_answer(out["answer"], answers), "f1": round(token_f1(out["answer"], answers), 3),
                     "cites_page": any(cites_page(c, page) for c in out["citations"]),
                     "prompt_tokens": per_call(out, "prompt_tokens"), "completion_tokens": per_call(out, "completion_tokens"),
                     "llm_calls": out["llm_calls"]})
    return {"questions": len(rows), "answers_holding_gold": int(sum(r["holds_answer"] for r in rows)),
            "mean_f1": round(statistics.mean(r["f1"] for r in rows), 3),
            "citing_the_page": sum(r["cites_page"] for r in rows),
            "ask_median_s": round(statistics.median(r["seconds"] for r in rows), 2),
            "prompt_tokens_per_call": round(statistics.mean(r["prompt_tokens"] for r in rows)), "rows": rows}


def bench_preset(preset: str, data_dir: Path, models_dir: Path, profile: str, repeat_cold: int = 1,
                 gold: bool = False) -> dict:
    from arag.ingestion.ingest import Ingestor
    from arag.runtime.components import Components
    from arag.settings import Settings
    from graphs import build_graph

    shutil.rmtree(data_dir, ignore_errors=True)
    settings = Settings(data_dir=data_dir, models_dir=models_dir, llm=f"llamacpp:{preset}").for_run(
        {"configurable": {"profile": profile}}
    )
    ingestor = Ingestor.from_settings(settings)
    ingestor.embedder.embed_documents(["warm up the encoder"])
    cold = ingestor.ingest([REPO / "arag" / "samples"], progress=False)
    warm = ingestor.ingest([REPO / "arag" / "samples"], progress=False)
    graph = build_graph(components=Components(settings, embedder=ingestor.embedder, store=ingestor.store))
    graph.invoke({"question": "warm-up: what is Python?"})
    rows = []
    for question in QUESTIONS:
        started = time.perf_counter()
        out = graph.invoke({"question": question})
        seconds = time.perf_counter() - started
        rows.append({
            "question": question, "seconds": round(seconds, 2), "llm_calls": out["llm_calls"],
            "prompt_tokens": per_call(out, "prompt_tokens"), "completion_tokens": per_call(out, "completion_tokens"),
            "cited": bool(out["citations"]), "answer": out["answer"],
        })
    checked = gold_answers(graph, GOLD_QUESTIONS, lambda c, page: c.get("title") == TITLES[page]) if gold else None
    env = {**os.environ, "ARAG_DATA_DIR": str(data_dir), "ARAG_MODELS_DIR": str(settings.models_path), "ARAG_LLM": f"llamacpp:{preset}"}
    runs = sorted((cold_ask(env, QUESTIONS[0], profile) for _ in range(repeat_cold)), key=lambda r: r["total_s"])
    cold_cli = runs[len(runs) // 2]
    secs = [r["seconds"] for r in rows]
    return {
        "preset": preset,
        "profile": profile,
        "llm_calls_per_question": round(statistics.mean(r["llm_calls"] for r in rows), 2),
        "chunks": cold.chunks_written,
        "ingest_seconds": round(cold.seconds, 2),
        "ingest_chunks_per_s": round(cold.chunks_written / cold.seconds, 1),
        "reingest_unchanged_seconds": round(warm.seconds, 2),
        "ask_median_s": round(statistics.median(secs), 2),
        "ask_p95_s": round(percentile(secs, 0.95), 2),
        "prompt_tokens_per_call": round(statistics.mean(r["prompt_tokens"] for r in rows)),
        "completion_tokens_per_call": round(statistics.mean(r["completion_tokens"] for r in rows)),
        "cited_share": sum(r["cited"] for r in rows) / len(rows),
        "cold_cli_ask_s": cold_cli["total_s"],
        "cold_cli_llm_call_starts_s": cold_cli["llm_call_starts_s"],
        "cold_cli_first_token_s": cold_cli["first_token_s"],
        "cold_cli_runs": runs,
        "questions": rows,
        **({"gold": checked} if checked else {}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="local-1.5b,local-0.5b,local-270m")
    parser.add_argument("--profile", default="fast", choices=["naive", "fast", "agentic"])
    parser.add_argument("--repeat-cold", type=int, default=1, help="cold asks per preset (the median is kept)")
    parser.add_argument("--gold", action="store_true",
                        help="also ask bench/tutorial_qa.py's 14 questions and check their answers against its gold ones")
    parser.add_argument("--models-dir", type=Path, default=None, help="assembled GGUF models (default: the per-user cache)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "ask_latency.json")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for preset in args.presets.split(","):
            print(f"benchmarking {preset} …", file=sys.stderr)
            results.append(bench_preset(preset, Path(tmp) / preset, args.models_dir, args.profile, args.repeat_cold, args.gold))
    report = {"machine": machine(), "date": time.strftime("%Y-%m-%d"), "results": results}
    if args.out == parser.get_default("out") and args.profile != "fast":
        args.out = args.out.with_name(f"ask_latency_{args.profile}.json")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False))
    print(f"Machine: {report['machine']}\n")
    print("| preset | profile | ingest chunks/s | re-ingest unchanged s | LLM calls/question | ask median s | ask p95 s "
          "| prompt tokens/call | completion tokens/call | answers cited | cold `arag ask` s | of which before the LLM call "
          "| first token |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['preset']} | {r['profile']} | {r['ingest_chunks_per_s']} | {r['reingest_unchanged_seconds']} | "
              f"{r['llm_calls_per_question']} | {r['ask_median_s']} | "
              f"{r['ask_p95_s']} | {r['prompt_tokens_per_call']} | {r['completion_tokens_per_call']} | "
              f"{r['cited_share']:.0%} | {r['cold_cli_ask_s']} | {r['cold_cli_llm_call_starts_s']} | "
              f"{r['cold_cli_first_token_s']} |")
    for r in results:
        if "gold" in r:
            g = r["gold"]
            print(f"\n{r['preset']}, tutorial_qa's {g['questions']} questions: {g['answers_holding_gold']} answers hold a gold "
                  f"answer, mean F1 {g['mean_f1']}, {g['citing_the_page']} cite the page that states it, "
                  f"{g['prompt_tokens_per_call']} prompt tokens a call")


if __name__ == "__main__":
    main()
