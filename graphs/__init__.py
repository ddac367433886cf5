"""LangGraph state graphs of the application: wiring only (the nodes are in ``nodes/``).

Example:
    >>> from graphs import build_graph
    >>> from arag.settings import Settings
    >>> graph = build_graph(Settings())  # doctest: +SKIP
    >>> graph.invoke({"question": "How do I create a virtual environment?"})["answer"]  # doctest: +SKIP
"""

from graphs.rag import build_graph
from nodes.generate import warm_up_in_background

__all__ = ["build_graph", "warm_up_in_background"]
