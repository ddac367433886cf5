"""Grounding: how much of an answer its sources bear out, as a share of its words.

A cheap score instead of an LLM call (the local models judge support near chance). Used by
Self-RAG reflection and reported by the evaluation.

Example:
    >>> support("Etna is in Sicily [1].", "Where is Etna?", [{"title": "Etna", "text": "A volcano in Sicily."}])
    1.0
"""

from __future__ import annotations

from arag.text import content_words, strip_citations

#: Least share of the answer's new content words found in its sources to count as grounded.
GROUNDED_MIN_SUPPORT = 0.6


def support(answer: str, question: str, sources: list[dict]) -> float:
    """Share of the answer's content words (not already in the question) found in the sources."""
    # "yes" answers a comparison; it is a verdict on the sources, not a word they must contain.
    words = content_words(strip_citations(answer)) - content_words(question) - {"yes"}
    if not words:
        return 1.0
    vocab: set[str] = set()
    for doc in sources:
        vocab |= content_words(f"{doc.get('title', '')} {doc['text']}")
    return round(len(words & vocab) / len(words), 3)
