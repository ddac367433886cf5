"""Text-to-SQL execution accuracy on the tables in ``bench/tables`` with the local model.

Run: ``.venv/bin/python bench/text_to_sql.py [--llm llamacpp:local-1.5b]``
Writes ``bench/results/text_to_sql.json`` and prints a Markdown table.

The three tables (and a page of text, so the router has a choice) are ingested by the ordinary
ingest path into a data directory of their own; every question of ``questions.jsonl`` goes
through the whole graph, as ``arag ask`` would send it. A question counts as answered correctly
when the rows of the app's query match the rows of the gold query: the same number of rows, and
each gold column found among the app's columns with the same values (numbers to 4 significant
digits, row order ignored, extra columns allowed). Also reported: how many questions the router
sent to SQL, how many queries needed their one repair, and the seconds per question.
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
from hotpotqa import REPO, machine, percentile  # noqa: E402

TABLES = REPO / "bench" / "tables"


def normalised(value):
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(f"{float(value):.4g}")
    return str(value).strip().lower() if value is not None else None


def rows_match(gold: list[tuple], got: list[tuple]) -> bool:
    """Same row count, and every gold column's values (as a multiset) among the app's columns."""
    if len(gold) != len(got):
        return False
    if not gold:
        return True
    columns = [sorted(map(str, (normalised(r[k]) for r in got))) for k in range(len(got[0]))]
    return all(sorted(map(str, (normalised(r[j]) for r in gold))) in columns for j in range(len(gold[0])))


def main() -> None:
    from arag.ingestion.ingest import Ingestor
    from arag.runtime.components import Components
    from arag.settings import Settings
    from arag.tables.catalog import TableCatalog
    from arag.tables.sql_guard import run_select
    from graphs import build_graph

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--llm", default="llamacpp:local-1.5b")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "text_to_sql.json")
    args = parser.parse_args()
    questions = [json.loads(line) for line in (TABLES / "questions.jsonl").read_text().splitlines() if line.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus"
        corpus.mkdir()
        for name in ("planets.csv", "elements.csv", "sales.csv"):
            (corpus / name).write_bytes((TABLES / name).read_bytes())
        (corpus / "about.md").write_text("# About the shop\n\nThe shop sells hot and cold drinks in four regions.")
        settings = Settings(data_dir=Path(tmp) / "data", collection="tables", llm=args.llm)
        ingestor = Ingestor.from_settings(settings)
        report = ingestor.ingest([corpus], progress=False)
        catalog = TableCatalog(settings.data_dir, settings.collection)
        graph = build_graph(components=Components(settings, embedder=ingestor.embedder, store=ingestor.store))
        graph.invoke({"question": "warm-up: which planet is the largest by diameter?"})
        rows = []
        for q in questions:
            gold = run_select(catalog.database, q["sql"]).rows
            started = time.perf_counter()
            out = graph.invoke({"question": q["question"]})
            seconds = time.perf_counter() - started
            attempts = next((e.get("attempts", []) for e in out["trace"] if e["node"] == "text_to_sql"), [])
            got = run_select(catalog.database, out["sql"]).rows if out.get("sql") else None
            rows.append({"question": q["question"], "gold_sql": q["sql"], "sql": out.get("sql", ""), "answer": out["answer"],
                         "routed_to_sql": any(e["node"] == "text_to_sql" for e in out["trace"]),
                         "repaired": len(attempts) > 1, "correct": got is not None and rows_match(gold, got),
                         "llm_calls": out["llm_calls"], "seconds": round(seconds, 2)})
            print(json.dumps(rows[-1]), file=sys.stderr)
    secs = [r["seconds"] for r in rows]
    summary = {
        "questions": len(rows), "tables": report.tables,
        "execution_accuracy": round(sum(r["correct"] for r in rows) / len(rows), 3),
        "routed_to_sql": sum(r["routed_to_sql"] for r in rows),
        "repaired": sum(r["repaired"] for r in rows),
        "median_s": round(statistics.median(secs), 2), "p95_s": round(percentile(secs, 0.95), 2),
        "llm_calls_mean": round(statistics.mean(r["llm_calls"] for r in rows), 2),
    }
    out = {"machine": machine(), "date": time.strftime("%Y-%m-%d"), "llm": args.llm,
           "command": "python bench/text_to_sql.py " + " ".join(sys.argv[1:]), "summary": summary, "rows": rows}
    args.out.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    print("| questions | routed to SQL | execution accuracy | repaired | LLM calls (mean) | median s | p95 s |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {summary['questions']} | {summary['routed_to_sql']} | {summary['execution_accuracy']:.3f} | "
          f"{summary['repaired']} | {summary['llm_calls_mean']} | {summary['median_s']} | {summary['p95_s']} |")


if __name__ == "__main__":
    main()
