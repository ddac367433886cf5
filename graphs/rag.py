"""The agentic RAG graph's wiring.

```
contextualize → route ─┬─ direct ──────────────────────────────────────────────────────────┐
                       ├─ sql ──── text_to_sql ── answered ──→ finalize;  no usable SQL → self_query
                       ├─ web ──── web_search ───────────────────────┐                      │
                       └─ index ── self_query ─┬─ long context ─ read_all ─────────────────────→ generate
                                               ├─ complex ─ decompose → answer_sub_question (loop) ─┐
                                               ├─ multi_query ─┐  (those on, in parallel)           │
                                               ├─ step_back ───┼─→ retrieve → second_hop → grade_documents
                                               ├─ hyde ────────┘
                                               └─ (none on) ─────→ retrieve
grade_documents ── enough ──→ rerank ─┬─ same-attribute yes/no ── compare ── decided ──→ reflect
               │                      └───────────→ generate ←── undecided ──┘
               └── too few → rewrite_question → web_search | retrieve (| the transforms, when they wait for a retry)
generate → reflect ── ok ──→ finalize;  ungrounded → generate;  not useful → rewrite_question
```
```
Every loop is bounded by a counter in the state (``retries``, ``generations``, the list of
sub-questions); the recursion limit is only a second guard.
"""

from __future__ import annotations

from functools import partial

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from arag.comparison import compared_attribute
from arag.runtime.components import Components
from arag.runtime.state import RAGState
from arag.settings import Settings
from nodes.answer_sub_question import answer_sub_question
from nodes.compare import compare
from nodes.contextualize import contextualize
from nodes.decompose import decompose
from nodes.finalize import finalize
from nodes.generate import generate
from nodes.grade_documents import grade_documents
from nodes.hyde import hyde
from nodes.multi_query import multi_query
from nodes.read_all import read_all
from nodes.reflect import reflect
from nodes.rerank import rerank
from nodes.retrieve import retrieve
from nodes.rewrite_question import rewrite_question
from nodes.route import route
from nodes.second_hop import second_hop
from nodes.self_query import self_query
from nodes.step_back import step_back
from nodes.text_to_sql import text_to_sql
from nodes.web_search import web_search

#: Upper bound on node executions per question; the counters end every loop well before it.
RECURSION_LIMIT = 80

NODES = {
    "contextualize": contextualize,
    "route": route,
    "text_to_sql": text_to_sql,
    "self_query": self_query,
    "decompose": decompose,
    "answer_sub_question": answer_sub_question,
    "multi_query": multi_query,
    "step_back": step_back,
    "hyde": hyde,
    "retrieve": retrieve,
    "read_all": read_all,
    "second_hop": second_hop,
    "grade_documents": grade_documents,
    "rewrite_question": rewrite_question,
    "web_search": web_search,
    "rerank": rerank,
    "compare": compare,
    "generate": generate,
    "reflect": reflect,
    "finalize": finalize,
}


def after_route(state: RAGState) -> str:
    return {"direct": "generate", "web": "web_search", "sql": "text_to_sql"}.get(state["route"], "self_query")


def after_sql(state: RAGState) -> str:
    # No usable query: the node set the route back to the index, and the documents answer.
    return "finalize" if state.get("sql") else "self_query"


#: The query transforms, run in parallel when on; the retrieve node searches what each wrote.
TRANSFORMS = ("multi_query", "step_back", "hyde")


def transforms(config: RunnableConfig, settings: Settings, search: str = "first") -> list[str]:
    """The transforms this run's settings turn on for this ``search`` ("first" or "retry").

    Straight to retrieval when none is.
    """
    run = settings.for_run(config)
    if run.transform_when != search:
        return ["retrieve"]
    on = {"multi_query": run.multi_query > 0, "step_back": run.step_back, "hyde": run.hyde}
    return [name for name in TRANSFORMS if on[name]] or ["retrieve"]


def after_self_query(state: RAGState, config: RunnableConfig, *, settings: Settings) -> str | list[str]:
    if settings.for_run(config).long_context:
        return "read_all"
    return "decompose" if state.get("complex") else transforms(config, settings)


def after_decompose(state: RAGState, config: RunnableConfig, *, settings: Settings) -> str | list[str]:
    return "answer_sub_question" if state.get("sub_questions") else transforms(config, settings)


def after_sub_question(state: RAGState) -> str:
    more = len(state.get("sub_answers") or []) < len(state.get("sub_questions") or [])
    return "answer_sub_question" if more else "grade_documents"


def after_grade(state: RAGState) -> str:
    return "rewrite_question" if state.get("need_more") else "rerank"


def after_rewrite(state: RAGState, config: RunnableConfig, *, settings: Settings) -> str | list[str]:
    return "web_search" if state.get("web_ready") else transforms(config, settings, "retry")


def after_web_search(state: RAGState, config: RunnableConfig, *, settings: Settings) -> str | list[str]:
    # A web-routed question whose search failed falls back to the documents.
    if state.get("route") == "web" and not state.get("documents"):
        return transforms(config, settings)
    return "rerank"


def after_rerank(state: RAGState, config: RunnableConfig, *, settings: Settings) -> str:
    # Only same-attribute yes/no questions ("... the same country?") take the comparison path.
    question = state.get("standalone_question") or state["question"]
    run = settings.for_run(config)
    # Retrieval only: the comparison's LLM call is part of writing the answer, which is skipped.
    wanted = run.compare and run.write_answer and state.get("documents")
    return "compare" if wanted and compared_attribute(question) else "generate"


def after_compare(state: RAGState) -> str:
    # An empty answer: the comparison could not be decided, so the answer prompt writes it.
    return "reflect" if state.get("answer") else "generate"


def after_reflect(state: RAGState) -> str:
    return {"regenerate": "generate", "search_again": "rewrite_question"}.get(
        (state.get("reflection") or {}).get("next", "finish"), "finalize"
    )


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
    {"thread_id": ...}}``) across calls. Techniques can be switched per call with
    ``config={"configurable": {"profile": "agentic", "hyde": True, ...}}``.

    Example:
        >>> from graphs import build_graph
        >>> graph = build_graph()
        >>> [n for n in graph.get_graph().nodes][:4]
        ['__start__', 'contextualize', 'route', 'text_to_sql']
    """
    settings = settings or (components.settings if components else Settings())
    parts = components or Components(settings, llm=llm)
    builder = StateGraph(RAGState)
    for name, node in NODES.items():
        builder.add_node(name, partial(node, components=parts))
    builder.add_edge(START, "contextualize")
    builder.add_edge("contextualize", "route")
    builder.add_conditional_edges("route", after_route, ["generate", "web_search", "text_to_sql", "self_query"])
    builder.add_conditional_edges("text_to_sql", after_sql, ["finalize", "self_query"])
    settings_of = {"settings": parts.settings}
    builder.add_conditional_edges("self_query", partial(after_self_query, **settings_of),
                                  ["read_all", "decompose", *TRANSFORMS, "retrieve"])
    builder.add_edge("read_all", "generate")
    builder.add_conditional_edges("decompose", partial(after_decompose, **settings_of),
                                  ["answer_sub_question", *TRANSFORMS, "retrieve"])
    builder.add_conditional_edges("answer_sub_question", after_sub_question, ["answer_sub_question", "grade_documents"])
    for name in TRANSFORMS:  # fanned out together, joined at retrieval
        builder.add_edge(name, "retrieve")
    builder.add_edge("retrieve", "second_hop")
    builder.add_edge("second_hop", "grade_documents")
    builder.add_conditional_edges("grade_documents", after_grade, ["rewrite_question", "rerank"])
    builder.add_conditional_edges("rewrite_question", partial(after_rewrite, **settings_of),
                                  ["web_search", *TRANSFORMS, "retrieve"])
    builder.add_conditional_edges("web_search", partial(after_web_search, **settings_of), ["rerank", *TRANSFORMS, "retrieve"])
    builder.add_conditional_edges("rerank", partial(after_rerank, **settings_of), ["compare", "generate"])
    builder.add_conditional_edges("compare", after_compare, ["reflect", "generate"])
    builder.add_edge("generate", "reflect")
    builder.add_conditional_edges("reflect", after_reflect, ["generate", "rewrite_question", "finalize"])
    builder.add_edge("finalize", END)
    graph = builder.compile(checkpointer=checkpointer, name="arag")
    return graph.with_config(recursion_limit=RECURSION_LIMIT)


def studio_graph(config: RunnableConfig) -> CompiledStateGraph:
    """Entry point for LangGraph Studio and ``langgraph dev`` (see langgraph.json)."""
    return build_graph(Settings().for_run(config))
