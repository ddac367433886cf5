"""llama.cpp is built without its AMX kernels unless asked for, and only where the machine grants AMX."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from arag.llms.llamacpp import llama_cpp_kernels

REPO = Path(__file__).resolve().parent.parent
AMX_OFF = ["-mno-amx-tile", "-mno-amx-int8", "-mno-amx-bf16"]


def compiler() -> str:
    found = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    assert found, "make install needs a C compiler, and so does this test"
    return found


def amx_granted(tmp_path: Path) -> bool:
    """What arag/llms/amx_probe.c says here: AMX listed, tile state granted, one tile product right."""
    if "amx_int8" not in Path("/proc/cpuinfo").read_text().split():
        return False
    binary = tmp_path / "amx_probe"
    built = subprocess.run([compiler(), "-O2", "-mamx-tile", "-mamx-int8", "-o", str(binary),
                            str(REPO / "arag" / "llms" / "amx_probe.c")], capture_output=True)
    return built.returncode == 0 and subprocess.run([str(binary)]).returncode == 0


def cflags(*make_args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in {"LLAMA_CFLAGS", "LLAMA_AMX"}}
    return subprocess.run(["make", "-s", "--no-print-directory", "llama-cflags", *make_args], cwd=REPO,
                          capture_output=True, text=True, env=env)


def test_the_probe_compiles_cleanly_and_passes_only_where_amx_is_listed(tmp_path):
    built = subprocess.run([compiler(), "-O2", "-Wall", "-Werror", "-mamx-tile", "-mamx-int8", "-o",
                            str(tmp_path / "probe"), str(REPO / "arag" / "llms" / "amx_probe.c")],
                           capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    passed = subprocess.run([str(tmp_path / "probe")]).returncode == 0
    listed = "amx_int8" in Path("/proc/cpuinfo").read_text().split()
    assert passed <= listed  # without AMX the tile instruction is illegal or the permission refused


@pytest.mark.skipif(platform.machine() != "x86_64", reason="AMX is an x86-64 instruction set")
def test_the_install_leaves_amx_out_unless_asked_and_granted(tmp_path):
    default = cflags()
    assert default.returncode == 0 and default.stdout.split() == AMX_OFF
    asked = cflags("LLAMA_AMX=on")
    if amx_granted(tmp_path):
        # -fno-dse keeps the stores that build llama.cpp's tile configuration (GCC 12).
        assert asked.returncode == 0 and asked.stdout.split() == ["-fno-dse"]
    else:
        assert asked.returncode != 0 and "does not grant AMX" in asked.stderr


def test_the_installed_llama_cpp_was_built_as_the_install_decided(tmp_path):
    recorded = Path(sys.prefix) / "llama-cflags"  # the virtual environment `make install` made
    assert recorded.is_file(), "llama-cpp-python was not built by `make install`: `rm -rf .venv && make install`"
    flags = recorded.read_text().split()
    kernels = llama_cpp_kernels()
    assert kernels is not None
    # Off x86-64 the install passes no flags of its own.
    assert flags in ((AMX_OFF, ["-fno-dse"]) if platform.machine() == "x86_64" else ([],))
    # AMX kernels only where asked for (LLAMA_AMX=on) and granted: elsewhere they die or give garbage.
    assert ("AMX_INT8" in kernels) == (flags == ["-fno-dse"])
    assert "AMX_INT8" not in kernels or amx_granted(tmp_path)
