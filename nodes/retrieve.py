"""Retrieve candidate chunks for every query of the turn, fused by reciprocal rank.

The queries are the question (and any rewrite of it) plus what the query transforms that ran
wrote: multi-query's rewordings, the step-back question and HyDE's passage.
"""

from __future__ import annotations

from arag.runtime.frame import Run, node
from arag.runtime.state import RAGState

#: Longer "queries" are a model rambling, not a search.
MAX_QUERY_CHARS = 600


def distinct_queries(queries: list[str]) -> list[str]:
    """The non-empty queries, each once (ignoring case and spacing), in order.

    Example:
        >>> distinct_queries(["Who built it?", "who  built it?", "", "COBOL compiler"])
        ['Who built it?', 'COBOL compiler']
    """
    seen, out = set(), []
    for query in queries:
        key = " ".join(query.lower().split())
        if key and key not in seen and len(query) <= MAX_QUERY_CHARS:
            seen.add(key)
            out.append(query.strip())
    return out


@node("retrieve")
def retrieve(state: RAGState, run: Run) -> dict:
    """Hybrid (or dense) search for each query; candidates go on to grading and reranking."""
    settings = run.settings
    queries = distinct_queries([*(state.get("queries") or [state.get("standalone_question") or state["question"]]),
                                *(state.get("rewordings") or []), state.get("step_back_question") or "",
                                state.get("hypothetical_passage") or ""])
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
