"""Structure-respecting chunking under a token budget.

Chunks never cross a section (heading, page, record). Inside a section, paragraphs are
packed greedily up to the budget; a paragraph over the budget is split at sentence ends,
and a sentence over it into word windows, so no chunk exceeds the encoder's view.

Example:
    >>> from arag.ingestion.loaders import Section
    >>> count = lambda t: len(t.split())
    >>> [c.text for c in split_section(Section("", "a b c\\n\\nd e\\n\\nf g h i"), count, 5)]
    ['a b c\\n\\nd e', 'f g h i']
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from arag.ingestion.loaders import Section

_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+(?=\S)")


@dataclass(frozen=True)
class Chunk:
    heading: str
    text: str
    tokens: int


def _pieces(paragraph: str, count: Callable[[str], int], budget: int) -> list[tuple[str, int]]:
    """The paragraph as units of at most ``budget`` tokens each."""
    n = count(paragraph)
    if n <= budget:
        return [(paragraph, n)]
    units: list[tuple[str, int]] = []
    for sentence in _SENTENCE_END.split(paragraph):
        m = count(sentence)
        if m <= budget:
            units.append((sentence, m))
            continue
        words = sentence.split()
        start = 0
        while start < len(words):
            # Shrink the window until it fits; word pieces per word vary with vocabulary.
            size = max(1, min(len(words) - start, budget))
            while size > 1 and count(" ".join(words[start:start + size])) > budget:
                size = max(1, size * 3 // 4)
            piece = " ".join(words[start:start + size])
            units.append((piece, count(piece)))
            start += size
    return units


def split_section(section: Section, count: Callable[[str], int], budget: int) -> list[Chunk]:
    paragraphs = [p.strip() for p in re.split(r"\n[ \t]*\n", section.text) if p.strip()]
    chunks: list[Chunk] = []
    current: list[str] = []
    used = 0
    # A paragraph break costs nothing for a WordPiece tokenizer, so sizes simply add up.
    for paragraph in paragraphs:
        for text, n in _pieces(paragraph, count, budget):
            if current and used + n > budget:
                chunks.append(Chunk(section.heading, "\n\n".join(current), used))
                current, used = [], 0
            current.append(text)
            used += n
    if current:
        chunks.append(Chunk(section.heading, "\n\n".join(current), used))
    return chunks


def chunk_sections(sections: list[Section], count: Callable[[str], int], budget: int) -> list[Chunk]:
    return [chunk for section in sections for chunk in split_section(section, count, budget)]
