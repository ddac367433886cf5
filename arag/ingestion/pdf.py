"""PDF pages read as their text, without the lines a printed page repeats, sectioned by its outline.

A PDF holds positioned text, not paragraphs, and a printed page repeats the document around its
content: a running header ("Shared MIME-info Database", "Chapter 4: Function reference 9") and
a page number on every page. Read as extracted, those lines start or end every chunk, and words
broken across lines ("man-" / "agement") are two tokens that match nothing.

What is left out, on documents of three pages or more:
- a line among a page's first or last two that recurs there, word for word, on at least half of
  the pages, such as a running title;
- a page's first or last line that holds its printed page number: the number of the page counted
  from a fixed offset that most pages share ("8" on the 11th page of a book whose page 1 is the
  4th), alone or in a running header that recurs ("Chapter 3: Utilities 6");
- a first or last line of only a lower-case roman numeral (front matter's page numbers).

A page that is mostly a table of contents or an index (entries led by dots to a page number) is
left out, as the other readers drop theirs. A word hyphenated across a line break is joined ("manip-" / "ulation" reads "manipulation").
Where the PDF has an outline (bookmarks), each entry starts a section at the line that matches
its title on its page, and headings read "Title (page N)"; otherwise each page is a section
headed "page N", as before. Sections never span pages, so a citation names its page. A document
without a title of its own is titled by its running title, where it has one.

Example:
    >>> birds = [("Wrens", "hedges"), ("Reed warblers", "reeds"), ("Coots", "open water"), ("Terns", "shingle")]
    >>> pages = [f"Field Guide\\n{bird} nest\\nin {place}.\\n{n}" for n, (bird, place) in enumerate(birds, start=1)]
    >>> sections_of(pages, [])[2]
    ('page 3', 'Coots nest\\nin open water.')
    >>> sections_of(["Intro text.\\n2 Usage\\nRun it with care-\\nful hands."], [("2 Usage", 0, 1)])
    [('page 1', 'Intro text.'), ('2 Usage (page 1)', 'Run it with careful hands.')]
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator

from arag.ingestion.headings import carry_headings

#: A document needs this many pages before lines that recur on its pages count as the page's frame.
MIN_PAGES_FOR_FRAME = 3
#: How many of a page's first and last lines may be its frame (header, page number, footer).
FRAME_LINES = 2
_DIGITS = re.compile(r"\d+")
_LEADING_NUMBER = re.compile(r"^\W*(?:page\s*)?(\d{1,5})\b", re.IGNORECASE)
_TRAILING_NUMBER = re.compile(r"\b(\d{1,5})\W*$")
_ONLY_PAGE_NUMBER = re.compile(r"[-–—\s]*(page\s*)?\d{1,5}(\s*(of|/)\s*\d{1,5})?[-–—\s]*", re.IGNORECASE)
_ROMAN = re.compile(r"(?=.)x{0,3}(ix|iv|v?i{0,3})")
_DOT_LEADER = re.compile(r"(?:\s*\.){4,}\s*[\dixvlc]+(?:\s*,\s*[\dixvlc]+)*\s*$", re.IGNORECASE)
_BROKEN_WORD = re.compile(r"([^\W\d_])-\n([^\W\d_])")


def sections_of(pages: list[str], outline: list[tuple[str, int, int]], title: str | None = None) -> list[tuple[str, str]]:
    """``(heading, text)`` sections of a PDF's pages, given its outline as (title, page index, depth) triples.

    An entry whose section has no text before the next, deeper entry heads the sections under it
    (:mod:`arag.ingestion.headings`), "3 Harbours › 3.1 Fees (page 5)", unless it is the document's ``title``.
    """
    page_lines = _nonblank_lines(pages)
    frames = _frames(page_lines)
    starts: dict[int, list[tuple[str, int]]] = {}
    for entry, page, depth in outline:
        starts.setdefault(page, []).append((entry, depth))
    pieces: list[tuple[int, str, str]] = []  # (depth, title, text) of each entry's piece of each page
    piece_pages: list[int] = []
    entered, fresh = ("", 0), True  # the entry being read; whether none of its pieces has been kept yet

    def piece(lines: list[str], page: int) -> None:
        nonlocal fresh
        text = _BROKEN_WORD.sub(_join_broken_word, "\n".join(lines))
        # A piece without text is kept only as an entry's first (an entry may head nothing but the
        # entries under it); the empty rest of a page an entry ran onto is no such sign.
        if text.strip() or fresh:
            pieces.append((entered[1], entered[0], text))
            piece_pages.append(page)
        fresh = False

    for index, all_lines in enumerate(page_lines):
        lines = _without_contents_list([line for position, line in enumerate(all_lines) if position not in frames[index]])
        cut = 0
        for entry in starts.get(index, []):
            found = _find_title(lines, entry[0], cut)
            if found is None:
                if cut == 0:  # none found on this page yet: not found as a line, the entry starts with its page
                    entered, fresh = entry, True
                continue
            piece(lines[cut:found], index + 1)
            entered, fresh, cut = entry, True, found + 1
        piece(lines[cut:], index + 1)
    # carry_headings keeps the pieces with text, in order: those pages are the kept sections' pages.
    pages_kept = [page for page, (_, _, text) in zip(piece_pages, pieces) if text.strip()]
    return [(f"{heading} (page {page})" if heading else f"page {page}", text)
            for page, (heading, text) in zip(pages_kept, carry_headings(pieces, title))]


def running_title(pages: list[str]) -> str | None:
    """The line that heads most pages (a running title), where a document has one: a title when it has no other."""
    page_lines = _nonblank_lines(pages)
    if len(page_lines) < MIN_PAGES_FOR_FRAME:
        return None
    tops = Counter(lines[0] for lines in page_lines if lines)
    line, count = tops.most_common(1)[0] if tops else ("", 0)
    wordy = any(character.isalpha() for character in line) and len(line.split()) <= 12
    return line if wordy and count >= _half_the_pages(len(page_lines)) else None


def _half_the_pages(pages: int) -> int:
    """On how many pages a line must recur to be the document's frame: half of them, and at least three."""
    return max(MIN_PAGES_FOR_FRAME, (pages + 1) // 2)


def _nonblank_lines(pages: list[str]) -> list[list[str]]:
    return [[line.strip() for line in text.splitlines() if line.strip()] for text in pages]


def _without_contents_list(lines: list[str]) -> list[str]:
    """A page that is mostly a table of contents or an index (entries led by dots to page numbers) keeps
    only its longer lines: the entries, and headings such as "Table of Contents" or an index's "A", go.
    """
    leaders = sum(1 for line in lines if _DOT_LEADER.search(line))
    if leaders < 5 or leaders * 2 < len(lines):
        return lines
    return [line for line in lines if not _DOT_LEADER.search(line) and len(line.split()) > 3]


def _join_broken_word(match: re.Match) -> str:
    """"manip-" + "ulation" is one word; "Jean-" + "Paul" keeps its hyphen (a capital follows)."""
    return match.group(1) + match.group(2) if match.group(2).islower() else match.group(0).replace("\n", "")


def _frames(page_lines: list[list[str]]) -> list[set[int]]:
    """For each page, the positions of its lines that are the printed page's frame, not its content."""
    if len(page_lines) < MIN_PAGES_FOR_FRAME:
        return [set() for _ in page_lines]
    recurring, masked_counts = _edge_lines(page_lines)
    offset = _page_number_offset(page_lines)
    frames = []
    for index, lines in enumerate(page_lines):
        last = len(lines) - 1
        drop: set[int] = set()
        # Outside in, so a line next to a dropped page number is itself at the page's edge.
        for position, outer in ((0, None), (1, 0), (last, None), (last - 1, last)):
            if not 0 <= position <= last or position in drop:
                continue
            line = lines[position]
            masked = _DIGITS.sub("#", line.lower())
            at_edge = outer is None or outer in drop
            if line in recurring:
                drop.add(position)
            elif at_edge and _ROMAN.fullmatch(line):
                drop.add(position)
            elif at_edge and offset is not None and index - offset in _edge_numbers(line) and (
                    _ONLY_PAGE_NUMBER.fullmatch(line) or masked_counts[masked] >= 2):
                drop.add(position)
        frames.append(drop)
    return frames


def _edge_lines(page_lines: list[list[str]]) -> tuple[set[str], Counter]:
    """Edge lines found on at least half of the pages, and on how many pages each edge line is with
    its digits masked (a running header that carries the page number differs on every page).
    """
    exact: Counter = Counter()
    masked: Counter = Counter()
    for lines in page_lines:
        edge = {*lines[:FRAME_LINES], *lines[-FRAME_LINES:]}
        exact.update(edge)
        masked.update({_DIGITS.sub("#", line.lower()) for line in edge})
    needed = _half_the_pages(len(page_lines))
    return {line for line, count in exact.items() if count >= needed}, masked


def _page_number_offset(page_lines: list[list[str]]) -> int | None:
    """The offset between page index and printed page number that most numbered pages share, if any."""
    offsets: Counter = Counter()
    for index, lines in enumerate(page_lines):
        numbers = {number for line in lines[:1] + lines[-1:] for number in _edge_numbers(line)}
        offsets.update(index - number for number in numbers)
    if not offsets:
        return None
    offset, count = offsets.most_common(1)[0]
    return offset if count >= max(MIN_PAGES_FOR_FRAME, len(page_lines) * 3 // 10) else None


def _edge_numbers(line: str) -> set[int]:
    """The numbers a line starts and ends with, where a printed page number would be."""
    return {int(found.group(1)) for pattern in (_LEADING_NUMBER, _TRAILING_NUMBER) if (found := pattern.search(line))}


def _find_title(lines: list[str], title: str, start: int) -> int | None:
    """The first line from ``start`` that reads as the outline entry ``title`` (case and spacing aside)."""
    wanted = _squeezed(title)
    if not wanted:
        return None
    for position in range(start, len(lines)):
        line = _squeezed(lines[position])
        # The line may carry the section's number that the outline leaves out ("2.1 ASN.1 syntax").
        if line == wanted or (line.endswith(wanted) and line[: len(line) - len(wanted)].isdigit()):
            return position
    return None


def _squeezed(text: str) -> str:
    return "".join(character for character in text.lower() if character.isalnum())


def flatten_outline(outline, page_of) -> Iterator[tuple[str, int, int]]:
    """``(title, page index, depth)`` for each entry of pypdf's nested outline, in order (no recursion)."""
    stack = [iter(outline)]
    while stack:
        entry = next(stack[-1], None)
        if entry is None:
            stack.pop()
        elif isinstance(entry, list):
            stack.append(iter(entry))
        else:
            page = page_of(entry)
            title = " ".join(str(getattr(entry, "title", "") or "").split())
            if title and page is not None and page >= 0:
                yield title, page, len(stack)
