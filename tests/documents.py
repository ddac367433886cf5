"""Small real documents of every supported format, written by the tests themselves."""

from __future__ import annotations

import io
import json
from pathlib import Path

MARKDOWN = """# Lighthouses

Lighthouses guide ships at night with a bright rotating lamp.

## Fresnel lens

The Fresnel lens, invented by Augustin-Jean Fresnel in 1822, concentrates the lamp's light
into a beam visible for more than twenty nautical miles.

## Keepers

Lighthouse keepers trimmed wicks and wound the clockwork that turned the lens.
"""

HTML = """<html><head><title>Honey bees</title><style>p {color: red}</style></head>
<body><h1>Honey bees</h1><p>Honey bees live in colonies ruled by a single queen.</p>
<h2>Waggle dance</h2><p>Foragers perform a waggle dance to tell others where flowers are.</p>
<script>var ignored = "do not index";</script></body></html>"""

TEXT = "Sourdough bread rises because wild yeast and lactobacilli ferment the dough.\n\nA starter is fed flour and water every day."

RECORDS = [
    {"id": "ada", "title": "Ada Lovelace", "text": "Ada Lovelace wrote the first published algorithm for Babbage's Analytical Engine."},
    {"id": "grace", "title": "Grace Hopper", "text": "Grace Hopper led the team that built the first COBOL compiler."},
]


def pdf_bytes(lines: list[str], title: str | None = None, more_pages: list[list[str]] = ()) -> bytes:
    """A minimal valid PDF with pages of text in Helvetica, ``lines`` the first (byte offsets computed)."""
    pages = [lines, *more_pages]
    font = 3 + 2 * len(pages)  # the catalog, the page tree, then a page and its contents for each page
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{' '.join(f'{3 + 2 * n} 0 R' for n in range(len(pages)))}] /Count {len(pages)} >>",
    ]
    for n, page in enumerate(pages):
        content = "BT /F1 12 Tf 72 720 Td 14 TL " + " ".join(f"({line}) '" for line in page) + " ET"
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {4 + 2 * n} 0 R "
                       f"/Resources << /Font << /F1 {font} 0 R >> >> >>")
        objects.append(f"<< /Length {len(content)} >>\nstream\n{content}\nendstream")
    objects.append("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    if title:
        objects.append(f"<< /Title ({title}) >>")
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(f"{number} 0 obj\n{body}\nendobj\n".encode("latin-1"))
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    for offset in offsets:
        out.write(f"{offset:010d} 00000 n \n".encode())
    info = f" /Info {len(objects)} 0 R" if title else ""
    out.write(f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R{info} >>\nstartxref\n{xref}\n%%EOF\n".encode())
    return out.getvalue()


def outlined_pdf(path: Path, data: bytes, outline: list[tuple[str, int, int]]) -> Path:
    """The PDF ``data`` written to ``path`` with an outline (bookmarks): (title, page index, depth), depth 1 at the top."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    parents = {}
    for title, page, depth in outline:
        parents[depth] = writer.add_outline_item(title, page, parent=parents.get(depth - 1))
    with path.open("wb") as out:
        writer.write(out)
    return path


def encrypted_pdf_bytes() -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf_bytes(["secret text"]))))
    writer.encrypt("password", algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def word_document(path):
    """A Word document written by python-docx from its bundled template (Word's own styles and numbering)."""
    import docx  # python-docx, a test dependency
    from docx.enum.style import WD_STYLE_TYPE
    from docx.opc.constants import RELATIONSHIP_TYPE as RT
    from docx.oxml import parse_xml
    from docx.oxml.ns import nsdecls

    document = docx.Document()
    document.core_properties.title = "Harbour handbook"
    document.sections[0].header.paragraphs[0].text = "Confidential draft"
    document.add_heading("Harbour guide", 0)
    document.styles.add_style("toc 1", WD_STYLE_TYPE.PARAGRAPH)
    document.add_paragraph("Tides\t3", style="toc 1")
    chapter = document.styles.add_style("Chapter", WD_STYLE_TYPE.PARAGRAPH)
    chapter.base_style = document.styles["Heading 1"]
    document.add_paragraph("Tides", style="Chapter")
    intro = document.add_paragraph("High water comes ")
    intro.add_run("twice a day.").add_break()
    intro.add_run("Check the table:").add_tab()
    intro._p.append(parse_xml(f'<w:hyperlink {nsdecls("w")} w:anchor="t"><w:r><w:t>tide table</w:t></w:r></w:hyperlink>'))
    edited = document.add_paragraph("Moorings cost ")
    edited._p.append(parse_xml(f'<w:del {nsdecls("w")} w:id="1" w:author="a"><w:r><w:delText>5</w:delText></w:r></w:del>'))
    edited._p.append(parse_xml(f'<w:ins {nsdecls("w")} w:id="2" w:author="a"><w:r><w:t>7</w:t></w:r></w:ins>'))
    edited.add_run(" pounds a night.")
    edited._p.append(parse_xml(f'<w:r {nsdecls("w")}><w:footnoteReference w:id="1"/></w:r>'))
    _add_part(document, "/word/footnotes.xml", "footnotes", RT.FOOTNOTES, (
        f'<w:footnotes {nsdecls("w")}><w:footnote w:type="separator" w:id="-1"><w:p><w:r><w:separator/></w:r></w:p>'
        '</w:footnote><w:footnote w:id="1"><w:p><w:r><w:footnoteRef/></w:r><w:r><w:t xml:space="preserve"> Winter '
        'rates are half.</w:t></w:r></w:p></w:footnote></w:footnotes>'))
    document.add_heading("Steps", 2)
    for step in ("Call the harbour master.", "Wait for a berth."):
        document.add_paragraph(step, style="List Number")
    document.add_paragraph("Bring fenders.", style="List Bullet")
    table = document.add_table(rows=2, cols=2)
    for (row, column), text in {(0, 0): "Berth", (0, 1): "Depth", (1, 0): "A", (1, 1): "4 m"}.items():
        table.cell(row, column).text = text
    inner = table.cell(1, 1).add_table(rows=1, cols=1)
    inner.cell(0, 0).text = "at low water"
    document.save(path)


def word_list_item(document, text: str, list_id: int | None = None, level: int = 0, style: str | None = None):
    """A paragraph added to a python-docx ``document``: an item of list ``list_id`` at ``level``
    (its own ``w:numPr``), else only of ``style`` (whose list, if it has one, numbers it).
    """
    from docx.oxml import parse_xml
    from docx.oxml.ns import nsdecls

    paragraph = document.add_paragraph(text, style=style)
    if list_id is not None:
        paragraph._p.get_or_add_pPr().append(parse_xml(
            f'<w:numPr {nsdecls("w")}><w:ilvl w:val="{level}"/><w:numId w:val="{list_id}"/></w:numPr>'))
    return paragraph


def word_paragraphs_read(document, path: Path) -> list[str]:
    """A python-docx ``document`` saved at ``path`` and read back: the paragraphs of its first section."""
    from arag.ingestion.loaders import load_file

    document.save(path)
    [doc] = load_file(path, path.read_bytes())
    return doc.sections[0].text.split("\n\n")


def slide_deck(path):
    """A PowerPoint presentation written by python-pptx from its bundled template (PowerPoint's own layouts).

    Slides: a title slide; bullets with a sub-bullet and a paragraph without its bullet, speaker notes and
    the date, footer and slide-number placeholders of the slide frame; a table with a merged cell, a
    grouped text box with a bullet of its own and a line break, and a shape written twice for two readers
    (markup compatibility); a slide with no text; a slide with a title alone; a hidden slide.
    """
    from pptx import Presentation  # python-pptx, a test dependency
    from pptx.oxml import parse_xml
    from pptx.util import Inches

    deck = Presentation()
    deck.core_properties.title = "Harbour handbook"
    cover = deck.slides.add_slide(deck.slide_layouts[0])
    cover.shapes.title.text = "Harbour guide"
    cover.placeholders[1].text = "Visiting boats, 2026"
    tides = deck.slides.add_slide(deck.slide_layouts[1])
    tides.shapes.title.text = "Tides"
    body = tides.placeholders[1].text_frame
    body.text = "High water comes twice a day."
    springs = body.add_paragraph()
    springs.text = "Spring tides follow\vthe full moon."
    springs.level = 1
    unbulleted = body.add_paragraph()
    unbulleted.text = "Tables at the office."
    unbulleted._p.get_or_add_pPr().append(parse_xml(f"<a:buNone {_PPTX_NAMESPACES}/>"))
    tides.notes_slide.notes_text_frame.text = "Point at the tide table."
    for n, (kind, text) in enumerate((("dt", "7 December 2026"), ("ftr", "Harbour office"), ("sldNum", "2")), start=10):
        tides.shapes._spTree.append(parse_xml(
            f'<p:sp {_PPTX_NAMESPACES}><p:nvSpPr><p:cNvPr id="{n}" name="{kind}"/><p:cNvSpPr/><p:nvPr><p:ph type="{kind}"/>'
            f'</p:nvPr></p:nvSpPr><p:spPr/><p:txBody><a:bodyPr/><a:p><a:r><a:t>{text}</a:t></a:r></a:p></p:txBody></p:sp>'))
    prices = deck.slides.add_slide(deck.slide_layouts[5])
    prices.shapes.title.text = "Prices"
    table = prices.shapes.add_table(3, 2, Inches(1), Inches(2), Inches(4), Inches(1.5)).table
    for (row, column), text in {(0, 0): "Boat", (0, 1): "Night", (1, 0): "12 m", (1, 1): "380 kroner",
                                (2, 0): "Electricity included"}.items():
        table.cell(row, column).text = text
    table.cell(2, 0).merge(table.cell(2, 1))
    group = prices.shapes.add_group_shape()
    kiosk = group.shapes.add_textbox(Inches(1), Inches(4), Inches(3), Inches(1)).text_frame
    kiosk.text = "Pay in cash\vat the kiosk."  # a text box's paragraph with a bullet of its own
    kiosk.paragraphs[0]._p.get_or_add_pPr().append(parse_xml(f'<a:buChar {_PPTX_NAMESPACES} char="•"/>'))
    prices.shapes._spTree.append(parse_xml(
        f'<mc:AlternateContent {_PPTX_NAMESPACES}><mc:Choice Requires="p14">{_text_shape(20, "Showers are free.")}</mc:Choice>'
        f'<mc:Fallback>{_text_shape(21, "Showers are free.")}</mc:Fallback></mc:AlternateContent>'))
    deck.slides.add_slide(deck.slide_layouts[6])  # a blank slide: no text at all
    deck.slides.add_slide(deck.slide_layouts[5]).shapes.title.text = "Winter"  # a section divider: a title alone
    backup = deck.slides.add_slide(deck.slide_layouts[5])
    backup.shapes.title.text = "Winter rates"
    backup.shapes.add_textbox(Inches(1), Inches(2), Inches(3), Inches(1)).text_frame.text = "Half price from November."
    backup._element.set("show", "0")
    deck.save(path)


_PPTX_NAMESPACES = ('xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main" '
                    'xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" '
                    'xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006"')


def _text_shape(shape_id: int, text: str) -> str:
    return (f'<p:sp {_PPTX_NAMESPACES}><p:nvSpPr><p:cNvPr id="{shape_id}" name="Text {shape_id}"/><p:cNvSpPr txBox="1"/>'
            f'<p:nvPr/></p:nvSpPr><p:spPr/><p:txBody><a:bodyPr/><a:p><a:r><a:t>{text}</a:t></a:r></a:p></p:txBody></p:sp>')


def _add_part(document, name: str, kind: str, relationship: str, xml: str) -> None:
    """A part python-docx has no API for (footnotes), added to the package and related as Word relates it."""
    from docx.opc.packuri import PackURI
    from docx.opc.part import Part

    content_type = f"application/vnd.openxmlformats-officedocument.wordprocessingml.{kind}+xml"
    part = Part(PackURI(name), content_type, xml.encode(), document.part.package)
    document.part.relate_to(part, relationship)


def write_corpus(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "markdown": folder / "lighthouses.md",
        "html": folder / "bees.html",
        "text": folder / "bread.txt",
        "jsonl": folder / "people.jsonl",
        "pdf": folder / "volcanoes.pdf",
    }
    paths["markdown"].write_text(MARKDOWN)
    paths["html"].write_text(HTML)
    paths["text"].write_text(TEXT)
    paths["jsonl"].write_text("\n".join(json.dumps(r) for r in RECORDS) + "\n")
    pages = ["Volcanoes erupt when magma rises through the crust.", "Mount Etna is in Sicily."]
    paths["pdf"].write_bytes(pdf_bytes(pages, title="Volcanoes"))
    return paths
