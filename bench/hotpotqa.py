"""Shared by the benchmarks: the machine they ran on, their reports, percentiles, and the HotpotQA pool.

``load_questions`` reads the IRCoT/HotpotQA JSONL; ``ingest_pool`` writes the paragraphs of
all questions, deduplicated by title, as JSONL records and ingests them with the ordinary
:class:`Ingestor`, into a work directory that later runs reuse (unchanged text is never
embedded twice).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from arag.environment import apply_offline_environment  # noqa: E402 - needs the path above

# Before anything below imports transformers, torch or Chroma, which read these when imported.
apply_offline_environment()

from arag.evaluation.runner import machine  # noqa: E402 - the benchmarks' machine line, one definition


def write_report(out: Path, **fields) -> dict:
    """Write ``fields`` with the machine and date as JSON to ``out``; print the machine line."""
    import time

    report = {"machine": machine(), "date": time.strftime("%Y-%m-%d"), **fields}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nmachine: {report['machine']}\n")
    return report


def print_table(columns: list[str], rows: list[list]) -> None:
    """Print a Markdown table."""
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(str(cell) for cell in row) + " |")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def load_questions(path: Path) -> tuple[list[dict], list[dict]]:
    """(questions with gold answers and supporting titles, pooled paragraphs deduplicated by title)."""
    questions, pool = [], {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        for ctx in row["contexts"]:
            pool.setdefault(ctx["title"], {"id": ctx["title"], "title": ctx["title"], "text": ctx["paragraph_text"]})
        questions.append({
            "id": row["question_id"],
            "question": row["question_text"],
            "answers": [span for obj in row["answers_objects"] for span in obj["spans"]],
            "relevant": sorted({c["title"] for c in row["contexts"] if c["is_supporting"]}),
        })
    return questions, list(pool.values())


def ingest_pool(data: Path, work_dir: Path, fresh: bool = False):
    """Ingest the pooled paragraphs of ``data`` into ``work_dir``; return the :class:`Ingestor`."""
    import shutil

    from arag.ingestion.ingest import Ingestor
    from arag.settings import Settings

    _, paragraphs = load_questions(data)
    if fresh:
        shutil.rmtree(work_dir, ignore_errors=True)
    work_dir.mkdir(parents=True, exist_ok=True)
    corpus = work_dir / "hotpotqa-pool.jsonl"
    body = "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in paragraphs)
    if not corpus.exists() or corpus.read_text(encoding="utf-8") != body:
        corpus.write_text(body, encoding="utf-8")
    ingestor = Ingestor.from_settings(Settings(data_dir=work_dir / "data", collection="hotpotqa"))
    print(f"ingesting {len(paragraphs)} pooled paragraphs …", file=sys.stderr)
    report = ingestor.ingest([corpus], progress=True)
    print(report.summary(), file=sys.stderr)
    if report.failures:
        raise SystemExit(f"ingestion failed: {report.failures[0]}")
    return ingestor
