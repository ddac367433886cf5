"""Office Open XML packages (``.docx``, ``.pptx``): the zip of XML parts that Word and PowerPoint write.

What every such file shares is read here: opening the zip, parsing a part within size and safety
limits, following a part's relationships to the parts it refers to, and the document's own title
(File > Properties). What a part means is left to the Word and PowerPoint readers.

Example:
    >>> import io, zipfile
    >>> data = io.BytesIO()
    >>> with zipfile.ZipFile(data, "w") as archive:
    ...     archive.writestr("_rels/.rels", f'<Relationships xmlns="{RELATIONSHIPS}"><Relationship Id="r1" '
    ...                      'Type="http://x/officeDocument" Target="ppt/presentation.xml"/></Relationships>')
    >>> with Package(data.getvalue(), "PowerPoint presentation") as package:
    ...     package.relationships("")
    {'r1': ('http://x/officeDocument', 'ppt/presentation.xml')}
    >>> with Package(data.getvalue(), "PowerPoint presentation") as package:
    ...     package.main_part("ppt/presentation.xml")
    Traceback (most recent call last):
    arag.ingestion.ooxml.PackageError: not a PowerPoint presentation (no ppt/presentation.xml)
"""

from __future__ import annotations

import io
import posixpath
import zipfile
from xml.etree import ElementTree

RELATIONSHIPS = "http://schemas.openxmlformats.org/package/2006/relationships"
_RELATIONSHIP = "{" + RELATIONSHIPS + "}Relationship"
_DC_TITLE = "{http://purl.org/dc/elements/1.1/}title"
#: The namespace of relationship ids in parts (``r:id``, ``r:embed``).
RELATIONSHIP_ID = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id"

#: The most bytes one XML part may unpack to. A thousand-page document's body is tens of MiB; a
#: zip that unpacks to gigabytes is an attack on the reader.
MAX_PART_BYTES = 128 * 2**20
#: Legacy formats by the package kind they were replaced by, for the message that refuses them.
_LEGACY = {"Word document": ".doc", "PowerPoint presentation": ".ppt"}
#: List levels deeper than this are indented no further (two spaces a level).
MAX_LIST_INDENT = 8


class PackageError(ValueError):
    """The bytes are not a document of this kind that the reader can read; the message says why."""


class Package:
    """An open Office Open XML package; use it as a context manager, which closes the zip."""

    def __init__(self, data: bytes, kind: str):
        #: What the package should be ("Word document"), as messages name it.
        self.kind = kind
        if data.startswith(b"\xd0\xcf\x11\xe0"):  # an OLE compound file: an old binary format, or an encrypted package
            legacy = _LEGACY.get(kind, "binary")
            raise PackageError(f"an encrypted or old-format ({legacy}) {kind.split()[0]} file; "
                               f"save it as an unencrypted {legacy}x")
        try:
            self._archive = zipfile.ZipFile(io.BytesIO(data))
        except zipfile.BadZipFile as exc:
            raise PackageError(f"not a {kind} (not a zip archive: {exc})") from None

    def __enter__(self) -> Package:
        return self

    def __exit__(self, *_) -> None:
        self._archive.close()

    def part(self, name: str) -> ElementTree.Element | None:
        """A part of the package, parsed; None where the package has no such part."""
        try:
            with self._archive.open(name) as stream:
                raw = stream.read(MAX_PART_BYTES + 1)
        except KeyError:
            return None
        except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError, OSError, RuntimeError,
                ValueError) as exc:  # RuntimeError: an entry encrypted with a zip password
            raise PackageError(f"corrupt {self.kind} ({name}: {exc})") from None
        if len(raw) > MAX_PART_BYTES:
            raise PackageError(f"{name} unpacks to more than {MAX_PART_BYTES // 2**20} MiB")
        if b"<!DOCTYPE" in raw or b"<!ENTITY" in raw:  # Office writes neither; entities are how XML attacks expand
            raise PackageError(f"{name} declares a DOCTYPE or entities, which {self.kind}s never hold")
        try:
            return ElementTree.fromstring(raw)
        except ElementTree.ParseError as exc:
            raise PackageError(f"corrupt {self.kind} ({name}: {exc})") from None

    def relationships(self, name: str) -> dict[str, tuple[str, str]]:
        """The parts ``name`` refers to inside the package: ``{id: (type, part name)}``.

        Targets outside the package (links to the web) and any that would climb out of its root are left out.
        """
        folder, _, base = name.rpartition("/")
        root = self.part(f"{folder}/_rels/{base}.rels" if folder else f"_rels/{base}.rels")
        found: dict[str, tuple[str, str]] = {}
        for relationship in root.iter(_RELATIONSHIP) if root is not None else ():
            target = relationship.get("Target", "")
            if not target or relationship.get("TargetMode") == "External":
                continue
            path = posixpath.normpath(target.lstrip("/") if target.startswith("/") else posixpath.join(folder, target))
            if path != ".." and not path.startswith("../"):
                found[relationship.get("Id", "")] = (relationship.get("Type", ""), path)
        return found

    def main_part(self, usual: str) -> tuple[str, ElementTree.Element]:
        """The document's main part (Word's body, PowerPoint's slide list), by name and parsed.

        It is where the package's officeDocument relationship points, else at ``usual``; a package
        without it is not a document of this kind.
        """
        name = next((path for kind, path in self.relationships("").values() if kind.endswith("/officeDocument")), usual)
        root = self.part(name)
        if root is None:
            raise PackageError(f"not a {self.kind} (no {name})")
        return name, root

    def title(self) -> str | None:
        """The title the document was given (File > Properties), if any."""
        core = self.part("docProps/core.xml")
        title = core.findtext(_DC_TITLE) if core is not None else None
        return " ".join((title or "").split()) or None


def list_item_lines(marker: str, level: int, texts: list[str]) -> list[str]:
    """A paragraph's lines, as the Markdown reader writes a nested list item where ``marker`` is set
    ("- ", "3."): indented two spaces a ``level``, a line broken inside it going on under its text.
    Without a marker, the lines as they are.
    """
    lead = "  " * min(level, MAX_LIST_INDENT) + marker if marker else ""
    return [(lead if n == 0 else " " * len(lead)) + text for n, text in enumerate(texts)]
