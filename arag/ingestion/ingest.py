"""Incremental, crash-safe ingestion of files into the chunk store.

Every chunk carries its file's content hash and the file's total chunk count, so the
collection alone tells which files are complete and current: nothing else needs to be
kept in step. A file is rewritten by first upserting its new chunks (deterministic ids,
so a repeat is harmless) and then deleting the stale ones; a run killed in between
leaves a file that the next run sees as incomplete and finishes. Chunk text already in
the collection reuses its stored vector instead of being embedded again.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from arag.embeddings.embedder import Embedder, embedding_text
from arag.index.lexical import LexicalIndex
from arag.index.store import ChunkRecord, ChunkStore, IndexMismatch, embedder_for, open_client
from arag.index.token_store import text_key, token_store_for
from arag.ingestion.chunking import Chunk, chunk_sections, split_section
from arag.ingestion.loaders import INGESTED_SUFFIXES, IngestError, Section, load_file, reading_revision
from arag.settings import Settings
from arag.tables.catalog import TABLE_SUFFIXES, TableCatalog, TableError

#: Files Sphinx writes at the top of the HTML it builds. Beside them, ``_sources/`` holds every page's
#: source again (``page.rst.txt``): read with the pages, each page would be indexed twice.
SPHINX_BUILD_MARKERS = ("objects.inv", "searchindex.js")

#: Files grouped until this many chunks await embedding, so batches stay full and sorted.
EMBED_GROUP = 256


@dataclass
class IngestReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    chunks_written: int = 0
    chunks_embedded: int = 0
    chunks_reused: int = 0
    chunks_removed: int = 0
    tables: list[str] = field(default_factory=list)
    failures: list[IngestError] = field(default_factory=list)
    #: Folders passed over: the page sources Sphinx copies beside the HTML pages being read.
    skipped: list[str] = field(default_factory=list)
    #: Files and folders left out by the ``exclude`` patterns (a folder stands for all it holds).
    excluded: list[str] = field(default_factory=list)
    #: ``exclude`` patterns that matched nothing this run: a misspelt pattern leaves out nothing.
    unmatched_patterns: list[str] = field(default_factory=list)
    seconds: float = 0.0
    #: Of ``seconds``, the time spent bringing the BM25 index up to date (hybrid search only).
    lexical_seconds: float = 0.0
    #: Of ``chunks_embedded``, those encoded in bfloat16 (``Settings.embedding_bulk_precision``).
    chunks_in_bf16: int = 0

    def summary(self) -> str:
        line = (
            f"{self.added} added, {self.updated} updated, {self.unchanged} unchanged, "
            f"{self.removed} removed files; {self.chunks_written} chunks written "
            f"({self.chunks_embedded} embedded, {self.chunks_reused} reused), "
            f"{self.chunks_removed} chunks removed in {self.seconds:.1f}s"
        )
        if self.chunks_in_bf16:
            line += f" ({self.chunks_in_bf16} encoded in bf16)"
        if self.lexical_seconds:
            line += f" (BM25 index {self.lexical_seconds:.1f}s)"
        if self.tables:
            line += f"; tables registered for SQL: {', '.join(self.tables)}"
        if self.skipped:
            line += f"; skipped the page sources Sphinx copies beside its HTML pages: {', '.join(self.skipped)}"
        if self.excluded:
            folders = sum(1 for path in self.excluded if Path(path).is_dir())
            line += (f"; left out by exclude patterns: {folders} folder(s), "
                     f"{len(self.excluded) - folders} file(s)")
        if self.unmatched_patterns:
            line += f"; exclude pattern(s) matching nothing: {', '.join(map(repr, self.unmatched_patterns))}"
        if self.failures:
            line += f"; {len(self.failures)} failed"
        return line


@dataclass
class _FileState:
    """What the collection holds for one file."""

    hashes: set[str] = field(default_factory=set)
    expected: set[int] = field(default_factory=set)
    ids: list[str] = field(default_factory=list)

    def complete_at(self, file_hash: str) -> bool:
        return self.hashes == {file_hash} and self.expected == {len(self.ids)}


class ExcludePatterns:
    """Glob patterns for files and folders to leave out of the folders an ingest walks.

    A pattern without ``/`` is matched against every file and folder name at any depth
    (``drafts``, ``*.pdf``); one with ``/`` against the path from the folder given
    (``archive/2019``, ``build/*.html``; a leading ``/`` only anchors it there). Matching is
    case-sensitive and ``*`` also crosses ``/``. A folder left out is not walked. A path named
    itself is always read, as a ``_sources`` folder named itself is.

    Example:
        >>> rules = ExcludePatterns(["drafts", "*.pdf", "/archive/2019"])
        >>> [rules.match(PurePosixPath(p)) for p in ("notes/drafts", "a/b.pdf", "archive/2019", "x/archive/2019")]
        ['drafts', '*.pdf', '/archive/2019', None]
        >>> ExcludePatterns(["   "])
        Traceback (most recent call last):
        ...
        ValueError: exclude pattern '   ': give a file or folder name or a glob, e.g. 'drafts' or '*.pdf'
    """

    def __init__(self, patterns: Iterable[str] = ()):
        self.patterns: list[str] = []
        self._rules: list[tuple[str, bool]] = []  # (glob, matched against the whole relative path)
        for pattern in patterns:
            glob = pattern.strip().removeprefix("./").rstrip("/")
            anchored = glob.startswith("/")
            glob = glob.lstrip("/")
            if not glob or glob in {".", ".."}:
                raise ValueError(f"exclude pattern {pattern!r}: give a file or folder name or a glob, "
                                 "e.g. 'drafts' or '*.pdf'")
            self.patterns.append(pattern)
            self._rules.append((glob, anchored or "/" in glob))
        self.used: set[str] = set()

    def match(self, relative: PurePosixPath) -> str | None:
        """The first pattern that leaves out this path (relative to the folder walked), else None."""
        for pattern, (glob, whole_path) in zip(self.patterns, self._rules):
            if fnmatchcase(str(relative) if whole_path else relative.name, glob):
                self.used.add(pattern)
                return pattern
        return None

    def leaves_out(self, path: Path, root: Path) -> bool:
        """Whether ``path``, under the folder ``root``, lies in or is a file or folder left out."""
        parts = path.relative_to(root).parts
        return any(self.match(PurePosixPath(*parts[:depth])) for depth in range(1, len(parts) + 1))


@dataclass
class Discovery:
    """What :func:`discover` found in the paths given."""

    files: list[Path] = field(default_factory=list)
    errors: list[IngestError] = field(default_factory=list)
    #: The folders given, resolved: what ``prune`` may remove files under.
    roots: list[Path] = field(default_factory=list)
    #: ``_sources`` folders beside a Sphinx HTML build, not walked.
    skipped: list[Path] = field(default_factory=list)
    #: Files and folders left out by the exclude patterns.
    excluded: list[Path] = field(default_factory=list)
    exclude: ExcludePatterns = field(default_factory=ExcludePatterns)

    def left_out(self, path: Path) -> bool:
        """Whether a walk of the folders given now leaves ``path`` out (skipped or excluded)."""
        if any(path.is_relative_to(folder) for folder in self.skipped):
            return True
        return any(path.is_relative_to(root) and self.exclude.leaves_out(path, root) for root in self.roots)


def discover(paths: Iterable[Path | str], exclude: ExcludePatterns | None = None) -> Discovery:
    """Expand files and folders into supported files, leaving out what ``exclude`` matches in folders.

    Inside a folder, the ``_sources`` copies beside a Sphinx HTML build are skipped (the pages are
    read); named itself, a ``_sources`` folder is read.
    """
    exclude = exclude or ExcludePatterns()
    found = Discovery(exclude=exclude)
    files = found.files
    for raw in paths:
        path = Path(raw).expanduser()
        if not path.exists():
            found.errors.append(IngestError(path, "no such file or directory"))
            continue
        path = path.resolve()
        if path.is_dir():
            found.roots.append(path)
            for dirpath, dirnames, filenames in os.walk(path):
                here = PurePosixPath(*Path(dirpath).relative_to(path).parts)
                kept = []
                for name in sorted(d for d in dirnames if not d.startswith(".")):
                    if exclude.match(here / name):
                        found.excluded.append(Path(dirpath) / name)
                    else:
                        kept.append(name)
                dirnames[:] = kept
                if "_sources" in dirnames and any(marker in filenames for marker in SPHINX_BUILD_MARKERS):
                    dirnames.remove("_sources")
                    found.skipped.append(Path(dirpath) / "_sources")
                for name in sorted(filenames):
                    candidate = Path(dirpath) / name
                    if candidate.suffix.lower() not in INGESTED_SUFFIXES or name.startswith("."):
                        continue
                    if exclude.match(here / name):
                        found.excluded.append(candidate)
                    else:
                        files.append(candidate)
        elif path.suffix.lower() not in INGESTED_SUFFIXES:
            found.errors.append(IngestError(path, f"unsupported file type {path.suffix or '(none)'}"))
        else:
            files.append(path)
    found.files = list(dict.fromkeys(files))
    return found


def chunk_id(source: str, position: int, text_hash: str) -> str:
    return hashlib.sha256(f"{source}\x00{position}\x00{text_hash}".encode()).hexdigest()[:32]


#: Metadata the app writes itself; tags cannot take these names.
RESERVED_FIELDS = {"file", "source", "title", "heading", "kind", "position", "tokens", "text_hash", "file_hash",
                   "file_chunks", "parent_id", "parent_text", "year", "level", "children"}
_TAG_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


def check_tags(tags: dict) -> dict[str, str]:
    """Tags as stored: lower-case names of letters, digits and _, not a reserved field; short string values.

    Example:
        >>> check_tags({"team": "HR", "Year": "x"})
        Traceback (most recent call last):
        ...
        ValueError: tag name 'Year': use lower-case letters, digits and _ (starting with a letter)
    """
    out = {}
    for name, value in tags.items():
        if not _TAG_NAME.match(str(name)):
            raise ValueError(f"tag name {name!r}: use lower-case letters, digits and _ (starting with a letter)")
        if name in RESERVED_FIELDS:
            raise ValueError(f"tag name {name!r} is reserved for the app's own metadata")
        text = str(value).strip()
        if not text or len(text) > 100:
            raise ValueError(f"tag {name!r} needs a value of 1-100 characters")
        out[name] = text
    return out


_YEAR = re.compile(r"(?<!\d)(19\d\d|20\d\d)(?!\d)")


def year_of(text: str) -> int | None:
    """The first year (1900-2099) named in a title or file name, which questions often filter by.

    Example:
        >>> year_of("Employee handbook 2023.pdf"), year_of("notes.md")
        (2023, None)
    """
    found = _YEAR.search(text)
    return int(found.group(1)) if found else None


class Ingestor:
    """Brings the collection in line with a set of files.

    Example:
        >>> import tempfile, pathlib
        >>> s = Settings(data_dir=tempfile.mkdtemp())
        >>> doc = pathlib.Path(s.data_dir, "note.md"); _ = doc.write_text("# Note\\nCats purr.")
        >>> ing = Ingestor.from_settings(s)
        >>> ing.ingest([doc], progress=False).added
        1
        >>> ing.ingest([doc], progress=False).unchanged
        1
    """

    def __init__(self, settings: Settings, embedder: Embedder, store: ChunkStore):
        self.settings = settings
        self.embedder = embedder
        self.store = store
        self.strategy = settings.index_strategy
        self.tokens = token_store_for(settings, store)
        self.tables = TableCatalog(settings.data_dir, settings.collection)

    def _check_strategy(self) -> None:
        """The collection keeps the strategy it was built with; an empty one takes the configured one."""
        recorded = self.store.index_strategy
        if recorded == self.strategy:
            return
        if self.store.count() == 0:
            self.store.drop()
            self.store.index_strategy = self.strategy
            return
        raise IndexMismatch(
            f"collection {self.store.name!r} was indexed with the {recorded!r} strategy, not {self.strategy!r}: set "
            f"ARAG_INDEX_STRATEGY={recorded}, or ingest into a new collection (ARAG_COLLECTION)"
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> "Ingestor":
        client = open_client(settings)
        embedder = embedder_for(settings, lambda: client)
        return cls(settings, embedder, ChunkStore(settings, embedder.model_id, embedder.dim, client=client))

    def _snapshot(self) -> tuple[dict[str, _FileState], dict[str, str]]:
        files: dict[str, _FileState] = defaultdict(_FileState)
        by_text: dict[str, str] = {}
        for cid, meta in self.store.iter_metadata():
            state = files[meta.get("file", "")]
            state.hashes.add(meta.get("file_hash", ""))
            state.expected.add(int(meta.get("file_chunks", -1)))
            state.ids.append(cid)
            by_text.setdefault(meta.get("text_hash", ""), cid)
        return files, by_text

    def _units(self, doc) -> list[tuple[Chunk | None, list[Chunk]]]:
        """(parent, its chunks) pairs: one parent section per group with the "parent" strategy, else none."""
        count, size = self.embedder.count_tokens, self.settings.chunk_tokens
        if self.strategy != "parent":
            return [(None, [chunk]) for chunk in chunk_sections(doc.sections, count, size, self.settings.paragraph_tokens)]
        # Small chunks are what a parent's matching is for: they are cut to chunk_tokens, paragraphs too.
        return [(parent, split_section(Section(parent.heading, parent.text), count, size))
                for parent in chunk_sections(doc.sections, count, self.settings.parent_tokens)]

    def _records(self, path: Path, data: bytes, file_hash: str, tags: dict | None = None) -> list[ChunkRecord]:
        docs = load_file(path, data)
        records: list[ChunkRecord] = []
        for doc in docs:
            position = 0
            year = year_of(f"{doc.title} {path.name}")
            for parent_no, (parent, chunks) in enumerate(self._units(doc)):
                for chunk in chunks:
                    text = embedding_text(doc.title, chunk.heading, chunk.text)
                    text_hash = text_key(text)
                    metadata = {
                        **(tags or {}),
                        "file": str(path),
                        "source": doc.source,
                        "title": doc.title,
                        "heading": chunk.heading,
                        "kind": doc.kind,
                        "position": position,
                        "tokens": chunk.tokens,
                        "text_hash": text_hash,
                        "file_hash": file_hash,
                    }
                    if year is not None:
                        metadata["year"] = year
                    if parent is not None:
                        metadata["parent_id"] = chunk_id(doc.source, parent_no, hashlib.sha256(parent.text.encode()).hexdigest())
                        metadata["parent_text"] = parent.text
                    records.append(ChunkRecord(id=chunk_id(doc.source, position, text_hash), text=chunk.text, metadata=metadata))
                    position += 1
        if not records:
            raise IngestError(path, "no text found")
        for record in records:
            record.metadata["file_chunks"] = len(records)
        return records

    def ingest(
        self,
        paths: Iterable[Path | str],
        prune: bool = False,
        progress: bool = True,
        on_progress: Callable[[int, int], None] | None = None,
        tags: dict[str, str] | None = None,
        exclude: Iterable[str] = (),
    ) -> IngestReport:
        """Add new files, replace changed ones, skip unchanged ones; optionally prune the rest.

        ``tags`` are stored with every chunk of these files, as metadata that questions can filter
        by (``{"team": "hr"}``); changing a file's tags rewrites its chunks (without embedding again).
        ``exclude`` holds glob patterns for files and folders inside the folders given to leave out
        (:class:`ExcludePatterns`). ``prune`` removes files under the folders given that no longer
        exist or that this walk leaves out, so the index holds what a fresh ingest would.
        """
        started = time.perf_counter()
        report = IngestReport()
        tags = check_tags(tags or {})
        self._check_strategy()
        # The file's hash covers what its chunks are made from: bytes, tags, strategy and the chunk sizes that
        # strategy reads, so a changed ARAG_CHUNK_TOKENS or ARAG_PARAGRAPH_TOKENS re-chunks every file at the next
        # ingest (unchanged texts keep their vectors), and a size the strategy ignores re-chunks nothing.
        parent = self.strategy == "parent"
        salt = json.dumps([tags, self.strategy, self.settings.parent_tokens if parent else 0,
                           self.settings.chunk_tokens, 0 if parent else self.settings.paragraph_tokens],
                          sort_keys=True).encode()
        rules = ExcludePatterns(exclude)
        found = discover(paths, rules)
        files, roots = found.files, found.roots
        report.failures.extend(found.errors)
        report.skipped.extend(str(folder) for folder in found.skipped)
        report.excluded.extend(str(path) for path in found.excluded)
        report.unmatched_patterns.extend(p for p in rules.patterns if p not in rules.used)
        existing, by_text = self._snapshot()
        max_bytes = int(self.settings.max_file_mb * 1024 * 1024)

        pending: list[tuple[Path, list[ChunkRecord], bool]] = []
        bar = tqdm(total=len(files), unit="file", desc="ingest", disable=not progress or len(files) < 2)

        def flush() -> None:
            self._write(pending, existing, by_text, report, progress)
            pending.clear()

        for done, path in enumerate(files, start=1):
            try:
                size = path.stat().st_size
                if size > max_bytes:
                    raise IngestError(path, f"file of {size / 2**20:.1f} MiB exceeds the {self.settings.max_file_mb:g} MiB limit "
                                            "(ARAG_MAX_FILE_MB)")
                if path.suffix.lower() in TABLE_SUFFIXES:
                    # A table is registered for SQL questions, not chunked.
                    report.tables.extend(self._register_table(path))
                else:
                    self._queue(path, salt, tags, existing, pending, report)
            except IngestError as exc:
                report.failures.append(exc)
            except OSError as exc:
                report.failures.append(IngestError(path, f"cannot read ({exc.strerror or exc})"))
            if sum(len(r) for _, r, _ in pending) >= EMBED_GROUP:
                flush()
            bar.update(1)
            if on_progress:
                on_progress(done, len(files))
        flush()
        bar.close()

        if prune:
            seen = {str(p) for p in files}

            def stale(name: str) -> bool:
                if name in seen:
                    return False
                path = Path(name)
                under_root = any(path.is_relative_to(root) for root in roots) or not roots
                return under_root and (not path.exists() or found.left_out(path))

            for source in {t["source"] for t in self.tables.tables.values()}:
                if stale(source):
                    self.tables.remove_source(source)
            for name, state in existing.items():
                if name.startswith("arag-tree://"):
                    continue  # summaries of the tree belong to no file (knowledge.tree)
                if stale(name):
                    self.store.delete_ids(state.ids)
                    report.removed += 1
                    report.chunks_removed += len(state.ids)
        if report.chunks_written or report.chunks_removed:
            if self.tokens is not None:
                self.tokens.retain(meta.get("text_hash", "") for _, meta in self.store.iter_metadata())
            self.store.fit_search_breadth()
            if self.settings.retrieval == "hybrid":
                # Built here rather than by the next question, which would wait for it (28 s at 300k chunks).
                lexical_started = time.perf_counter()
                LexicalIndex(self.store).refresh()
                report.lexical_seconds = time.perf_counter() - lexical_started
        report.seconds = time.perf_counter() - started
        return report

    def _register_table(self, path: Path) -> list[str]:
        try:
            return self.tables.register(path)
        except TableError as exc:
            raise IngestError(path, str(exc).split(": ", 1)[-1]) from None
        except sqlite3.Error as exc:  # a damaged or encrypted database
            raise IngestError(path, f"cannot read the database ({exc})") from None

    def _queue(self, path: Path, salt: bytes, tags: dict, existing, pending: list, report: IngestReport) -> None:
        """Queue a changed or new document's chunks for writing; count an unchanged one."""
        data = path.read_bytes()
        file_hash = hashlib.sha256(data + salt + reading_revision(path)).hexdigest()[:32]
        state = existing.get(str(path))
        if state is not None and state.complete_at(file_hash):
            report.unchanged += 1
        else:
            pending.append((path, self._records(path, data, file_hash, tags), state is not None))

    def _write(self, pending, existing, by_text, report: IngestReport, progress: bool = False) -> None:
        if not pending:
            return
        records = [r for _, recs, _ in pending for r in recs]
        reuse = {r.metadata["text_hash"]: by_text[r.metadata["text_hash"]] for r in records if r.metadata["text_hash"] in by_text}
        stored = self.store.embeddings_for(sorted(set(reuse.values())))
        todo = [r for r in records if reuse.get(r.metadata["text_hash"]) not in stored]
        if todo:
            texts = [embedding_text(r.metadata["title"], r.metadata["heading"], r.text) for r in todo]
            in_bf16 = self.embedder.bulk_encoded
            # One encoder pass gives the pooled vector and the token vectors late interaction reads.
            vectors = (self.tokens.fill(texts, self.embedder, progress) if self.tokens is not None
                       else self.embedder.embed_documents(texts, progress=progress, bulk=True))
            report.chunks_in_bf16 += self.embedder.bulk_encoded - in_bf16
            for record, vector in zip(todo, vectors):
                record.embedding = vector
        for record in records:
            if record.embedding is None:
                record.embedding = stored[reuse[record.metadata["text_hash"]]]
        report.chunks_embedded += len(todo)
        report.chunks_reused += len(records) - len(todo)
        for path, recs, known in pending:
            self.store.upsert(recs)
            old = existing.get(str(path))
            if old is not None:
                fresh = {r.id for r in recs}
                stale = [i for i in old.ids if i not in fresh]
                self.store.delete_ids(stale)
                report.chunks_removed += len(stale)
            report.chunks_written += len(recs)
            if known:
                report.updated += 1
            else:
                report.added += 1
            for r in recs:
                by_text.setdefault(r.metadata["text_hash"], r.id)
