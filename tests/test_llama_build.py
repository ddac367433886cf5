"""llama.cpp is built with its AMX kernels exactly where the machine grants AMX (the Makefile's probe)."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from pathlib import Path

from arag.evaluation.runner import llama_cpp_kernels

REPO = Path(__file__).resolve().parent.parent
AMX_OFF = ["-mno-amx-tile", "-mno-amx-int8", "-mno-amx-bf16"]


def amx_granted(tmp_path: Path) -> bool:
    """What arag/llms/amx_probe.c says here: AMX listed, tile state granted, one tile product right."""
    cpuinfo = Path("/proc/cpuinfo").read_text()
    if "amx_int8" not in cpuinfo.split():
        return False
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    assert compiler, "make install needs a C compiler, and so does this test"
    binary = tmp_path / "amx_probe"
    built = subprocess.run([compiler, "-O2", "-mamx-tile", "-mamx-int8", "-o", str(binary),
                            str(REPO / "arag" / "llms" / "amx_probe.c")], capture_output=True)
    return built.returncode == 0 and subprocess.run([str(binary)]).returncode == 0


def test_the_probe_compiles_cleanly_and_passes_only_where_amx_is_listed(tmp_path):
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    assert compiler, "make install needs a C compiler, and so does this test"
    built = subprocess.run([compiler, "-O2", "-Wall", "-Werror", "-mamx-tile", "-mamx-int8", "-o",
                            str(tmp_path / "probe"), str(REPO / "arag" / "llms" / "amx_probe.c")],
                           capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    passed = subprocess.run([str(tmp_path / "probe")]).returncode == 0
    listed = "amx_int8" in Path("/proc/cpuinfo").read_text().split()
    assert passed <= listed  # without AMX the tile instruction is illegal or the permission refused


def test_llama_cpp_is_built_with_amx_exactly_where_the_machine_grants_it(tmp_path):
    granted = amx_granted(tmp_path)
    flags = subprocess.run(["make", "-s", "--no-print-directory", "llama-cflags"], cwd=REPO, check=True,
                           capture_output=True, text=True, env={k: v for k, v in os.environ.items()
                                                                 if k != "LLAMA_CFLAGS"}).stdout.split()
    if platform.machine() == "x86_64":
        # With AMX, -fno-dse keeps the stores that build llama.cpp's tile configuration (GCC 12).
        assert flags == (["-fno-dse"] if granted else AMX_OFF)
    kernels = llama_cpp_kernels()
    assert kernels is not None
    # A build with AMX on a machine that does not grant it dies on its first prompt.
    assert ("AMX_INT8" in kernels) == granted, (
        "the installed llama-cpp-python was built for another AMX decision: reinstall it with "
        "`rm -rf .venv && make install`")
