"""The whole graph on HotpotQA multi-hop questions: answer quality, cost and time per profile.

Run: ``.venv/bin/python bench/hotpotqa_graph.py [--profiles naive,fast,agentic] [--limit 20]``
Writes ``bench/results/hotpotqa_graph.json`` (every question's answer and trace) and prints
a Markdown table.

The pooled paragraphs of ``dev-250.jsonl`` are ingested like user documents (the same
collection ``bench/retrieval_quality.py`` builds, reused between runs). For each profile and
question: exact match and token F1 against the gold answers (SQuAD normalisation), whether
the answer contains a gold answer, recall of the two supporting paragraphs in the context
given to the generator, LLM calls, prompt and completion tokens, and seconds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hotpotqa import REPO, ingest_pool, load_questions, machine, percentile  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "hotpotqa" / "dev-250.jsonl")
    parser.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "arag-bench-retrieval-quality")
    parser.add_argument("--profiles", default="naive,fast,agentic")
    parser.add_argument("--limit", type=int, default=20, help="first N questions")
    parser.add_argument("--llm", default="llamacpp:local-1.5b")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "hotpotqa_graph.json")
    args = parser.parse_args()

    from arag.evaluation.metrics import contains_answer, exact_match, recall_at, token_f1
    from arag.runtime.components import Components
    from graphs import build_graph

    questions = load_questions(args.data)[0][: args.limit]
    ingestor = ingest_pool(args.data, args.work_dir)
    settings = ingestor.settings.model_copy(update={"llm": args.llm})
    parts = Components(settings, embedder=ingestor.embedder, store=ingestor.store)
    graph = build_graph(components=parts)
    graph.invoke({"question": "warm-up: who wrote Hamlet?"}, {"configurable": {"profile": "naive"}})

    summary, records = [], []
    for profile in args.profiles.split(","):
        rows = []
        for i, q in enumerate(questions, start=1):
            started = time.perf_counter()
            out = graph.invoke({"question": q["question"]}, {"configurable": {"profile": profile}})
            seconds = time.perf_counter() - started
            context_titles = [d["title"] for d in out.get("documents", [])]
            row = {
                "profile": profile, "id": q["id"], "question": q["question"], "gold": q["answers"],
                "answer": out["answer"], "em": exact_match(out["answer"], q["answers"]),
                "f1": token_f1(out["answer"], q["answers"]), "contains": contains_answer(out["answer"], q["answers"]),
                "context_recall": recall_at(context_titles, set(q["relevant"]), 10),
                "llm_calls": out["llm_calls"], "seconds": round(seconds, 2),
                "prompt_tokens": sum(e.get("prompt_tokens", 0) for e in out["trace"]),
                "completion_tokens": sum(e.get("completion_tokens", 0) for e in out["trace"]),
                "decomposed": bool(out.get("sub_questions")), "route": out.get("route"),
                "trace": out["trace"],
            }
            rows.append(row)
            print(f"[{profile} {i}/{len(questions)}] {seconds:5.1f}s calls={row['llm_calls']} "
                  f"f1={row['f1']:.2f} {out['answer'][:70]!r}", file=sys.stderr)
        records += rows
        secs = [r["seconds"] for r in rows]
        summary.append({
            "profile": profile, "questions": len(rows),
            **{key: round(statistics.mean(r[key] for r in rows), 3)
               for key in ("em", "f1", "contains", "context_recall", "llm_calls", "prompt_tokens", "completion_tokens")},
            "decomposed_share": round(sum(r["decomposed"] for r in rows) / len(rows), 2),
            "median_s": round(statistics.median(secs), 1), "p95_s": round(percentile(secs, 0.95), 1),
            "mean_s": round(statistics.mean(secs), 1),
        })
    report = {"machine": machine(), "date": time.strftime("%Y-%m-%d"), "llm": args.llm, "data": args.data.name,
              "limit": args.limit, "summary": summary, "records": records}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(f"\n{args.limit} questions of {args.data.name}, LLM {args.llm}; machine: {report['machine']}\n")
    print("| profile | EM | F1 | answer contains gold | supporting paragraphs in context | LLM calls | prompt tokens "
          "| completion tokens | decomposed | mean s | median s | p95 s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for s in summary:
        print(f"| {s['profile']} | {s['em']:.3f} | {s['f1']:.3f} | {s['contains']:.2f} | {s['context_recall']:.2f} | "
              f"{s['llm_calls']:.2f} | {s['prompt_tokens']:.0f} | {s['completion_tokens']:.0f} | {s['decomposed_share']:.0%} | "
              f"{s['mean_s']} | {s['median_s']} | {s['p95_s']} |")


if __name__ == "__main__":
    main()
