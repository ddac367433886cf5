"""How llama.cpp's OpenMP threads wait between steps: generation and prompt tokens/s per wait setting,
alone and beside another busy process.

Run: ``.venv/bin/python bench/omp_wait.py [--preset local-1.5b] [--reps 2] [--settings passive,spin-1000,active]``
Writes ``bench/results/omp_wait.json`` and prints a Markdown table.

llama.cpp's CPU backend is built with OpenMP (libgomp): between the steps of a forward pass its
threads wait at a barrier, spinning or asleep as ``OMP_WAIT_POLICY`` and ``GOMP_SPINCOUNT`` say
(read once, when the library loads, so each setting runs in a process of its own). Generating a
token is many short steps, so the wait decides much of its speed; a spinning thread also takes a
core from whatever else runs. Each setting is measured twice: alone on the machine, and beside a
competitor (a Python busy loop, one core's worth, started and stopped by this script), with the
app's own chat model on a 512-token prompt and 64 generated tokens (``llm_throughput.py``'s
measurement). Ratios are to ``passive`` (``OMP_WAIT_POLICY=PASSIVE``, no spinning) under the
same condition in the same run.

Settings: ``passive`` (``GOMP_SPINCOUNT=0``); ``spin-N`` (``OMP_WAIT_POLICY=PASSIVE`` with ``GOMP_SPINCOUNT=N``: spin N
rounds, then sleep); ``active`` (``OMP_WAIT_POLICY=ACTIVE``, ``GOMP_SPINCOUNT=infinite``: spin
without end).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hotpotqa import REPO, machine, print_table  # noqa: E402

DEFAULT_SETTINGS = "passive,spin-100,spin-300,spin-500,spin-1000,active"


def wait_environment(setting: str) -> dict[str, str]:
    """The environment of a child measuring ``setting``."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    # Both variables given every time: the app fills in defaults for those a process lacks.
    if setting == "passive":
        return {**env, "OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": "0"}
    if setting == "active":
        return {**env, "OMP_WAIT_POLICY": "ACTIVE", "GOMP_SPINCOUNT": "infinite"}
    if setting.startswith("spin-") and setting[5:].isdigit():
        return {**env, "OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": setting[5:]}
    raise SystemExit(f"unknown setting {setting!r}: passive, active or spin-N")


def measure(setting: str, preset: str, reps: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", "--preset", preset, "--reps", str(reps)],
                         env=wait_environment(setting), cwd=REPO, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def child(preset: str, reps: int) -> None:
    from llm_throughput import app_tokens_per_s

    from arag.llms.factory import local_model_file
    from arag.settings import Settings

    gguf, _ = local_model_file(preset, Settings(), progress=False)
    print(json.dumps(app_tokens_per_s(gguf, threads=2, batch=512, flash=False, kv="f16", reps=reps)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="local-1.5b")
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--settings", default=DEFAULT_SETTINGS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "omp_wait.json")
    args = parser.parse_args()
    if args.child:
        child(args.preset, args.reps)
        return
    settings = args.settings.split(",")
    for setting in settings:  # a typo fails now, not after the first rows
        wait_environment(setting)
    rows = []
    for condition in ("alone", "beside a busy process"):
        competitor = None
        if condition != "alone":
            competitor = subprocess.Popen([sys.executable, "-c", "while True: pass"])
            time.sleep(1)
        try:
            for setting in settings:
                row = {"condition": condition, "setting": setting, **measure(setting, args.preset, args.reps)}
                rows.append(row)
                print(json.dumps(row), file=sys.stderr)
        finally:
            if competitor is not None:
                competitor.kill()
                competitor.wait()
    for row in rows:
        base = next(r for r in rows if r["condition"] == row["condition"] and r["setting"] == "passive") \
            if "passive" in settings else None
        row["prompt_over_passive"] = round(row["prompt_tps"] / base["prompt_tps"], 2) if base else None
        row["generation_over_passive"] = round(row["generation_tps"] / base["generation_tps"], 2) if base else None
    report = {"machine": machine(), "date": time.strftime("%Y-%m-%d"), "preset": args.preset,
              "command": "python bench/omp_wait.py " + " ".join(sys.argv[1:]), "rows": rows}
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print_table(["condition", "wait", "prompt tok/s", "÷ passive", "generation tok/s", "÷ passive"],
                [[r["condition"], r["setting"], r["prompt_tps"], r["prompt_over_passive"], r["generation_tps"],
                  r["generation_over_passive"]] for r in rows])


if __name__ == "__main__":
    main()
