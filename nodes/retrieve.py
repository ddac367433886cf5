"""Retrieve the chunks most similar to the (standalone) question."""

from __future__ import annotations

import time

from components import Components
from graphs.state import RAGState
from nodes.tracing import trace_event


def retrieve(state: RAGState, *, components: Components) -> dict:
    """Dense top-k search over the collection."""
    started = time.perf_counter()
    query = state.get("standalone_question") or state["question"]
    k = components.settings.top_k
    documents = components.retriever.search(query, k)
    return {
        "documents": documents,
        "trace": [
            trace_event(
                "retrieve",
                started,
                query=query,
                k=k,
                found=len(documents),
                top=[{"chunk_id": d["chunk_id"], "title": d["title"], "score": d["score"]} for d in documents],
            )
        ],
    }
