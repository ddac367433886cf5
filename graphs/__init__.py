"""LangGraph state graphs of the application.

Example:
    >>> from graphs import build_graph
    >>> from settings import Settings
    >>> graph = build_graph(Settings())  # doctest: +SKIP
    >>> graph.invoke({"question": "How do I create a virtual environment?"})["answer"]  # doctest: +SKIP
"""

__all__ = ["build_graph"]


def __getattr__(name: str):
    # Lazy, so that nodes can import graphs.state without importing the builder (and themselves).
    if name == "build_graph":
        from graphs.rag import build_graph

        return build_graph
    raise AttributeError(name)
