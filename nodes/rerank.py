"""Rerank the relevant chunks and trim them to the answer's context budget.

Late interaction (ColBERT-style max-sim over the embedding model's token vectors)
scores each chunk against the question token by token, which separates a passage that
states the asked fact from one that merely shares the topic. The best chunks come first,
since small models attend most to the start of their context, and chunks are kept while
they fit ``context_tokens`` and ``top_k``.
"""

from __future__ import annotations

import time

from langchain_core.runnables import RunnableConfig

from components import Components
from embeddings import max_sim
from graphs.state import RAGState
from nodes.tracing import trace_event

#: Candidates scored by late interaction; beyond this the fused rank order is kept.
RERANK_DEPTH = 20


def fit_budget(documents: list[dict], count_tokens, budget: int, limit: int) -> list[dict]:
    """Documents in order while their tokens fit the budget (always at least one)."""
    kept, used = [], 0
    for doc in documents[:limit]:
        cost = count_tokens(doc["text"]) + 8
        if kept and used + cost > budget:
            break
        kept.append(doc)
        used += cost
    return kept


def rerank(state: RAGState, config: RunnableConfig, *, components: Components) -> dict:
    """Order chunks by late-interaction score and trim to the context budget."""
    started = time.perf_counter()
    settings = components.settings.for_run(config)
    question = state["standalone_question"]
    documents = list(state.get("documents") or [])
    details: dict = {"method": settings.rerank, "in": len(documents)}
    if settings.rerank == "late-interaction" and len(documents) > 1:
        head = documents[:RERANK_DEPTH]
        vectors = components.embedder.token_vectors([question] + [f"{d['title']}\n{d['text']}" for d in head])
        scores = [round(max_sim(vectors[0], v), 4) for v in vectors[1:]]
        head = [{**d, "rerank_score": s} for d, s in zip(head, scores)]
        # The evidence of each sub-question (pinned) stays ahead of better-scoring neighbours.
        head.sort(key=lambda d: (not d.get("pinned"), -d["rerank_score"]))
        documents = head + documents[RERANK_DEPTH:]
    kept = fit_budget(documents, components.embedder.count_tokens, settings.context_tokens, settings.top_k)
    details["order"] = [{"chunk_id": d["chunk_id"], "title": d["title"], "rerank_score": d.get("rerank_score")} for d in kept]
    return {"documents": kept, "trace": [trace_event("rerank", started, **details)]}
