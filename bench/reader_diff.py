"""What a change to the document readers does to a folder's text: this checkout against another source tree.

Run: ``.venv/bin/python bench/reader_diff.py FOLDER --before /tmp/old-checkout [--rounds 2]``
(make the other tree with ``git worktree add /tmp/old-checkout <commit>``).
Writes ``bench/results/reader_diff.json`` and prints a Markdown table.

Every document under FOLDER that ``arag ingest`` reads (by suffix; JSONL and tables aside) is read with
each tree's ``load_file``, in a new process per tree with that tree first on the import path, the
two trees in turn ``--rounds`` times so drift in the machine's speed falls on both alike. Reported:
files and sections read, files and sections whose text or heading differ, sections whose words
differ (where only whitespace differs, the layout changed and nothing was lost or added),
characters of section text, and the median CPU seconds each tree took to read everything. A reader
change that keeps every word reports ``sections whose words differ: 0``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def read_all(listing: Path, out: Path) -> None:
    """In the child process: read each listed file with the ``arag`` found first on the import path."""
    from arag.ingestion.loaders import IngestError, load_file

    texts: dict[str, object] = {}
    started = time.process_time()  # CPU time: what another tenant of a shared machine takes is not counted
    for name in listing.read_text().splitlines():
        path = Path(name)
        try:
            documents = load_file(path, path.read_bytes())
        except IngestError as error:
            texts[name] = {"error": error.reason}
            continue
        texts[name] = [{"title": d.title, "sections": [[s.heading, s.text] for s in d.sections]} for d in documents]
    out.write_text(json.dumps({"seconds": time.process_time() - started, "texts": texts}))


def compare(before: dict, now: dict) -> dict:
    """Counts of what differs between two readings of the same files."""
    counts = {"files": len(now), "files failing": 0, "sections": 0, "files changed": 0, "titles changed": 0,
              "sections added or removed": 0, "headings changed": 0, "sections changed": 0,
              "sections whose words differ": 0, "characters before": 0, "characters now": 0}
    for name, read in now.items():
        old = before[name]
        if isinstance(read, dict) or isinstance(old, dict):
            counts["files failing"] += 1
            counts["files changed"] += read != old
            continue
        counts["files changed"] += read != old
        for old_doc, doc in zip(old, read):
            counts["titles changed"] += old_doc["title"] != doc["title"]
            old_sections, sections = old_doc["sections"], doc["sections"]
            counts["sections"] += len(sections)
            counts["sections added or removed"] += abs(len(sections) - len(old_sections))
            for (old_heading, old_text), (heading, text) in zip(old_sections, sections):
                counts["headings changed"] += old_heading != heading
                counts["sections changed"] += old_text != text
                counts["sections whose words differ"] += old_text.split() != text.split()
            counts["characters before"] += sum(len(text) for _, text in old_sections)
            counts["characters now"] += sum(len(text) for _, text in sections)
        counts["sections added or removed"] += abs(len(read) - len(old))
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, nargs="?", help="the documents to read")
    parser.add_argument("--before", type=Path, help="the other source tree (a checkout of an earlier commit)")
    parser.add_argument("--rounds", type=int, default=2, help="readings per tree, alternated")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "reader_diff.json")
    parser.add_argument("--read", nargs=2, type=Path, metavar=("LISTING", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.read:
        read_all(*args.read)
        return
    if args.folder is None or args.before is None:
        parser.error("FOLDER and --before are required")
    if not (args.before / "arag" / "ingestion" / "loaders.py").is_file():
        parser.error(f"{args.before}: not an arag source tree")
    sys.path.insert(0, str(REPO))
    from arag.evaluation.runner import machine
    from arag.ingestion.loaders import SUPPORTED_SUFFIXES

    files = sorted(str(p) for p in args.folder.rglob("*")
                   if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES - {".jsonl"})
    if not files:
        parser.error(f"{args.folder}: no documents to read")
    trees = {"before": args.before.resolve(), "now": REPO}
    seconds: dict[str, list[float]] = {name: [] for name in trees}
    texts: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        listing = Path(tmp) / "files.txt"
        listing.write_text("\n".join(files))
        for round_ in range(args.rounds):
            for name, root in trees.items():
                out = Path(tmp) / f"{name}.json"
                env = {**os.environ, "PYTHONPATH": str(root)}
                subprocess.run([sys.executable, str(Path(__file__).resolve()), "--read", str(listing), str(out)],
                               env=env, cwd=root, check=True)
                reading = json.loads(out.read_text())
                seconds[name].append(round(reading["seconds"], 2))
                texts[name] = reading["texts"]
                print(f"round {round_ + 1} {name}: {seconds[name][-1]} s", file=sys.stderr)
    counts = compare(texts["before"], texts["now"])
    result = {"machine": machine(), "date": time.strftime("%Y-%m-%d"), "folder": str(args.folder),
              "command": "python bench/reader_diff.py " + " ".join(sys.argv[1:]), "before": str(trees["before"]),
              **counts, "reading_cpu_seconds": seconds,
              "reading_cpu_median_s": {name: round(statistics.median(s), 2) for name, s in seconds.items()}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print("| " + " | ".join(counts) + " | reading CPU s, before | reading CPU s, now |")
    print("|" + "---|" * (len(counts) + 2))
    print("| " + " | ".join(f"{v:,}" for v in counts.values())
          + f" | {result['reading_cpu_median_s']['before']} | {result['reading_cpu_median_s']['now']} |")


if __name__ == "__main__":
    main()
