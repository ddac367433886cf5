"""Headings that head no text of their own, carried into the headings of the sections under them.

A chapter heading followed at once by its first section's heading ("## Part 2: Moorings", then
"### Tides") heads no text. Dropped with its empty section, its words would be in no chunk: a
question about moorings would not find the tides, and a citation would not say where they are.
So each reader gives its headings' levels, and a heading without text of its own is carried into
the heading of every section under it, up to the next heading of its level or above:
"Part 2: Moorings › Tides". A heading with text of its own is not repeated below it, and the
document's title is never carried: every chunk is embedded and cited with the title already.

Example:
    >>> carry_headings([(1, "Guide", ""), (2, "Part 2: Moorings", ""), (3, "Tides", "Twice a day."),
    ...                 (3, "Notes", ""), (2, "Part 3", "Anchors."), (3, "Chains", "Galvanised.")], title="Guide")
    [('Part 2: Moorings › Tides', 'Twice a day.'), ('Part 3', 'Anchors.'), ('Chains', 'Galvanised.')]
"""

from __future__ import annotations

from collections.abc import Iterable

SEPARATOR = " › "
#: The most headings carried into one: the nearest ones above it. A document's outline can nest
#: without end (a PDF's bookmarks), and a heading is read with every chunk of its section.
MAX_CARRIED = 3


def carry_headings(sections: Iterable[tuple[int, str, str]], title: str | None = None) -> list[tuple[str, str]]:
    """``(heading, body)`` of the sections with text, given ``(level, heading, body)`` in reading order.

    A lower level is a higher heading (1 above 2). Level 0 is above every heading: the text before
    the first one, or a title (Word's "Title" style); such a heading, as the document's title, is
    never carried.
    """
    waiting: list[tuple[int, str]] = []  # the headings above this one that have no text of their own
    kept: list[tuple[str, str]] = []
    for level, heading, body in sections:
        while waiting and waiting[-1][0] >= level:
            waiting.pop()
        if body.strip():
            carried = [above for _, above in waiting[-MAX_CARRIED:]]
            kept.append((SEPARATOR.join(carried + [heading]) if heading else heading, body))
        elif level > 0 and heading and heading != title:
            waiting.append((level, heading))
    return kept
