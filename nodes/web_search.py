"""Search the web (Tavily) and add the results to the context, as citable sources.

Failures never stop the graph: no key, a rejected key, rate limits, timeouts and an
unreachable server each leave a one-line note in the trace and in the answer's notes,
and the answer is built from what the documents gave.
"""

from __future__ import annotations

import time

from langchain_core.runnables import RunnableConfig

from components import Components
from graphs.state import RAGState
from knowledge.web import TavilyWebSearch, WebSearchError, WebSearchUnavailable, unavailable_reason
from nodes.tracing import trace_event


def web_search(state: RAGState, config: RunnableConfig, *, components: Components) -> dict:
    """Append web results for ``search_query`` (or the question) to ``documents``."""
    started = time.perf_counter()
    settings = components.settings.for_run(config)
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
        return {**update, "trace": [trace_event("web_search", started, skipped=note,
                                                fallback=len(update.get("documents", [])))]}
    known = {d["chunk_id"] for d in documents}
    fresh = [r for r in results if r["chunk_id"] not in known]
    return {
        "documents": documents + fresh,
        "web_used": bool(fresh),
        "trace": [
            trace_event(
                "web_search", started, query=query, results=len(fresh),
                sources=[{"title": r["title"], "url": r["source"]} for r in fresh],
            )
        ],
    }
