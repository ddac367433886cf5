"""Retrieve candidate chunks for every query of the turn, fused by reciprocal rank."""

from __future__ import annotations

import time

from langchain_core.runnables import RunnableConfig

from components import Components
from graphs.state import RAGState
from knowledge.store import IndexUnavailable
from nodes.tracing import trace_event


def search(components: Components, settings, queries: list[str], k: int, where: dict | None = None
           ) -> tuple[list[dict], str | None, list[str]]:
    """(the ``k`` best chunks for ``queries`` within the ``where`` filter, error, notes).

    A filter that matches nothing is lifted (and said in a note). When the index cannot be
    reached the chunks are none and the error says why: the rest of the graph then answers
    from what it has (the web, or nothing).
    """
    if settings.tree_search == "leaves":
        leaves = {"kind": {"$ne": "summary"}}
        where = {"$and": [where, leaves]} if where else leaves
    try:
        with components.store.reachable():
            if settings.tree_search == "traversal" and not where and components.has_tree():
                from knowledge.retriever import as_retrieved
                from knowledge.tree import traverse

                return [as_retrieved(h) for h in traverse(components.store, components.embedder, queries[0], k)], None, []
            retriever = components.retriever_for(settings)
            hits = retriever.search_many(queries, k, where=where)
            if where and not hits:
                return retriever.search_many(queries, k), None, ["no document matches the filter taken from the "
                                                                  f"question ({where}); searched them all"]
            return hits, None, []
    except IndexUnavailable as exc:
        return [], str(exc), [f"the document index could not be searched: {exc}"]


def retrieve(state: RAGState, config: RunnableConfig, *, components: Components) -> dict:
    """Hybrid (or dense) search for each query; candidates go on to grading and reranking."""
    started = time.perf_counter()
    settings = components.settings.for_run(config)
    queries = state.get("queries") or [state.get("standalone_question") or state["question"]]
    k = max(settings.candidates, settings.top_k)
    candidates, error, notes = search(components, settings, queries, k, state.get("filters"))
    details = {"error": error} if error else {}
    if state.get("filters"):
        details["where"] = state["filters"]
    return {
        "candidates": candidates,
        "notes": notes,
        "trace": [
            trace_event(
                "retrieve", started, queries=queries, retrieval=settings.retrieval, found=len(candidates),
                top=[{"chunk_id": d["chunk_id"], "title": d["title"], "score": d["score"]} for d in candidates[:5]],
                ranking=[d["chunk_id"] for d in candidates], **details,
            )
        ],
    }
