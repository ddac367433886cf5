"""The wheel is complete: installed (not editable) into a fresh environment and used from outside
the checkout, it holds exactly the four top-level packages with every module and data file, and
the commands that find files beside the code (`arag demo`, `arag ui`) find them there.

The fresh environment borrows the development environment's third-party packages through a
``.pth`` line naming its site-packages. Python adds such a path without processing the ``.pth``
files inside it, so the editable install's finder (``__editable__.arag-*.pth``) stays inactive
and every ``arag`` import must come from the wheel. Nothing here can skip: a failed build or
install fails the test.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("arag", "graphs", "nodes", "ui")

# Run by the fresh environment's interpreter: imports every module of the four packages (found
# by walking the installed packages, not the checkout) and reports where each came from, and
# where the code looks for its files beside it.
CHECK = textwrap.dedent("""
    import importlib, importlib.util, json, pkgutil, sys
    from importlib.resources import files

    packages = sys.argv[1].split(",")
    modules = {}
    for top in packages:
        package = importlib.import_module(top)
        modules[top] = package.__file__
        for info in pkgutil.walk_packages(package.__path__, prefix=top + "."):
            # __main__ runs the command line when imported; finding it is enough.
            if info.name.rsplit(".", 1)[-1] == "__main__":
                modules[info.name] = importlib.util.find_spec(info.name).origin
                continue
            modules[info.name] = importlib.import_module(info.name).__file__

    import arag.cli, arag.evaluation.configs, ui.app
    report = {
        "modules": modules,
        "prefix": sys.prefix,
        "editable_finders": [repr(f) for f in sys.meta_path if "editable" in repr(f).lower()],
        "ui_script": str(arag.cli._ui_script()),
        "views": [str(ui.app.VIEWS / script) for script, _, _ in ui.app.PAGES],
        "samples": str(arag.cli.SAMPLES),
        "sample_license": str(files("arag") / "samples" / "python-tutorial" / "LICENSE"),
        "configs": sorted(arag.evaluation.configs.load_configs()),
        "configs_file": str(arag.evaluation.configs.DEFAULT_CONFIGS),
    }
    print(json.dumps(report))
""")


def run(cmd: list, cwd: Path, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    done = subprocess.run([str(c) for c in cmd], check=False, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(map(str, cmd))} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done


def source_files(src: Path) -> dict[str, Path]:
    """Every file of the four packages in the built source tree, by its path inside site-packages."""
    found = {}
    for top in PACKAGES:
        for path in (src / top).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                found[path.relative_to(src).as_posix()] = path
    return found


def module_name(relative: str) -> str:
    parts = relative.removesuffix(".py").split("/")
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(environment, its site-packages, a working directory outside the checkout, environment variables)."""
    root = tmp_path_factory.mktemp("wheel")
    # The build reads a copy: a stale build/ or egg-info of the checkout cannot leak into the
    # wheel, the checkout gets none of the build's output, and the wheel is compared with the
    # very files it was built from.
    src = root / "src"
    src.mkdir()
    for path in REPO.iterdir():
        if path.is_file() and not path.name.startswith("."):
            shutil.copy2(path, src / path.name)
    for top in PACKAGES:
        shutil.copytree(REPO / top, src / top, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    wheels = root / "wheels"
    # --no-build-isolation and --no-index: built with this environment's setuptools, no network.
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
         "-w", wheels, src], cwd=root)
    (wheel,) = wheels.glob("arag-*.whl")

    venv = root / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=root)
    python = venv / "bin" / "python"
    purelib = Path(run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                       cwd=root).stdout.strip())
    # Installed before the borrowed packages become visible, so pip sees an empty environment
    # (and never the development environment's editable arag, which it might try to replace).
    run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "-q", wheel],
        cwd=root)
    installed_names = sorted(p.name for p in purelib.iterdir() if p.name != "__pycache__")
    borrowed = [p for p in site.getsitepackages() if Path(p).is_dir()]
    (purelib / "_borrowed_site_packages.pth").write_text("".join(f"{p}\n" for p in borrowed))

    work = root / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("ARAG_") and k not in {"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP"}}
    return {"src": src, "venv": venv, "purelib": purelib, "work": work, "env": env, "installed_names": installed_names}


def test_wheel_installs_only_the_four_packages(installed):
    names = installed["installed_names"]
    dist_info = [n for n in names if n.endswith(".dist-info")]
    assert len(dist_info) == 1 and dist_info[0].startswith("arag-"), names
    assert sorted(set(names) - set(dist_info)) == sorted(PACKAGES)
    record = (installed["purelib"] / dist_info[0] / "RECORD").read_text().splitlines()
    tops = {line.split(",")[0].split("/")[0] for line in record if not line.startswith("..")}
    assert tops == {*PACKAGES, dist_info[0]}
    # A real install: files, not a finder that points back into the checkout.
    assert not list(installed["purelib"].glob("__editable__*"))


def test_wheel_ships_every_file_of_the_packages(installed):
    purelib = installed["purelib"]
    expected = source_files(installed["src"])
    # The data the commands need must be among them; a source tree without them would pass vacuously.
    for needed in ("arag/evaluation/configs.toml", "arag/samples/python-tutorial/LICENSE", "ui/app.py",
                   "ui/views/chat.py", "ui/views/graph.py", "ui/views/knowledge.py", "arag/cli.py"):
        assert needed in expected
    assert len([p for p in expected if p.startswith("arag/samples/python-tutorial/") and p.endswith(".rst")]) >= 5
    missing = [rel for rel in expected if not (purelib / rel).is_file()]
    assert not missing, f"not in the wheel: {missing}"
    changed = [rel for rel, path in expected.items() if (purelib / rel).read_bytes() != path.read_bytes()]
    assert not changed, f"differ from the checkout: {changed}"


def test_commands_start_from_the_installed_wheel(installed):
    arag = installed["venv"] / "bin" / "arag"
    assert arag.is_file()
    demo = run([arag, "demo", "--help"], cwd=installed["work"], env=installed["env"], timeout=120)
    assert "usage: arag demo" in demo.stdout
    ui = run([arag, "ui", "--help"], cwd=installed["work"], env=installed["env"], timeout=120)
    assert "usage: arag ui" in ui.stdout and "--port" in ui.stdout


def test_every_module_imports_from_the_installed_wheel(installed):
    python = installed["venv"] / "bin" / "python"
    done = run([python, "-c", CHECK, ",".join(PACKAGES)], cwd=installed["work"], env=installed["env"], timeout=400)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    purelib = installed["purelib"].resolve()
    assert Path(report["prefix"]).resolve() == installed["venv"].resolve()
    assert report["editable_finders"] == []

    modules = report["modules"]
    expected = {module_name(rel) for rel in source_files(installed["src"]) if rel.endswith(".py")}
    assert set(modules) == expected
    outside = {name: file for name, file in modules.items() if not Path(file).resolve().is_relative_to(purelib)}
    assert not outside, f"imported from outside the fresh environment: {outside}"

    # `arag ui` runs this script; it finds its pages beside itself; `arag demo` ingests SAMPLES.
    assert Path(report["ui_script"]).resolve() == purelib / "ui" / "app.py"
    for view in report["views"]:
        assert Path(view).resolve().is_relative_to(purelib) and Path(view).is_file(), view
    samples = Path(report["samples"]).resolve()
    assert samples == purelib / "arag" / "samples" / "python-tutorial"
    assert (samples / "LICENSE").is_file() and len(list(samples.glob("*.rst"))) >= 5
    assert Path(report["sample_license"]).resolve() == samples / "LICENSE"
    assert Path(report["configs_file"]).resolve() == purelib / "arag" / "evaluation" / "configs.toml"
    assert {"naive", "agentic"} <= set(report["configs"])
