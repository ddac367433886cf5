"""Rewrite the question for another search (Corrective RAG).

Reached when grading left too few relevant chunks, or when reflection found the answer
unhelpful. One short LLM call turns the question into a search query; it goes to the web
(Tavily) when a key is set and web fallback is on, and back to the index otherwise, with
a note in the trace saying why the web was skipped. Each visit uses up one retry.
"""

from __future__ import annotations

import time

from langchain_core.messages import HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig

from components import Components
from graphs.state import RAGState
from knowledge.web import unavailable_reason
from llms.usage import LLMCallFailed, LLMUsage, invoke_counted
from nodes.tracing import trace_event

SYSTEM_PROMPT = "Rewrite the question as a short search query with the key names and terms. Output only the query."


def can_search_again(state: RAGState, settings) -> bool:
    """Retries remain and another search has something to search: indexed chunks, or the web."""
    searchable = bool(state.get("candidates")) or unavailable_reason(settings) is None
    return state.get("retries", 0) < settings.max_retries and searchable


def rewrite_question(state: RAGState, config: RunnableConfig, *, components: Components) -> dict:
    """Produce ``search_query``; decide between the web and another index search."""
    started = time.perf_counter()
    settings = components.settings.for_run(config)
    question = state["standalone_question"]
    usage = LLMUsage()
    query, details = question, {}
    try:
        reply = invoke_counted(
            components.llm_for(settings), [SystemMessage(SYSTEM_PROMPT), HumanMessage(question)], usage, max_tokens=40, stop=["\n"]
        )
        candidate = " ".join(str(reply.content).split()).strip('"')
        if 3 <= len(candidate) <= 200:
            query = candidate
        else:
            details["rejected"] = candidate[:80]
    except LLMCallFailed as exc:  # the original question is a fine query
        details["error"] = str(exc)
    skipped = unavailable_reason(settings)
    notes = [f"web search skipped: {skipped}"] if skipped else []
    return {
        "search_query": query,
        "web_ready": skipped is None,
        "queries": (state.get("queries") or []) + ([query] if skipped else []),
        "retries": state.get("retries", 0) + 1,
        "notes": notes,
        "llm_calls": usage.calls,
        "trace": [
            trace_event(
                "rewrite_question", started, usage, search_query=query,
                next="web_search" if skipped is None else "retrieve", **({"web_skipped": skipped} if skipped else {}),
                **details,
            )
        ],
    }
