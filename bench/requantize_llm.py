"""Another weight format of a local LLM preset, made from its GGUF file by llama.cpp's own quantiser.

Run: ``.venv/bin/python bench/requantize_llm.py --type Q4_0 [--preset local-1.5b] [--out FILE]``
Writes ``~/.cache/arag/models/<preset>-<type>.gguf`` (or ``--out``) and prints the ``arag eval``
configuration that answers with it, to run beside ``default`` in one evaluation:

    .venv/bin/python bench/requantize_llm.py --type Q4_0 > /tmp/requantized.toml
    .venv/bin/arag eval --config-file /tmp/requantized.toml --configs default,default-q4_0 \\
        --dataset ../shared/data/hotpotqa/dev-250.jsonl --limit 30 --out /tmp/q4_0-hotpotqa

The presets ship as Q4_K_M; the only weights at hand are those, so the new file is quantised a
second time (``allow_requantize``) and can only lose against them. What it can gain is speed:
llama.cpp repacks Q4_0 weights for its AVX2/AVX-512 kernels. The file is the same model with
other rounding, so answers differ where the rounding tips a token.
"""

from __future__ import annotations

import argparse
import ctypes
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hotpotqa import REPO  # noqa: E402,F401 - puts the repository on the path


def main() -> None:
    import llama_cpp

    from arag.llms.factory import local_model_file
    from arag.settings import Settings

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="local-1.5b")
    parser.add_argument("--type", default="Q4_0", help="a llama.cpp file type, e.g. Q4_0, Q8_0, Q4_K_S, IQ4_NL")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{args.type.upper()}", None)
    if ftype is None:
        raise SystemExit(f"llama.cpp has no file type {args.type!r}")
    settings = Settings()
    source, _ = local_model_file(args.preset, settings, progress=False)
    out = args.out or settings.models_path / f"{args.preset}-{args.type.lower()}.gguf"
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.allow_requantize = True
    params.nthread = args.threads
    started = time.perf_counter()
    if llama_cpp.llama_model_quantize(str(source).encode(), str(out).encode(), ctypes.byref(params)) != 0:
        raise SystemExit(f"llama.cpp could not quantise {source} to {args.type}")
    print(f"# {out}: {out.stat().st_size / 2**20:.0f} MiB in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    print(f'[default]\n\n[default-{args.type.lower()}]\nllm = "llamacpp:{out}"')


if __name__ == "__main__":
    main()
