"""Pictures of the graph, drawn offline: Mermaid text, or DOT rendered by Graphviz to PNG/SVG.

A run's trace can be laid over the picture: the nodes it visited are filled and numbered
in the order they ran, and the edges it took are drawn bold.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from langgraph.graph.state import CompiledStateGraph


class DrawingError(RuntimeError):
    """The picture cannot be rendered (e.g. Graphviz is not installed)."""


def to_mermaid(graph: CompiledStateGraph) -> str:
    return graph.get_graph().draw_mermaid()


def _attrs(values: dict) -> str:
    return ", ".join(f'{k}="{v}"' for k, v in values.items())


def to_dot(graph: CompiledStateGraph, visited: list[str] | None = None) -> str:
    """DOT source of the graph; ``visited`` (node names in run order) is highlighted."""
    drawable = graph.get_graph()
    visited = visited or []
    steps: dict[str, list[int]] = {}
    for i, name in enumerate(visited, start=1):
        steps.setdefault(name, []).append(i)
    taken = set(zip(["__start__", *visited], [*visited, "__end__"]))
    lines = [
        "digraph arag {",
        '  graph [rankdir=TB, fontname="Helvetica", bgcolor="white"];',
        '  node [shape=box, style="rounded,filled", fillcolor="#f4f4f6", color="#9a9aa8", fontname="Helvetica"];',
        '  edge [color="#9a9aa8", fontname="Helvetica", fontsize=10];',
    ]
    for node_id in drawable.nodes:
        label = {"__start__": "start", "__end__": "end"}.get(node_id, node_id)
        attrs = {"label": label}
        if node_id in ("__start__", "__end__"):
            attrs.update(shape="oval", fillcolor="#e2e8f0")
        if node_id in steps:
            attrs.update(fillcolor="#fde68a", color="#b45309", penwidth="2",
                         label=f"{label}\\n#{', #'.join(map(str, steps[node_id]))}")
        elif visited and node_id in ("__start__", "__end__"):
            attrs.update(fillcolor="#fde68a", color="#b45309")
        lines.append(f'  "{node_id}" [{_attrs(attrs)}];')
    for edge in drawable.edges:
        attrs = {"style": "dashed" if edge.conditional else "solid"}
        if (edge.source, edge.target) in taken:
            attrs.update(color="#b45309", penwidth="2.5", style="bold")
        lines.append(f'  "{edge.source}" -> "{edge.target}" [{_attrs(attrs)}];')
    lines.append("}")
    return "\n".join(lines)


def render(dot: str, out: Path, fmt: str = "png") -> Path:
    """Render DOT with the local Graphviz ``dot`` program (no online service)."""
    exe = shutil.which("dot")
    if exe is None:
        raise DrawingError("Graphviz is not installed (Debian/Ubuntu: apt-get install graphviz); use --format mermaid")
    result = subprocess.run([exe, f"-T{fmt}", "-o", str(out)], input=dot, text=True, capture_output=True, timeout=60)
    if result.returncode != 0:
        raise DrawingError(f"Graphviz failed: {result.stderr.strip()[:200]}")
    return out
