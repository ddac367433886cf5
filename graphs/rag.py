"""The RAG graph's wiring: contextualize → retrieve → generate."""

from __future__ import annotations

from functools import partial

from langchain_core.language_models import BaseChatModel
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from components import Components
from graphs.state import RAGState
from nodes.contextualize import contextualize
from nodes.generate import generate
from nodes.retrieve import retrieve
from settings import Settings


def build_graph(
    settings: Settings | None = None,
    *,
    llm: BaseChatModel | None = None,
    components: Components | None = None,
    checkpointer: BaseCheckpointSaver | None = None,
) -> CompiledStateGraph:
    """Compile the RAG graph.

    ``llm`` replaces the configured chat model (tests pass fake ones); ``components`` replaces
    every part at once; ``checkpointer`` keeps threads (``config={"configurable":
    {"thread_id": ...}}``) across calls.

    Example:
        >>> from graphs import build_graph
        >>> graph = build_graph()
        >>> list(graph.get_graph().nodes)
        ['__start__', 'contextualize', 'retrieve', 'generate', '__end__']
    """
    settings = settings or (components.settings if components else Settings())
    parts = components or Components(settings, llm=llm)
    builder = StateGraph(RAGState)
    builder.add_node("contextualize", partial(contextualize, components=parts))
    builder.add_node("retrieve", partial(retrieve, components=parts))
    builder.add_node("generate", partial(generate, components=parts))
    builder.add_edge(START, "contextualize")
    builder.add_edge("contextualize", "retrieve")
    builder.add_edge("retrieve", "generate")
    builder.add_edge("generate", END)
    return builder.compile(checkpointer=checkpointer, name="arag")
