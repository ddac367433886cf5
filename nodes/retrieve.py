"""Retrieve candidate chunks for every query of the turn, fused by reciprocal rank."""

from __future__ import annotations

from arag.runtime.frame import Run, node
from arag.runtime.state import RAGState


@node("retrieve")
def retrieve(state: RAGState, run: Run) -> dict:
    """Hybrid (or dense) search for each query; candidates go on to grading and reranking."""
    settings = run.settings
    queries = state.get("queries") or [state.get("standalone_question") or state["question"]]
    k = max(settings.candidates, settings.top_k)
    candidates, error, notes = run.components.search(settings, queries, k, state.get("filters"))
    run.trace(queries=queries, retrieval=settings.retrieval, found=len(candidates),
              top=[{"chunk_id": d["chunk_id"], "title": d["title"], "score": d["score"]} for d in candidates[:5]],
              ranking=[d["chunk_id"] for d in candidates])
    if error:
        run.trace(error=error)
    if state.get("filters"):
        run.trace(where=state["filters"])
    return {"candidates": candidates, "notes": notes}
