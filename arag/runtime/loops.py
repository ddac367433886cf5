"""The bounds of the graph's loops that more than one node asks about."""

from __future__ import annotations

from arag.retrieval.web import unavailable_reason
from arag.runtime.state import RAGState


def can_search_again(state: RAGState, settings) -> bool:
    """Retries remain and another search has something to search: indexed chunks, or the web."""
    searchable = bool(state.get("candidates")) or unavailable_reason(settings) is None
    return state.get("retries", 0) < settings.max_retries and searchable
