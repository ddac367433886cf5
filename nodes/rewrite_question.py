"""Rewrite the question for another search (Corrective RAG).

Reached when grading left too few relevant chunks, or when reflection found the answer
unhelpful. One short LLM call turns the question into a search query; it goes to the web
(Tavily) when a key is set and web fallback is on, and back to the index otherwise, with
a note in the trace saying why the web was skipped. Each visit uses up one retry.
"""

from __future__ import annotations

from langchain_core.messages import HumanMessage, SystemMessage

from arag.llms.usage import LLMCallFailed, invoke_counted
from arag.retrieval.web import unavailable_reason
from arag.runtime.frame import Run, node
from arag.runtime.state import RAGState

SYSTEM_PROMPT = "Rewrite the question as a short search query with the key names and terms. Output only the query."


@node("rewrite_question")
def rewrite_question(state: RAGState, run: Run) -> dict:
    """Produce ``search_query``; decide between the web and another index search."""
    settings = run.settings
    question = state["standalone_question"]
    query, failure = question, {}
    try:
        reply = invoke_counted(
            run.llm, [SystemMessage(SYSTEM_PROMPT), HumanMessage(question)], run.usage, max_tokens=40, stop=["\n"]
        )
        candidate = " ".join(str(reply.content).split()).strip('"')
        if 3 <= len(candidate) <= 200:
            query = candidate
        else:
            failure["rejected"] = candidate[:80]
    except LLMCallFailed as exc:  # the original question is a fine query
        failure["error"] = str(exc)
    skipped = unavailable_reason(settings)
    run.trace(search_query=query, next="web_search" if skipped is None else "retrieve",
              **({"web_skipped": skipped} if skipped else {}), **failure)
    return {
        "search_query": query,
        "web_ready": skipped is None,
        "queries": (state.get("queries") or []) + ([query] if skipped else []),
        "retries": state.get("retries", 0) + 1,
        "notes": [f"web search skipped: {skipped}"] if skipped else [],
    }
