"""Retrieve candidate chunks for every query of the turn, fused by reciprocal rank."""

from __future__ import annotations

import time

from langchain_core.runnables import RunnableConfig

from components import Components
from graphs.state import RAGState
from knowledge.store import IndexUnavailable
from nodes.tracing import trace_event


def search(components: Components, settings, queries: list[str], k: int) -> tuple[list[dict], str | None]:
    """(the ``k`` best chunks for ``queries``, None), or ([], why) when the index cannot be reached:
    the rest of the graph then answers from what it has (the web, or nothing)."""
    try:
        with components.store.reachable():
            return components.retriever_for(settings).search_many(queries, k), None
    except IndexUnavailable as exc:
        return [], str(exc)


def retrieve(state: RAGState, config: RunnableConfig, *, components: Components) -> dict:
    """Hybrid (or dense) search for each query; candidates go on to grading and reranking."""
    started = time.perf_counter()
    settings = components.settings.for_run(config)
    queries = state.get("queries") or [state.get("standalone_question") or state["question"]]
    k = max(settings.candidates, settings.top_k)
    candidates, error = search(components, settings, queries, k)
    notes, details = ([f"the document index could not be searched: {error}"], {"error": error}) if error else ([], {})
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
