"""Local LLM throughput: the app's prompt and generation tokens/s against llama.cpp's own llama-bench.

Run: ``.venv/bin/python bench/llm_throughput.py [--preset local-1.5b] [--threads 2] [--reps 3] [--rounds 3]``
Writes ``bench/results/llm_throughput.json`` and prints a Markdown table.

1. **The engine**: llama-bench, compiled with CMake from the llama.cpp sources inside the
   llama-cpp-python source distribution of the installed version (with the compiler flags
   ``make install`` uses on this machine, which ``make llama-cflags`` prints; built once into
   ``~/.cache/arag/llama-bench``), runs the same GGUF file
   with a 512-token prompt and 64 generated tokens over a grid of the settings that decide
   prompt speed: batch size, flash attention, KV cache type, and whether the weights are repacked at
   load (``--repack``: both ways by default).
2. **The app**: the app's own chat model (``LlamaCppChat``, as ``make_chat_model`` builds it)
   with each setting of the grid, on a 512-token prompt (a new one each time, so nothing is
   reused from the cache) and 64 generated tokens (end of text banned).

Each row is measured in the same run, interleaved with its llama-bench twin: ``--rounds`` times
llama-bench then the app, each with ``--reps`` repetitions, and the medians of the rounds are
kept, so that the machine's drift over the minutes of a row falls on both sides alike and the
ratio app / engine means the same on another machine.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hotpotqa import REPO, machine, print_table  # noqa: E402

PROMPT_TOKENS = 512
GENERATED_TOKENS = 64
#: (batch tokens, flash attention, KV cache type) tried; the first is llama.cpp's default.
GRID = [(512, False, "f16"), (256, False, "f16"), (128, False, "f16"), (512, True, "f16"), (512, True, "q8_0")]


def install_cflags() -> str:
    """The compiler flags `make install` builds llama-cpp-python with on this machine (the Makefile decides)."""
    reply = subprocess.run(["make", "-s", "--no-print-directory", "-C", str(REPO), "llama-cflags"],
                           check=True, capture_output=True, text=True)
    return reply.stdout.strip()


def build_llama_bench(cache: Path, flags: str) -> Path:
    """llama-bench for the installed llama-cpp-python version, built once from its sdist with ``flags``.

    The sources and the build folder stay in ``cache``, so an interrupted build resumes; each set of
    flags gets its own build folder.
    """
    import llama_cpp

    version = llama_cpp.__version__
    home = cache / version
    build = home / ("build-" + hashlib.sha256(flags.encode()).hexdigest()[:8])
    binary = build / "bin" / "llama-bench"
    if binary.exists():
        return binary
    home.mkdir(parents=True, exist_ok=True)
    name = f"llama_cpp_python-{version}.tar.gz"
    sdist = home / name
    if not sdist.exists():
        # The sdist's link from the package index's simple page: `pip download --no-binary` would
        # build every build dependency from source just to read the package's metadata.
        with urllib.request.urlopen("https://pypi.org/simple/llama-cpp-python/", timeout=120) as reply:
            page = reply.read().decode()
        url, digest = re.search(rf'href="([^"#]*/{re.escape(name)})#sha256=([0-9a-f]+)"', page).groups()
        partial = home / (name + ".part")
        urllib.request.urlretrieve(url, partial)
        if hashlib.sha256(partial.read_bytes()).hexdigest() != digest:
            raise SystemExit(f"{name}: sha256 differs from the index's")
        partial.rename(sdist)
    source = home / "src"
    if not source.exists():
        with tarfile.open(sdist) as tar:
            tar.extractall(home / "unpacked", filter="data")
        next((home / "unpacked").glob("llama_cpp_python-*/vendor/llama.cpp")).rename(source)
        shutil.rmtree(home / "unpacked")
    subprocess.run(["cmake", "-S", str(source), "-B", str(build), "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release",
                    "-DLLAMA_CURL=OFF", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_SERVER=OFF", "-DBUILD_SHARED_LIBS=OFF",
                    f"-DCMAKE_C_FLAGS={flags}", f"-DCMAKE_CXX_FLAGS={flags}"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", str(build), "--target", "llama-bench", "-j", str(os.cpu_count() or 2)],
                   check=True, stdout=subprocess.DEVNULL)
    return binary


def engine_tokens_per_s(binary: Path, gguf: Path, threads: int, batch: int, flash: bool, kv: str, repack: bool,
                        reps: int) -> dict:
    command = [str(binary), "-m", str(gguf), "-t", str(threads), "-p", str(PROMPT_TOKENS), "-n", str(GENERATED_TOKENS),
               "-b", str(batch), "-ub", str(batch), "-fa", "on" if flash else "off", "-ctk", kv, "-ctv", kv,
               "--repack", "1" if repack else "0", "-r", str(reps), "-o", "json"]
    rows = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
    speeds = {("prompt" if r["n_prompt"] else "generation"): r["avg_ts"] for r in rows}
    return {"prompt_tps": round(speeds["prompt"], 1), "generation_tps": round(speeds["generation"], 1)}


def app_tokens_per_s(gguf: Path, threads: int, batch: int, flash: bool, kv: str, repack: bool, reps: int) -> dict:
    from langchain_core.messages import HumanMessage

    from arag.llms.llamacpp import LlamaCppChat

    chat = LlamaCppChat(model_path=str(gguf), n_threads=threads, n_batch=batch, n_ubatch=batch, flash_attn=flash,
                        kv_cache=kv, repack=repack, max_tokens=GENERATED_TOKENS)
    started = time.perf_counter()
    llama, _ = chat._llama()  # loads the model at a row's first round; later rounds find it loaded
    load_seconds = time.perf_counter() - started
    end = llama.token_eos()
    words = "river stone cloud lamp garden letter window music paper forest bridge candle".split()
    prompt_speeds, generation_speeds = [], []
    for rep in range(reps + 1):  # the first round warms the weights up, as llama-bench's does
        # A different first word each time: the prompt shares no prefix with the last one.
        text = " ".join(words[(rep + i) % len(words)] for i in range(PROMPT_TOKENS))
        tokens = llama.tokenize(text.encode(), add_bos=False, special=False)
        body = llama.detokenize(tokens[: PROMPT_TOKENS - 20]).decode(errors="ignore")  # room for the chat template
        started = time.perf_counter()
        first = chat.invoke([HumanMessage(f"{rep} {body}")], max_tokens=1)
        prompt_seconds = time.perf_counter() - started
        prompt = first.usage_metadata["input_tokens"]
        # Generation: the same prompt again is served from the KV cache (llama-cpp-python evaluates
        # its last token again), so the time is that of the generated tokens, through the same
        # Python sampling loop the app's calls go through.
        cached = llama.input_ids[: llama.n_tokens].tolist()
        started = time.perf_counter()
        out = llama.create_completion(cached, max_tokens=GENERATED_TOKENS, temperature=0.0, logit_bias={end: -1e9})
        generation_seconds = time.perf_counter() - started
        if rep:
            prompt_speeds.append(prompt / prompt_seconds)
            generation_speeds.append(out["usage"]["completion_tokens"] / generation_seconds)
    return {"prompt_tps": round(statistics.median(prompt_speeds), 1),
            "generation_tps": round(statistics.median(generation_speeds), 1), "load_s": round(load_seconds, 2)}


def main() -> None:
    from arag.llms.factory import local_model_file
    from arag.settings import Settings

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="local-1.5b")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=3, help="repetitions of each side in a round")
    parser.add_argument("--rounds", type=int, default=3, help="llama-bench and the app, alternately, this many times a row")
    parser.add_argument("--grid", choices=["full", "default"], default="full", help="default: llama.cpp's defaults only")
    parser.add_argument("--repack", choices=["on", "off", "both"], default="both",
                        help="llama.cpp's repacking of the weights at load, for every row of the grid")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "llm_throughput.json")
    args = parser.parse_args()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    gguf, _ = local_model_file(args.preset, Settings())
    flags = install_cflags()
    binary = build_llama_bench(Path.home() / ".cache" / "arag" / "llama-bench", flags)
    rows = []
    repacks = {"on": [True], "off": [False], "both": [True, False]}[args.repack]
    for (batch, flash, kv), repack in itertools.product(GRID if args.grid == "full" else GRID[:1], repacks):
        rounds = []
        for _ in range(args.rounds):
            rounds.append((engine_tokens_per_s(binary, gguf, args.threads, batch, flash, kv, repack, args.reps),
                           app_tokens_per_s(gguf, args.threads, batch, flash, kv, repack, args.reps)))
        engine, app = ({key: round(statistics.median(side[key] for side in sides), 1) for key in sides[0] if key != "load_s"}
                       for sides in zip(*rounds))
        app["load_s"] = rounds[0][1]["load_s"]  # the model's load from the page cache, in the row's first round
        row = {"batch": batch, "flash_attention": flash, "kv_cache": kv, "repack": repack, "engine": engine, "app": app,
               "rounds": [{"engine": e, "app": a} for e, a in rounds],
               "app_over_engine_prompt": round(app["prompt_tps"] / engine["prompt_tps"], 3),
               "app_over_engine_generation": round(app["generation_tps"] / engine["generation_tps"], 3)}
        rows.append(row)
        print(json.dumps(row), file=sys.stderr)
    report = {"machine": machine(), "date": time.strftime("%Y-%m-%d"), "preset": args.preset, "gguf": gguf.name,
              "threads": args.threads, "llama_cflags": flags, "prompt_tokens": PROMPT_TOKENS, "generated_tokens": GENERATED_TOKENS,
              "command": "python bench/llm_throughput.py " + " ".join(sys.argv[1:]), "rows": rows}
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print_table(["batch", "flash attention", "KV cache", "repacked", "llama-bench prompt tok/s", "app prompt tok/s", "ratio",
                 "llama-bench generation tok/s", "app generation tok/s", "ratio", "app load s"],
                [[r["batch"], "on" if r["flash_attention"] else "off", r["kv_cache"], "yes" if r["repack"] else "no",
                  r["engine"]["prompt_tps"],
                  r["app"]["prompt_tps"], r["app_over_engine_prompt"], r["engine"]["generation_tps"],
                  r["app"]["generation_tps"], r["app_over_engine_generation"], r["app"]["load_s"]] for r in rows])

if __name__ == "__main__":
    main()
