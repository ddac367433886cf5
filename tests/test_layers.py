"""The import layers hold: ui and the command line → graphs → nodes → the ``arag`` library.

Read from the source (every ``import``, at module level or inside a function), so a new
upward import or a cycle fails here before it grows roots.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("arag", "graphs", "nodes", "ui")
#: The modules of the library that sit above graphs: the command line, ``python -m arag`` and the API server.
TOP_OF_LIBRARY = ("arag.cli", "arag.__main__", "arag.serving", "arag.serving.openai_api", "arag.serving.mcp_server")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py")}


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The project modules that ``path`` imports (``from a.b import c`` counts a.b.c when that is a module)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            if name in known:
                found.add(name)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: imports_of(path, known) - {name} for name, path in found.items()}


def layer(module: str) -> int:
    top = module.split(".")[0]
    if top == "ui" or module.startswith(TOP_OF_LIBRARY):
        return 3
    return {"graphs": 2, "nodes": 1, "arag": 0}[top]


def test_imports_point_down(graph):
    upward = sorted(f"{a} imports {b}" for a, deps in graph.items() for b in deps if layer(b) > layer(a))
    assert not upward, upward


def test_nodes_do_not_import_each_other(graph):
    borrowed = sorted(f"{a} imports {b}" for a, deps in graph.items() if a.startswith("nodes.")
                      for b in deps if b.startswith("nodes."))
    assert not borrowed, borrowed


def cycles_of(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components of more than one vertex."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def part(module: str) -> str:
    """The sub-package (``arag.index``) or top-level module (``arag.text``, ``nodes``) a module belongs to."""
    parts = module.split(".")
    if parts[0] != "arag":
        return parts[0]
    return ".".join(parts[:2])


def test_no_import_cycles(graph):
    assert not cycles_of(graph), cycles_of(graph)


def test_no_cycles_between_parts(graph):
    """Sub-packages of the library, and the top-level packages, depend on each other one way."""
    parts: dict[str, set[str]] = {}
    for a, deps in graph.items():
        parts.setdefault(part(a), set()).update(part(b) for b in deps if part(b) != part(a))
    for deps in list(parts.values()):
        for d in deps:
            parts.setdefault(d, set())
    assert not cycles_of(parts), cycles_of(parts)


def test_graphs_hold_wiring_only(graph):
    """``graphs/`` imports nodes and the runtime parts they are wired with, and defines no node."""
    for path in (REPO / "graphs").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for fn in (n for n in tree.body if isinstance(n, ast.FunctionDef)):
            args = [a.arg for a in fn.args.args + fn.args.kwonlyargs]
            assert "components" not in args or fn.name in ("build_graph",), f"{path.name}:{fn.name} looks like a node"
