"""Retrieve candidate chunks for every query of the turn, fused by reciprocal rank."""

from __future__ import annotations

import time

from langchain_core.runnables import RunnableConfig

from components import Components
from graphs.state import RAGState
from nodes.tracing import trace_event


def retrieve(state: RAGState, config: RunnableConfig, *, components: Components) -> dict:
    """Hybrid (or dense) search for each query; candidates go on to grading and reranking."""
    started = time.perf_counter()
    settings = components.settings.for_run(config)
    queries = state.get("queries") or [state.get("standalone_question") or state["question"]]
    k = max(settings.candidates, settings.top_k)
    candidates = components.retriever_for(settings).search_many(queries, k)
    return {
        "candidates": candidates,
        "trace": [
            trace_event(
                "retrieve", started, queries=queries, retrieval=settings.retrieval, found=len(candidates),
                top=[{"chunk_id": d["chunk_id"], "title": d["title"], "score": d["score"]} for d in candidates[:5]],
                ranking=[d["chunk_id"] for d in candidates],
            )
        ],
    }
