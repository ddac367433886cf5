"""Readers that turn files into titled, sectioned documents.

Supported: Markdown, reStructuredText, plain text, HTML, PDF, Word (``.docx``), PowerPoint
(``.pptx``) and JSONL records ``{"id", "title", "text"}``.
Every failure is an :class:`IngestError` naming the file and, where it helps, the line.
"""

from __future__ import annotations

import io
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from arag.ingestion.docx import read_docx
from arag.ingestion.headings import carry_headings
from arag.ingestion.html import read_html
from arag.ingestion.markdown import read_markdown
from arag.ingestion.ooxml import PackageError
from arag.ingestion.pdf import flatten_outline, running_title, sections_of
from arag.ingestion.pptx import read_pptx
from arag.ingestion.rst import render_inline, render_rst_body
from arag.tables.catalog import TABLE_SUFFIXES

TEXT_SUFFIXES = {".md": "markdown", ".markdown": "markdown", ".txt": "text", ".text": "text", ".rst": "rst"}
HTML_SUFFIXES = {".html", ".htm"}
SUPPORTED_SUFFIXES = frozenset(TEXT_SUFFIXES) | HTML_SUFFIXES | {".pdf", ".docx", ".pptx", ".jsonl"}
#: Every file type ingest takes: documents (read here, chunked and embedded) and tables (registered
#: for SQL). Kept here, beside the readers, so the web app's upload box can name them without
#: importing ingestion's index and encoder.
INGESTED_SUFFIXES = SUPPORTED_SUFFIXES | TABLE_SUFFIXES


def text_format(path: Path) -> str:
    """How a text file is read: "markdown", "rst" or "text", from its suffix.

    A ``.txt`` copy of a markup file keeps its markup: Sphinx publishes each page's source as
    ``_sources/page.rst.txt`` (or ``.md.txt``), and read as plain text its title would be the file
    name and its headings lost.
    """
    suffixes = [s.lower() for s in path.suffixes[-2:]]
    if len(suffixes) == 2 and suffixes[1] == ".txt" and TEXT_SUFFIXES.get(suffixes[0], "text") != "text":
        return TEXT_SUFFIXES[suffixes[0]]
    return TEXT_SUFFIXES[suffixes[-1]]


#: Formats whose reading changed after indexes were written with them, and a mark of the change:
#: it goes into a file's hash, so files read the old way are read again (reST and Markdown: markup rendered;
#: HTML: the page's own content, code keeping its lines; PDF: running headers and page numbers left out;
#: all of them and Word: headings without text of their own carried into those under them; Word: list
#: numbers counted on across the lists of one definition, list styles read; HTML and Word: nested list items
#: indented; Markdown: content tabs and admonition titles read as leading phrases).
READING_REVISIONS = {"rst": b"rendered headings", "markdown": b"content tabs", "html": b"nested lists",
                     "pdf": b"unframed headings", "docx": b"nested lists"}


def reading_revision(path: Path) -> bytes:
    """What, besides its bytes, tags and chunking, a file's chunks depend on: b"" where nothing changed."""
    suffix = path.suffix.lower()
    if suffix not in TEXT_SUFFIXES:  # a file's kind is its suffix's name, HTML's two suffixes aside
        return READING_REVISIONS.get("html" if suffix in HTML_SUFFIXES else suffix.lstrip("."), b"")
    kind = text_format(path)
    # A .txt copy of a markup file was once read as plain text.
    copy = kind.encode() if kind != TEXT_SUFFIXES[suffix] else b""
    return copy + READING_REVISIONS.get(kind, b"")


class IngestError(Exception):
    """A file that cannot be ingested; ``str()`` is one line saying what and where."""

    def __init__(self, path: Path | str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


@dataclass
class Section:
    heading: str
    text: str


@dataclass
class SourceDocument:
    """One logical document: a file, or one record of a JSONL file (``source`` = ``file#id``)."""

    source: str
    title: str
    kind: str
    sections: list[Section] = field(default_factory=list)


def decode_text(path: Path, data: bytes) -> str:
    if b"\x00" in data[:8192]:
        raise IngestError(path, "binary content in a text file (NUL bytes); not ingested")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise IngestError(path, f"not UTF-8 text (invalid byte at offset {exc.start}); convert it to UTF-8") from None


def parse_markdown(text: str) -> tuple[str | None, list[Section]]:
    """Split at headings (outside code); bodies rendered as a reader sees them (:mod:`arag.ingestion.markdown`)."""
    title, sections = read_markdown(text)
    return title, [Section(heading, body) for heading, body in sections]


_RST_ADORNMENT = re.compile(r"^([=\-~^\"'`#*+:.])\1{2,}\s*$")


def parse_rst(text: str) -> tuple[str | None, list[Section]]:
    """Split reStructuredText at underlined (or over- and underlined) section titles; the first is the title.

    Each section's body is rendered to the text a reader sees (:mod:`arag.ingestion.rst`); a title
    followed at once by a deeper one heads the sections under it (:mod:`arag.ingestion.headings`).
    """
    lines = text.splitlines()
    title = None
    sections: list[tuple[int, str, str]] = []
    styles: dict[tuple[str, bool], int] = {}  # a title's adornment (its character, overlined or not) -> its level
    level, heading, body = 0, "", []
    i = 0
    while i < len(lines):
        line = lines[i]
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if _RST_ADORNMENT.match(line) and i + 2 < len(lines) and _RST_ADORNMENT.match(lines[i + 2]) and lines[i + 1].strip():
            found, style, skip = lines[i + 1].strip(), (lines[i + 2].strip()[0], True), 3
        elif line.strip() and not _RST_ADORNMENT.match(line) and _RST_ADORNMENT.match(nxt) and len(nxt.strip()) >= len(line.strip()):
            found, style, skip = line.strip(), (nxt.strip()[0], False), 2
        else:
            found, style, skip = None, None, 1
        if found is not None:
            sections.append((level, heading, render_rst_body(body)))
            # reST has no fixed levels: each adornment is one level below those seen before it.
            level, heading, body = styles.setdefault(style, len(styles) + 1), render_inline(found), []
            title = title or heading
        else:
            body.append(line)
        i += skip
    sections.append((level, heading, render_rst_body(body)))
    kept = [Section(heading, body) for heading, body in carry_headings(sections, title)]
    # A page of nothing but its title and a table of contents (a Sphinx index page) is its title.
    return title, kept or ([Section(title, title)] if title else [])


def parse_html(text: str) -> tuple[str | None, list[Section]]:
    """The page's own content, without the site around it, code keeping its lines (:mod:`arag.ingestion.html`)."""
    title, sections = read_html(text)
    return title, [Section(heading, body) for heading, body in sections]


def parse_pdf(path: Path, data: bytes) -> tuple[str | None, list[Section]]:
    # Imported for the first PDF, not at the top: pypdf takes about 0.1 s to import, and most folders hold none.
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise IngestError(path, "encrypted PDF; decrypt it first")
        title = None
        if reader.metadata is not None and reader.metadata.title:
            title = str(reader.metadata.title).strip() or None
        pages = [page.extract_text() or "" for page in reader.pages]
        try:
            outline = list(flatten_outline(reader.outline, reader.get_destination_page_number))
        except Exception:  # noqa: BLE001 - the outline only names sections: a broken one leaves the pages' text
            outline = []
        title = title or running_title(pages)
        sections = [Section(heading, text) for heading, text in sections_of(pages, outline, title)]
    except IngestError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError, OSError) as exc:
        raise IngestError(path, f"corrupt or unreadable PDF ({type(exc).__name__}: {exc})") from None
    if not sections:
        raise IngestError(path, "PDF has no extractable text (scanned images need OCR first)")
    return title, sections


#: The Office Open XML readers by suffix: Word, each heading starting a section (:mod:`arag.ingestion.docx`),
#: and PowerPoint, a section a slide (:mod:`arag.ingestion.pptx`).
OFFICE_READERS = {".docx": read_docx, ".pptx": read_pptx}


def parse_office(path: Path, data: bytes) -> tuple[str | None, list[Section]]:
    """A Word document's or PowerPoint presentation's text in sections (:data:`OFFICE_READERS`)."""
    try:
        title, sections = OFFICE_READERS[path.suffix.lower()](data)
    except PackageError as exc:
        raise IngestError(path, str(exc)) from None
    return title, [Section(heading, body) for heading, body in sections]


def parse_jsonl(path: Path, text: str) -> list[SourceDocument]:
    docs: list[SourceDocument] = []
    seen: set[str] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise IngestError(path, f"line {number}: invalid JSON ({exc.msg})") from None
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise IngestError(path, f"line {number}: expected an object with a string 'text'")
        rid = str(record.get("id", number))
        if rid in seen:
            raise IngestError(path, f"line {number}: duplicate id {rid!r}")
        seen.add(rid)
        title = str(record.get("title") or rid)
        if record["text"].strip():
            docs.append(SourceDocument(f"{path}#{rid}", title, "jsonl", [Section("", record["text"])]))
    return docs


def load_file(path: Path, data: bytes) -> list[SourceDocument]:
    """Parse ``data`` (the bytes of ``path``) into documents; raises :class:`IngestError`."""
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise IngestError(path, f"unsupported file type {suffix or '(none)'}; supported: {', '.join(sorted(SUPPORTED_SUFFIXES))}")
    if not data.strip():
        raise IngestError(path, "empty file")
    if suffix == ".pdf":
        if not data.startswith(b"%PDF"):
            raise IngestError(path, "not a PDF (missing %PDF header)")
        title, sections = parse_pdf(path, data)
        kind = "pdf"
    elif suffix in OFFICE_READERS:
        title, sections = parse_office(path, data)
        kind = suffix[1:]
    else:
        text = decode_text(path, data)
        if suffix == ".jsonl":
            docs = parse_jsonl(path, text)
            if not docs:
                raise IngestError(path, "no records with text")
            return docs
        if suffix in HTML_SUFFIXES:
            title, sections = parse_html(text)
            kind = "html"
        elif (kind := text_format(path)) == "markdown":
            title, sections = parse_markdown(text)
        elif kind == "rst":
            title, sections = parse_rst(text)
        else:
            title, sections = None, [Section("", text)]
    if not any(s.text.strip() for s in sections):
        raise IngestError(path, "no text found")
    return [SourceDocument(str(path), title or _name_title(path), kind, sections)]


def _name_title(path: Path) -> str:
    """The file name as a title, without its suffix or a ``.txt`` copy's markup suffix.

    ``getting_started.rst.txt`` is titled "getting started".
    """
    name = path.stem
    if path.suffix.lower() == ".txt" and text_format(path) != "text":
        name = Path(name).stem
    return name.replace("_", " ")
