"""The bounds of the graph's loops that more than one node asks about."""

from __future__ import annotations

from arag.retrieval.web import unavailable_reason
from arag.runtime.state import RAGState


def can_search_again(state: RAGState, settings) -> bool:
    """Retries remain and another search has something new to search: the web, or (index_retry on) the index."""
    searchable = unavailable_reason(settings) is None or (settings.index_retry and bool(state.get("candidates")))
    return state.get("retries", 0) < settings.max_retries and searchable
