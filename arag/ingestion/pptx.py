"""PowerPoint presentations (``.pptx``) read as their text, one section a slide.

A ``.pptx`` file is a zip of XML parts (:mod:`arag.ingestion.ooxml`). ``ppt/presentation.xml``
lists the slides in the order they are shown; each slide holds a tree of shapes, in the order a
screen reader reads them.

Each slide becomes a section headed "Slide N: its title" (or "Slide N" without one), so that a
citation names the slide. Its body is, shape by shape:
- the paragraphs of each text shape (placeholders, text boxes, shapes inside groups), a line each;
  list items start "- ", two spaces further in a level down, as the Markdown reader writes nested
  lists (a content placeholder's paragraphs are items unless they turn their bullet off, as in
  PowerPoint's own masters; elsewhere a paragraph is an item when it sets a bullet);
- each table row as a ``cell | cell`` line, as the HTML and Word readers write them;
- the speaker notes, as a last paragraph starting "Notes:".

What is left out:
- the frame every slide repeats: date, footer and slide-number placeholders (as the PDF reader
  drops running titles and page numbers);
- pictures, charts and SmartArt, whose words are not in the slide's own text;
- a slide with no text at all (a slide with only a title, such as a section divider, is its title).

Hidden slides are read: they are part of the deck, only not shown when it is presented. The
presentation's title is its own (File > Properties), else its first slide's title.

Example:
    >>> slide = ('<p:sld xmlns:p="{p}" xmlns:a="{a}"><p:cSld><p:spTree>'
    ...          '<p:sp><p:nvSpPr><p:nvPr><p:ph type="title"/></p:nvPr></p:nvSpPr>'
    ...          '<p:txBody><a:p><a:r><a:t>Tides</a:t></a:r></a:p></p:txBody></p:sp>'
    ...          '<p:sp><p:txBody><a:p><a:r><a:t>Twice a day.</a:t></a:r></a:p></p:txBody></p:sp>'
    ...          '</p:spTree></p:cSld></p:sld>').format(p=PRESENTATION, a=DRAWING)
    >>> read_slide(ElementTree.fromstring(slide), None)
    ('Tides', 'Twice a day.')
"""

from __future__ import annotations

from xml.etree import ElementTree

from arag.ingestion.ooxml import RELATIONSHIP_ID, Package, list_item_lines

PRESENTATION = "http://schemas.openxmlformats.org/presentationml/2006/main"
DRAWING = "http://schemas.openxmlformats.org/drawingml/2006/main"
_P = "{" + PRESENTATION + "}"
_A = "{" + DRAWING + "}"
_MC = "{http://schemas.openxmlformats.org/markup-compatibility/2006}"
_SLIDE = "/relationships/slide"
_NOTES_SLIDE = "/relationships/notesSlide"
#: Placeholders that hold a slide's title.
_TITLES = {"title", "ctrTitle"}
#: Placeholders whose paragraphs are list items unless they turn the bullet off (PowerPoint's own masters).
_BULLETED = {"body", "obj"}
#: A paragraph's own bullet: a character, a picture or automatic numbering.
_BULLETS = ("buChar", "buAutoNum", "buBlip")
#: Placeholders that repeat on every slide (or notes page) rather than say something of their own.
_FRAME = {"dt", "ftr", "sldNum", "hdr", "sldImg"}


def read_pptx(data: bytes) -> tuple[str | None, list[tuple[str, str]]]:
    """The title and the ``(heading, body)`` sections, a slide each; raises :class:`~arag.ingestion.ooxml.PackageError`."""
    with Package(data, "PowerPoint presentation") as package:
        name, presentation = package.main_part("ppt/presentation.xml")
        slides = package.relationships(name)
        sections: list[tuple[str, str]] = []
        first_title = None
        read: set[str] = set()
        slide_list = presentation.find(_P + "sldIdLst")
        for number, entry in enumerate(slide_list.iter(_P + "sldId") if slide_list is not None else (), start=1):
            kind, part_name = slides.get(entry.get(RELATIONSHIP_ID, ""), ("", ""))
            if part_name in read:  # PowerPoint lists a slide once; a file listing one again would have it parsed again and again
                continue
            read.add(part_name)
            slide = package.part(part_name) if kind.endswith(_SLIDE) else None
            if slide is None:
                continue
            notes = next((package.part(path) for kind, path in package.relationships(part_name).values()
                          if kind.endswith(_NOTES_SLIDE)), None)
            title, body = read_slide(slide, notes)
            first_title = first_title or title
            if title or body:  # a slide of only a title (a section divider) is its title, to be found by it
                sections.append((f"Slide {number}: {title}" if title else f"Slide {number}", body or title))
        own_title = package.title()
    return own_title or first_title, sections


def read_slide(slide: ElementTree.Element, notes: ElementTree.Element | None) -> tuple[str, str]:
    """A slide's title and the rest of its text, its speaker notes (``notes``, a notes slide) last."""
    title_lines: list[str] = []
    blocks: list[str] = []
    for shape in _shapes(slide):
        placeholder = _placeholder_type(shape)
        if placeholder in _FRAME:
            continue
        lines = _shape_lines(shape, bulleted=placeholder in _BULLETED)
        if placeholder in _TITLES and not title_lines:
            title_lines = lines
        elif lines:
            blocks.append("\n".join(lines))
    if notes is not None:
        spoken = [line for shape in _shapes(notes) if _placeholder_type(shape) == "body" for line in _shape_lines(shape)]
        if spoken:
            blocks.append("Notes: " + "\n".join(spoken))
    return " ".join(" ".join(title_lines).split()), "\n\n".join(blocks)


def _shapes(root: ElementTree.Element):
    """The slide's shapes in reading order, groups opened (without recursion: groups may nest deeply)."""
    tree = root.find(f"{_P}cSld/{_P}spTree")
    stack = [iter(tree)] if tree is not None else []
    while stack:
        child = next(stack[-1], None)
        if child is None:
            stack.pop()
        elif child.tag == _MC + "AlternateContent":  # content written twice, for two readers: read one
            choice = child.find(_MC + "Choice")
            if choice is None:
                choice = child.find(_MC + "Fallback")
            if choice is not None:
                stack.append(iter(choice))
        elif child.tag == _P + "grpSp":
            stack.append(iter(child))
        else:
            yield child


def _placeholder_type(shape: ElementTree.Element) -> str | None:
    """"title", "body", "sldNum", … for a placeholder ("obj" when it names none); None for other shapes."""
    for properties in (shape.find(f"{_P}nvSpPr/{_P}nvPr"), shape.find(f"{_P}nvGraphicFramePr/{_P}nvPr")):
        if properties is not None and (placeholder := properties.find(_P + "ph")) is not None:
            return placeholder.get("type", "obj")
    return None


def _shape_lines(shape: ElementTree.Element, bulleted: bool = False) -> list[str]:
    """A text shape's paragraphs, or a table's rows, as lines; ``bulleted``: the shape's paragraphs are list items."""
    if shape.tag == _P + "sp":
        body = shape.find(_P + "txBody")
        return _paragraph_lines(body, bulleted) if body is not None else []
    if shape.tag == _P + "graphicFrame":
        return [line for table in shape.iter(_A + "tbl") for line in _table_lines(table)]
    return []


def _paragraph_lines(body: ElementTree.Element, bulleted: bool = False) -> list[str]:
    """The paragraphs' lines; a list item starts "- ", two spaces further in a level down.

    As the Markdown reader writes nested lists. Items are the paragraphs of a ``bulleted`` shape that
    do not turn their bullet off, and any paragraph that sets a bullet of its own.
    """
    lines = []
    for paragraph in body.iter(_A + "p"):
        pieces = []
        for run in paragraph:
            if run.tag in (_A + "r", _A + "fld"):
                pieces.append(run.findtext(_A + "t") or "")
            elif run.tag == _A + "br":
                pieces.append("\n")
        properties = paragraph.find(_A + "pPr")
        if properties is None:
            properties = ElementTree.Element(_A + "pPr")
        own_bullet = any(properties.find(_A + tag) is not None for tag in _BULLETS)
        item = (bulleted or own_bullet) and properties.find(_A + "buNone") is None
        texts = [" ".join(line.split()) for line in "".join(pieces).replace("\v", "\n").split("\n")]
        lines.extend(list_item_lines("- " if item else "", _int(properties.get("lvl")), [t for t in texts if t]))
    return lines


def _int(value: str | None) -> int:
    try:
        return max(0, int(value or 0))
    except ValueError:
        return 0


def _table_lines(table: ElementTree.Element) -> list[str]:
    lines = []
    for row in table.iter(_A + "tr"):
        cells = []
        for cell in row.iter(_A + "tc"):
            if cell.get("hMerge") or cell.get("vMerge"):  # the merged cell's text is in the cell it extends
                continue
            body = cell.find(_A + "txBody")
            cells.append(" ".join(_paragraph_lines(body)) if body is not None else "")
        if any(cells):
            lines.append(" | ".join(cells))
    return lines
