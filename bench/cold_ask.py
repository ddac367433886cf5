"""A cold ``arag ask`` of this checkout against another source tree, run alternately on one machine.

Run: ``.venv/bin/python bench/cold_ask.py --before /tmp/old-checkout [--runs 5]``
(make the other tree with ``git worktree add /tmp/old-checkout <commit>``).
Writes ``bench/results/cold_ask.json`` and prints a Markdown table.

The sample corpus is ingested once, by this checkout, into a temporary data directory that both trees
then read, so only the code of the asking process differs. Each round asks the first of
``ask_latency.py``'s questions once with each tree, in turn, so drift in the machine's speed falls on
both alike; medians are reported with the ratio of this checkout's to the other's. The seconds are
those of ``ask_latency.py``'s cold ask: to the end of the last step before the LLM call, to the first
answer token, to the process's exit, and from its last output to its exit.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ask_latency import QUESTIONS, cold_ask  # noqa: E402
from hotpotqa import REPO, machine  # noqa: E402

FIELDS = ("total_s", "llm_call_starts_s", "first_token_s", "exit_s")


def git_commit(root: Path) -> str:
    done = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return (done.stdout.strip() or "unknown") + ("+changes" if dirty else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="the other source tree (a checkout of an earlier commit)")
    parser.add_argument("--runs", type=int, default=5, help="cold asks per tree")
    parser.add_argument("--preset", default="local-1.5b")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "cold_ask.json")
    args = parser.parse_args()
    if not (args.before / "arag" / "cli.py").is_file():
        parser.error(f"{args.before}: not an arag source tree")
    trees = {"before": args.before.resolve(), "now": REPO}
    runs: dict[str, list[dict]] = {name: [] for name in trees}
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "ARAG_DATA_DIR": tmp, "ARAG_LLM": f"llamacpp:{args.preset}"}
        subprocess.run([sys.executable, "-m", "arag", "ingest", str(REPO / "arag" / "samples"), "--quiet"],
                       env=env, cwd=REPO, check=True)
        for round_ in range(args.runs):
            for name, root in trees.items():
                runs[name].append(cold_ask(env, QUESTIONS[0], "fast", root))
                print(f"round {round_ + 1} {name}: {runs[name][-1]}", file=sys.stderr)
    medians = {name: {f: round(statistics.median(r[f] for r in rs), 3) for f in FIELDS} for name, rs in runs.items()}
    report = {"machine": machine(), "date": time.strftime("%Y-%m-%d"), "preset": args.preset,
              "commits": {name: git_commit(root) for name, root in trees.items()},
              "medians": medians, "ratio_now_to_before": {f: round(medians["now"][f] / medians["before"][f], 3)
                                                          for f in FIELDS if medians["before"][f]},
              "runs": runs}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"Machine: {report['machine']}\n")
    print("| code | cold `arag ask` s | before the LLM call | first token | exit after the last output |")
    print("|---|---|---|---|---|")
    for name in trees:
        m = medians[name]
        print(f"| {name} ({report['commits'][name]}) | {m['total_s']} | {m['llm_call_starts_s']} | {m['first_token_s']} | "
              f"{m['exit_s']} |")
    ratio = report["ratio_now_to_before"]
    print(f"| now ÷ before | {ratio.get('total_s')} | {ratio.get('llm_call_starts_s')} | {ratio.get('first_token_s')} | "
          f"{ratio.get('exit_s')} |")


if __name__ == "__main__":
    main()
