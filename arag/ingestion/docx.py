"""Word documents (``.docx``) read as their text, each heading starting a section.

A ``.docx`` file is a zip of XML parts. ``word/document.xml`` holds the body: paragraphs, tables
and content controls, in reading order. A paragraph's style says what it is. Its name in
``word/styles.xml`` is English whatever the document's language ("heading 1", "Title", "toc 2"),
and a custom style inherits from the style it is based on. So headings are found by style name,
else by outline level, as Word's navigation pane finds them. A heading followed at once by a
deeper one heads the sections under it (:mod:`arag.ingestion.headings`).

What is read:
- paragraphs, with tabs and line breaks as spaces and new lines;
- text inserted under tracked changes (text deleted under them is not the document's);
- hyperlinks' words and fields' results;
- table rows as ``cell | cell`` lines, as the HTML reader writes them;
- footnotes and endnotes, each as a paragraph ("Footnote: …") after the paragraph or table that
  refers to it, so that a search finds a note with its context.

List items start with "- ", or with their number as the list level writes it ("3.", "(c)", "iv.",
"2.1"), as the Markdown and HTML readers write theirs; an item of a deeper level is indented two
spaces a level, and a line broken inside an item goes on under its text.

What is left out:
- a table of contents Word generates (paragraphs styled "toc N" or "TOC Heading"), as the reST
  and HTML readers drop theirs;
- headers, footers and comments: they are separate parts, beside the text rather than of it;
- text boxes and shapes, whose text Word stores twice (in the drawing and in its fallback).

The title is the document's own (File > Properties), else its first paragraph styled "Title",
else its first level-1 heading.

Example:
    >>> import io, zipfile
    >>> body = ('<w:p><w:pPr><w:pStyle w:val="Heading1"/></w:pPr><w:r><w:t>Tides</w:t></w:r></w:p>'
    ...         '<w:p><w:r><w:t xml:space="preserve">The moon </w:t></w:r><w:r><w:t>pulls.</w:t></w:r></w:p>')
    >>> document = f'<w:document xmlns:w="{NAMESPACE}"><w:body>{body}</w:body></w:document>'
    >>> styles = (f'<w:styles xmlns:w="{NAMESPACE}"><w:style w:type="paragraph" w:styleId="Heading1">'
    ...           '<w:name w:val="heading 1"/></w:style></w:styles>')
    >>> data = io.BytesIO()
    >>> with zipfile.ZipFile(data, "w") as archive:
    ...     archive.writestr("word/document.xml", document)
    ...     archive.writestr("word/styles.xml", styles)
    >>> read_docx(data.getvalue())
    ('Tides', [('Tides', 'The moon pulls.')])
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from xml.etree import ElementTree

from arag.ingestion.headings import carry_headings
from arag.ingestion.ooxml import Package, list_item_lines

NAMESPACE = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
_W = "{" + NAMESPACE + "}"

#: Block containers read through to the paragraphs and tables they hold: content controls,
#: custom XML, and paragraphs moved or inserted under tracked changes.
_CONTAINERS = {_W + "sdt", _W + "sdtContent", _W + "customXml", _W + "ins", _W + "moveTo"}
#: Inline containers read through to the runs they hold (links, fields, tracked insertions).
_INLINE_CONTAINERS = {_W + "hyperlink", _W + "fldSimple", _W + "ins", _W + "moveTo", _W + "smartTag",
                      _W + "customXml", _W + "sdt", _W + "sdtContent", _W + "bdo", _W + "dir"}
#: What a table cell's paragraphs are read through: tables nested in it, flattened into its line.
_CELL_CONTENT = _CONTAINERS | {_W + "tbl", _W + "tr", _W + "tc"}
_NOTE_REFERENCES = {_W + "footnoteReference": "footnote", _W + "endnoteReference": "endnote"}
_LEVEL_PLACE = re.compile(r"%([1-9])")
_HEADING_NAME = re.compile(r"heading ([1-9])")
_TABLE_OF_CONTENTS_NAME = re.compile(r"toc( [1-9]| heading)")
#: A level for the "Title" style, above any heading's.
TITLE_LEVEL = 0


def _letters(number: int) -> str:
    """1 -> a, 26 -> z, 27 -> aa, as Word counts in letters."""
    return chr(ord("a") + (number - 1) % 26) * ((number - 1) // 26 + 1) if number > 0 else str(number)


def _roman(number: int) -> str:
    if not 0 < number < 4000:
        return str(number)
    out = ""
    for value, numeral in ((1000, "m"), (900, "cm"), (500, "d"), (400, "cd"), (100, "c"), (90, "xc"), (50, "l"),
                           (40, "xl"), (10, "x"), (9, "ix"), (5, "v"), (4, "iv"), (1, "i")):
        count, number = divmod(number, value)
        out += numeral * count
    return out


#: Word's number formats a list level may count in, and how each writes a number.
_NUMBER_FORMATS = {
    "decimal": str, "decimalZero": lambda n: f"{n:02d}", "lowerLetter": _letters,
    "upperLetter": lambda n: _letters(n).upper(), "lowerRoman": _roman, "upperRoman": lambda n: _roman(n).upper(),
}


def read_docx(data: bytes) -> tuple[str | None, list[tuple[str, str]]]:
    """The title and the ``(heading, body)`` sections of a Word document; raises :class:`~arag.ingestion.ooxml.PackageError`."""
    with Package(data, "Word document") as package:
        name, document = package.main_part("word/document.xml")
        folder = name.rpartition("/")[0]
        styles = package.part(f"{folder}/styles.xml")
        numbering = package.part(f"{folder}/numbering.xml")
        notes = {**_notes(package.part(f"{folder}/footnotes.xml"), "footnote"),
                 **_notes(package.part(f"{folder}/endnotes.xml"), "endnote")}
        own_title = package.title()
    reader = _Reader(_Styles(styles), _Numbering(numbering), notes)
    reader.read(document)
    title = own_title or reader.first_title or reader.first_h1 or None
    return title, carry_headings(reader.sections, title)


class _Styles:
    """What each paragraph style makes of a paragraph: a heading level, a table of contents, a list."""

    def __init__(self, root: ElementTree.Element | None):
        self._by_id: dict[str, ElementTree.Element] = {}
        if root is not None:
            for style in root.iter(_W + "style"):
                if style.get(_W + "type", "paragraph") == "paragraph" and style.get(_W + "styleId"):
                    self._by_id[style.get(_W + "styleId")] = style

    def _chain(self, style_id: str | None) -> Iterator[ElementTree.Element]:
        """The style and those it is based on, nearest first (a cycle is followed once)."""
        seen: set[str] = set()
        while style_id and style_id not in seen and style_id in self._by_id:
            seen.add(style_id)
            style = self._by_id[style_id]
            yield style
            style_id = _value(style, "basedOn")

    def name(self, style_id: str | None) -> str:
        return _style_name(self._by_id.get(style_id or ""))

    def heading_level(self, style_id: str | None) -> int | None:
        """0 for a title, 1-9 for a heading, None for a body paragraph."""
        for style in self._chain(style_id):
            name = _style_name(style)
            if name == "title":
                return TITLE_LEVEL
            if found := _HEADING_NAME.fullmatch(name):
                return int(found.group(1))
            level = _outline_level(style.find(_W + "pPr"))
            if level is not None:
                return level or None  # an outline level of 9 ("body text") ends the search
        return None

    def numbering(self, style_id: str | None) -> tuple[str, int] | None:
        for style in self._chain(style_id):
            found = _numbering_of(style.find(_W + "pPr"))
            if found is not None:
                return found
        return None


class _Numbering:
    """How each list level writes its items' numbers, and the number each has reached.

    A level's text (``w:lvlText``) places the numbers of its own and its parent levels: "%1." reads
    "3.", "(%1)" "(c)" in a level counting in letters, "%1.%2" "2.4". Bullets read "- ".

    Lists (``w:num``) of one definition (``w:abstractNum``, or of definitions sharing one ``w:nsid``)
    count on from each other, as Word numbers them: a list broken by a paragraph or a table goes on
    where it was. A list that overrides a level's start (Word's "Restart numbering") counts that
    level from there when its first item comes; it may also override the level's format. A
    definition that links to a list style (``w:numStyleLink``) takes that style's levels and counter.

    Example:
        >>> shapes = [("upperRoman", "%1."), ("lowerLetter", "(%2)"), ("decimal", "%1.%2.%3")]
        >>> levels = "".join(f'<w:lvl w:ilvl="{i}"><w:start w:val="1"/><w:numFmt w:val="{f}"/><w:lvlText w:val="{t}"/></w:lvl>'
        ...                  for i, (f, t) in enumerate(shapes))
        >>> restart = '<w:lvlOverride w:ilvl="0"><w:startOverride w:val="1"/></w:lvlOverride>'
        >>> numbering = _Numbering(ElementTree.fromstring(f'<w:numbering xmlns:w="{NAMESPACE}"><w:abstractNum '
        ...     f'w:abstractNumId="3">{levels}</w:abstractNum><w:num w:numId="7"><w:abstractNumId w:val="3"/></w:num>'
        ...     f'<w:num w:numId="8"><w:abstractNumId w:val="3"/></w:num>'
        ...     f'<w:num w:numId="9"><w:abstractNumId w:val="3"/>{restart}</w:num></w:numbering>'))
        >>> [numbering.lead("7", level) for level in (0, 1, 1, 0, 1, 2)]
        ['I. ', '(a) ', '(b) ', 'II. ', '(a) ', 'II.a.1 ']
        >>> [numbering.lead(*item) for item in (("8", 0), ("9", 0), ("9", 1), ("9", 0))]
        ['III. ', 'I. ', '(a) ', 'II. ']
    """

    def __init__(self, root: ElementTree.Element | None):
        # (list, level) -> (number format, start, level text)
        self._levels: dict[tuple[str, int], tuple[str, int, str]] = {}
        self._definition_of: dict[str, str] = {}  # list -> the counter it shares with the lists of its definition
        self._restarts: dict[tuple[str, int], int] = {}  # (list, level) -> the number it restarts from, until used
        self._counts: dict[tuple[str, int], int] = {}  # (definition, level) -> the number reached
        if root is None:
            return
        abstract: dict[str, dict[int, tuple[str, int, str]]] = {}
        counted_as: dict[str, str] = {}  # definition -> the counter its lists share
        styled_by: dict[str, str] = {}  # list style -> the definition that holds its levels
        uses_style: dict[str, str] = {}  # definition -> the list style it takes its levels from
        for definition in root.iter(_W + "abstractNum"):
            definition_id = definition.get(_W + "abstractNumId", "")
            shapes = abstract.setdefault(definition_id, {})
            counted_as.setdefault(definition_id, "nsid " + (_value(definition, "nsid") or "of " + definition_id))
            for level in definition.iter(_W + "lvl"):
                shapes[_int(level.get(_W + "ilvl"))] = _level_shape(level)
            if style := _value(definition, "styleLink"):
                styled_by.setdefault(style, definition_id)
            if style := _value(definition, "numStyleLink"):
                uses_style[definition_id] = style
        for definition_id, style in uses_style.items():
            # A list of a list style (Word's "Define New List Style") is numbered by that style's
            # levels, and counts on with the style's other lists.
            source = styled_by.get(style)
            if source is not None and source != definition_id:
                abstract[definition_id] = abstract[source]
                counted_as[definition_id] = counted_as[source]
        for instance in root.iter(_W + "num"):
            list_id, definition = instance.get(_W + "numId", ""), _value(instance, "abstractNumId") or ""
            self._definition_of[list_id] = counted_as.get(definition, "of " + definition)
            for level, shape in abstract.get(definition, {}).items():
                self._levels[(list_id, level)] = shape
            for override in instance.iter(_W + "lvlOverride"):
                level = _int(override.get(_W + "ilvl"))
                own = override.find(_W + "lvl")
                if own is not None:
                    self._levels[(list_id, level)] = _level_shape(own)
                start = _value(override, "startOverride")
                if start is not None:
                    self._restarts[(list_id, level)] = _int(start)

    def lead(self, list_id: str, level: int) -> str:
        """What an item of this list at this level starts with: its number as the level writes it, or "- "."""
        number_format, start, text = self._levels.get((list_id, level), ("bullet", 1, ""))
        counter = self._definition_of.get(list_id, list_id)
        if (list_id, level) in self._restarts:
            self._counts[(counter, level)] = self._restarts.pop((list_id, level)) - 1
        number = self._counts.get((counter, level), start - 1) + 1
        self._counts[(counter, level)] = number
        for key in [key for key in self._counts if key[0] == counter and key[1] > level]:
            del self._counts[key]  # a deeper level counts again from its start under the next item
        if number_format not in _NUMBER_FORMATS or "%" not in text:
            return "- "

        def number_of(match: re.Match) -> str:
            at = int(match.group(1)) - 1
            shape = self._levels.get((list_id, at), ("decimal", 1, ""))
            count = self._counts.get((counter, at), shape[1])
            return _NUMBER_FORMATS.get(shape[0], str)(count)

        return _LEVEL_PLACE.sub(number_of, text).strip() + " "


def _level_shape(level: ElementTree.Element) -> tuple[str, int, str]:
    """A list level's (number format, start, level text)."""
    text = _value(level, "lvlText")
    return (_value(level, "numFmt") or "", _int(_value(level, "start"), 1),
            f"%{_int(level.get(_W + 'ilvl')) + 1}." if text is None else text)


class _Reader:
    def __init__(self, styles: _Styles, numbering: _Numbering, notes: dict[tuple[str, str], str]):
        self.styles = styles
        self.numbering = numbering
        self.notes = notes
        #: ``(level, heading, body)`` in reading order, sections without text too (their headings may be carried).
        self.sections: list[tuple[int, str, str]] = []
        self.first_title: str | None = None
        self.first_h1: str | None = None
        self._heading = ""
        self._level = TITLE_LEVEL  # the level of the heading of the section being read
        self._paragraphs: list[str] = []

    def read(self, document: ElementTree.Element) -> None:
        body = document.find(_W + "body")
        for block in _children(body if body is not None else document, {_W + "p", _W + "tbl"}):
            references: list[tuple[str, str]] = []
            self._read_block(block, references)
            # A note follows the paragraph or table that refers to it, so it is found with its context.
            for reference in dict.fromkeys(references):
                if self.notes.get(reference):
                    self._paragraphs.append(f"{reference[0].capitalize()}: {self.notes[reference]}")
        self._end_section()

    def _read_block(self, block: ElementTree.Element, references: list[tuple[str, str]]) -> None:
        if block.tag == _W + "tbl":
            self._paragraphs.append("\n".join(_table_rows(block, references)))
            return
        properties = block.find(_W + "pPr")
        style = _value(properties, "pStyle")
        if _TABLE_OF_CONTENTS_NAME.fullmatch(self.styles.name(style)):
            return
        text = _paragraph_text(block, references)
        if not text.strip():
            return
        own_level = _outline_level(properties)
        level = (own_level or None) if own_level is not None else self.styles.heading_level(style)
        if level is not None:
            self._heading_starts(" ".join(text.split()), level)
            return
        listed = _numbering_of(properties) or self.styles.numbering(style)
        item = listed is not None and listed[0] != "0"
        lines = [" ".join(line.split()) for line in text.splitlines() if line.strip()]
        marker = self.numbering.lead(*listed) if item else ""
        self._paragraphs.append("\n".join(list_item_lines(marker, listed[1] if item else 0, lines)))

    def _heading_starts(self, heading: str, level: int) -> None:
        self._end_section()
        self._heading, self._level = heading, level
        if level == TITLE_LEVEL:
            self.first_title = self.first_title or heading
        elif level == 1:
            self.first_h1 = self.first_h1 or heading

    def _end_section(self) -> None:
        paragraphs = [p for p in self._paragraphs if p.strip()]
        self._paragraphs = []
        if paragraphs or self._heading:
            self.sections.append((self._level, self._heading, "\n\n".join(paragraphs)))


def _children(container: ElementTree.Element, wanted: set[str],
              through: set[str] = _CONTAINERS) -> Iterator[ElementTree.Element]:
    """The ``wanted`` elements of a container in reading order, read through ``through`` (no recursion)."""
    stack = [iter(container)]
    while stack:
        element = next(stack[-1], None)
        if element is None:
            stack.pop()
        elif element.tag in wanted:
            yield element
        elif element.tag in through:
            stack.append(iter(element))


def _paragraph_text(paragraph: ElementTree.Element, references: list[tuple[str, str]] | None = None) -> str:
    """A paragraph's text: its runs, through links, fields and insertions; tabs as spaces, breaks as new lines.

    The footnotes and endnotes it refers to are added to ``references`` as ("footnote", id) pairs.
    """
    pieces: list[str] = []
    stack = [iter(paragraph)]
    while stack:
        element = next(stack[-1], None)
        if element is None:
            stack.pop()
        elif element.tag == _W + "r":
            for item in element:
                if item.tag == _W + "t":
                    pieces.append(item.text or "")
                elif item.tag in (_W + "tab", _W + "ptab"):
                    pieces.append(" ")
                elif item.tag in (_W + "br", _W + "cr"):
                    pieces.append("\n")
                elif item.tag == _W + "noBreakHyphen":
                    pieces.append("-")
                elif item.tag in _NOTE_REFERENCES and references is not None:
                    references.append((_NOTE_REFERENCES[item.tag], item.get(_W + "id", "")))
        elif element.tag in _INLINE_CONTAINERS:
            stack.append(iter(element))
    return "".join(pieces)


def _table_rows(table: ElementTree.Element, references: list[tuple[str, str]] | None = None) -> list[str]:
    """A table's rows, cells separated by " | "; a cell's paragraphs and nested tables as one line."""
    rows = []
    for row in _children(table, {_W + "tr"}):
        cells = [" ".join(word for paragraph in _children(cell, {_W + "p"}, _CELL_CONTENT)
                          for word in _paragraph_text(paragraph, references).split())
                 for cell in _children(row, {_W + "tc"})]
        if any(cells):
            rows.append(" ".join(" | ".join(cells).split()))
    return rows


def _notes(root: ElementTree.Element | None, kind: str) -> dict[tuple[str, str], str]:
    """The text of each footnote or endnote of a notes part, by (kind, id); Word's separator lines left out."""
    notes = {}
    for note in root.iter(_W + kind) if root is not None else ():
        if note.get(_W + "type", "normal") != "normal":
            continue
        text = " ".join(word for paragraph in _children(note, {_W + "p"}, _CELL_CONTENT)
                        for word in _paragraph_text(paragraph).split())
        notes[(kind, note.get(_W + "id", ""))] = text
    return notes


def _outline_level(properties: ElementTree.Element | None) -> int | None:
    """A paragraph's own outline level as a heading level (1-9), 0 for body text, None if unset."""
    value = _value(properties, "outlineLvl")
    if value is None:
        return None
    level = _int(value, 9)
    return level + 1 if 0 <= level < 9 else 0


def _numbering_of(properties: ElementTree.Element | None) -> tuple[str, int] | None:
    """The list (its id) and level a paragraph's properties put it in, or None."""
    numbering = properties.find(_W + "numPr") if properties is not None else None
    list_id = _value(numbering, "numId", missing="0")
    return None if list_id is None else (list_id, _int(_value(numbering, "ilvl")))


def _value(parent: ElementTree.Element | None, tag: str, missing: str = "") -> str | None:
    """The ``w:val`` of ``parent``'s ``w:<tag>`` child (``missing`` where it has none), None where there is no such child."""
    element = parent.find(_W + tag) if parent is not None else None
    return None if element is None else element.get(_W + "val", missing)


def _style_name(style: ElementTree.Element | None) -> str:
    """A style's name as Word stores it, lower-cased: "heading 1", "title", "toc 2"."""
    return (_value(style, "name") or "").strip().lower()


def _int(text: str | None, default: int = 0) -> int:
    text = (text or "").strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 9 else default
