"""Search the web (Tavily) and add the results to the context, as citable sources.

Failures never stop the graph: no key, a rejected key, rate limits, timeouts and an
unreachable server each leave a one-line note in the trace and in the answer's notes,
and the answer is built from what the documents gave.
"""

from __future__ import annotations

from arag.retrieval.web import TavilyWebSearch, WebSearchError, WebSearchUnavailable, unavailable_reason
from arag.runtime.frame import Run, node
from arag.runtime.state import RAGState


@node("web_search")
def web_search(state: RAGState, run: Run) -> dict:
    """Append web results for ``search_query`` (or the question) to ``documents``."""
    settings = run.settings
    query = state.get("search_query") or state["standalone_question"]
    documents = list(state.get("documents") or [])
    try:
        reason = unavailable_reason(settings)
        if reason:
            raise WebSearchUnavailable(reason)
        results = TavilyWebSearch.from_settings(settings).search(query)
    except WebSearchError as exc:
        note = f"web search skipped: {exc.reason}"
        update: dict = {"notes": [note]}
        if not documents and state.get("candidates"):
            # Nothing passed grading and the web gave nothing: the best candidates beat no context.
            update["documents"] = list(state["candidates"][: settings.top_k])
        run.trace(skipped=note, fallback=len(update.get("documents", [])))
        return update
    known = {d["chunk_id"] for d in documents}
    fresh = [r for r in results if r["chunk_id"] not in known]
    run.trace(query=query, results=len(fresh), sources=[{"title": r["title"], "url": r["source"]} for r in fresh])
    return {"documents": documents + fresh, "web_used": bool(fresh)}
