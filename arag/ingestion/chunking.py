"""Structure-respecting chunking under a token budget.

Chunks never cross a section (heading, page, record). Inside a section, paragraphs are
packed greedily up to the budget. A paragraph is one chunk up to a larger size (``whole``); a longer
one is split at sentence ends (code: between lines) into pieces of up to that size, and a sentence
or line over it into word windows, so no chunk exceeds the encoder's view. Two sizes, because
two measurements pull apart: cutting a paragraph separates facts that belong together (the
multi-hop sets, whose documents are single paragraphs, lose answers at every size under 200),
while packing separate paragraphs into one chunk adds words that match nothing and that the
model reads whenever the chunk is retrieved (the tutorial pages answer more questions from
shorter prompts when packing stops at 120; README, "Smaller chunks").

Example:
    >>> from arag.ingestion.loaders import Section
    >>> count = lambda t: len(t.split())
    >>> [c.text for c in split_section(Section("", "a b c\\n\\nd e\\n\\nf g h i"), count, 5)]
    ['a b c\\n\\nd e', 'f g h i']
    >>> [c.text for c in split_section(Section("", "a b\\n\\nc d\\n\\ne f g h i j"), count, 3, whole=6)]
    ['a b', 'c d', 'e f g h i j']
"""

from __future__ import annotations

import re
import textwrap
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
    """The paragraph as units of at most ``budget`` tokens each.

    Prose is cut at sentence ends, code (a paragraph indented by four spaces) between lines, each
    piece indented as the block was, so a long example stays code a reader can follow; a sentence or
    a line that alone is over the budget is cut into word windows.
    """
    n = count(paragraph)
    if n <= budget:
        return [(paragraph, n)]
    if paragraph.startswith("    "):
        return _code_pieces(paragraph, count, budget)
    units: list[tuple[str, int]] = []
    for sentence in _SENTENCE_END.split(paragraph):
        m = count(sentence)
        units.extend([(sentence, m)] if m <= budget else _word_windows(sentence, count, budget))
    return units


def _code_pieces(block: str, count: Callable[[str], int], budget: int) -> list[tuple[str, int]]:
    """An indented code block cut between its lines into pieces of at most ``budget`` tokens."""
    units: list[tuple[str, int]] = []
    lines: list[str] = []
    used = 0
    for line in block.split("\n"):
        # Line breaks and indentation cost a WordPiece tokenizer nothing, so sizes simply add up.
        m = count(line)
        if lines and used + m > budget:
            units.append(("\n".join(lines), used))
            lines, used = [], 0
        if m > budget:
            units.extend(("    " + piece, size) for piece, size in _word_windows(line, count, budget))
            continue
        lines.append(line)
        used += m
    if lines:
        units.append(("\n".join(lines), used))
    return units


def _word_windows(text: str, count: Callable[[str], int], budget: int) -> list[tuple[str, int]]:
    """``text`` as runs of whole words of at most ``budget`` tokens each (one word alone may be over)."""
    words = text.split()
    units: list[tuple[str, int]] = []
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


def paragraph_groups(text: str) -> list[list[str]]:
    """Blank-line-separated paragraphs, grouped: a code block stays with the sentence that introduces it.

    A code block is an indented paragraph (reST's literal blocks, as :mod:`arag.ingestion.rst`
    writes them, and Markdown's indented code) or what lies between fences. Its paragraphs form
    one group, with the paragraph before when that ends in a colon ("Run:"), so a chunk does not
    end on the announcement while the command goes to the next. An indented paragraph is indented
    by four spaces, every line alike.

    Example:
        >>> paragraph_groups("Run:\\n\\n      make demo\\n\\n      make test\\n\\nThen ask.")
        [['Run:', '    make demo', '    make test'], ['Then ask.']]
    """
    groups: list[list[str]] = []
    in_code = fenced = False
    for raw in re.split(r"\n[ \t]*\n", text):
        if not raw.strip():
            continue
        raw = raw.strip("\n")
        indented = raw[:1] in (" ", "\t")
        code = fenced or indented or raw.lstrip().startswith(("```", "~~~"))
        if sum(line.lstrip().startswith(("```", "~~~")) for line in raw.splitlines()) % 2:
            fenced = not fenced
        paragraph = textwrap.indent(textwrap.dedent(raw).rstrip(), "    ") if indented else raw.strip()
        if code and groups and (in_code or groups[-1][-1].endswith(":")):
            groups[-1].append(paragraph)
        else:
            groups.append([paragraph])
        in_code = code
    return groups


def split_section(section: Section, count: Callable[[str], int], budget: int, whole: int | None = None) -> list[Chunk]:
    """The section's chunks: paragraphs packed up to ``budget`` tokens, each paragraph kept whole up to ``whole``.

    ``whole`` (at least ``budget``, which it defaults to) is also the size of the pieces a longer
    paragraph is cut into, and the most a paragraph with the code it introduces may take before
    they are cut apart.
    """
    whole = max(budget, whole or budget)
    chunks: list[Chunk] = []
    current: list[str] = []
    used = 0
    units: list[str] = []
    for group in paragraph_groups(section.text):
        joined = "\n\n".join(group)
        # A group too long to stay whole is split as its paragraphs would be.
        units.extend(group if len(group) > 1 and count(joined) > whole else [joined])
    # A paragraph break costs nothing for a WordPiece tokenizer, so sizes simply add up.
    for unit in units:
        pieces = _pieces(unit, count, whole)
        # The pieces of a cut paragraph fill chunks up to ``whole``, as the whole paragraph would have.
        limit = whole if len(pieces) > 1 else budget
        for text, n in pieces:
            if current and used + n > limit:
                chunks.append(Chunk(section.heading, "\n\n".join(current), used))
                current, used = [], 0
            current.append(text)
            used += n
    if current:
        chunks.append(Chunk(section.heading, "\n\n".join(current), used))
    return chunks


def chunk_sections(sections: list[Section], count: Callable[[str], int], budget: int,
                   whole: int | None = None) -> list[Chunk]:
    return [chunk for section in sections for chunk in split_section(section, count, budget, whole)]
