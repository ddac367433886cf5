"""Tables a collection knows: CSV files loaded into a SQLite database the app owns, and the
tables of SQLite files the user points at (read in place, never written).

``arag ingest`` registers each table with its schema, a few sample rows and column statistics
in ``<data_dir>/tables/<collection>.json``; the text-to-SQL node writes its query from that
record, and :mod:`arag.tables.sql_guard` runs it read-only.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "sales.csv").write_text("product,units\\nTea,3\\nCoffee,5\\n")
    >>> catalog = TableCatalog(folder / "data", "demo")
    >>> catalog.register(folder / "sales.csv")
    ['sales']
    >>> catalog.tables["sales"]["columns"][1]["type"]
    'INTEGER'
"""

from __future__ import annotations

import copy
import csv
import hashlib
import io
import json
import os
import re
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TABLE_SUFFIXES = frozenset({".csv", ".sqlite", ".db"})
#: Sample rows shown to the model per table.
SAMPLE_ROWS = 3
_SQLITE_MAGIC = b"SQLite format 3\x00"


class TableError(ValueError):
    """A table file cannot be registered (unreadable, empty, not a database)."""


def table_name(stem: str) -> str:
    """A SQL identifier made from a file name: "Sales 2024.csv" -> "sales_2024"."""
    name = re.sub(r"[^a-z0-9_]+", "_", stem.lower()).strip("_") or "table"
    return f"t_{name}" if name[0].isdigit() else name


def _column_type(values: list[str]) -> str:
    present = [v for v in values if v != ""]
    if not present:
        return "TEXT"
    for kind, cast in (("INTEGER", int), ("REAL", float)):
        try:
            for v in present:
                cast(v)
            return kind
        except ValueError:
            continue
    return "TEXT"


class TableCatalog:
    """The registered tables of one collection, persisted as JSON beside the app's database."""

    def __init__(self, data_dir: Path, collection: str):
        self.folder = Path(data_dir) / "tables"
        self.database = self.folder / f"{collection}.sqlite"
        self.record = self.folder / f"{collection}.json"
        self._lock = threading.Lock()
        self._read: tuple[tuple[int, int], dict] | None = None

    @property
    def tables(self) -> dict[str, dict]:
        """The registered tables; the file is read again only when it changed (another process may ingest)."""
        try:
            st = self.record.stat()
        except FileNotFoundError:
            return {}
        stamp = (st.st_mtime_ns, st.st_size)
        cached = self._read
        if cached is None or cached[0] != stamp:
            try:
                cached = (stamp, json.loads(self.record.read_text()))
            except (FileNotFoundError, ValueError):
                return {}
            self._read = cached
        return copy.deepcopy(cached[1])  # callers may change their copy

    def _save(self, tables: dict[str, dict]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        partial = self.record.with_suffix(".json.part")
        partial.write_text(json.dumps(tables, indent=1, ensure_ascii=False))
        os.replace(partial, self.record)  # readers never see half a file

    def register(self, path: Path) -> list[str]:
        """Register the table(s) of a CSV or SQLite file; return their names. Unchanged files cost a hash."""
        path = Path(path).resolve()
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()[:32]
        with self._lock:
            tables = self.tables
            known = [name for name, t in tables.items() if t["source"] == str(path)]
            if known and all(tables[n]["file_hash"] == digest for n in known):
                return known
            for name in known:
                del tables[name]
            if path.suffix.lower() == ".csv":
                names = [self._load_csv(path, data, tables)]
            else:
                names = self._register_sqlite(path, data, tables)
            for name in names:
                tables[name]["file_hash"] = digest
            self._save(tables)
            return names

    def remove_source(self, source: str) -> list[str]:
        """Forget the tables of a file (deleted, or pruned); CSV tables are dropped from the app's database."""
        with self._lock:
            tables = self.tables
            gone = [name for name, t in tables.items() if t["source"] == source]
            for name in gone:
                if tables[name]["database"] == str(self.database):
                    with _writable(self.database) as db:
                        db.execute(f'DROP TABLE IF EXISTS "{name}"')
                del tables[name]
            if gone:
                self._save(tables)
            return gone

    def _load_csv(self, path: Path, data: bytes, tables: dict) -> str:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise TableError(f"{path.name}: not UTF-8 text ({exc.reason})") from None
        rows = list(csv.reader(io.StringIO(text)))
        if len(rows) < 2 or not any(h.strip() for h in rows[0]):
            raise TableError(f"{path.name}: a CSV table needs a header row and at least one data row")
        header = [table_name(h) if h.strip() else f"column_{i + 1}" for i, h in enumerate(rows[0])]
        header = [h if header.count(h) == 1 else f"{h}_{i + 1}" for i, h in enumerate(header)]
        body = [r + [""] * (len(header) - len(r)) for r in rows[1:] if any(c.strip() for c in r)]
        if any(len(r) > len(header) for r in body):
            raise TableError(f"{path.name}: a row has more fields than the header")
        types = [_column_type([r[i] for r in body]) for i in range(len(header))]
        name = table_name(path.stem)
        while name in tables and tables[name]["source"] != str(path):
            name += "_2"
        cast = {"INTEGER": int, "REAL": float, "TEXT": str}
        values = [[None if v == "" else cast[t](v) for v, t in zip(r, types)] for r in body]
        self.folder.mkdir(parents=True, exist_ok=True)
        with _writable(self.database) as db:
            db.execute(f'DROP TABLE IF EXISTS "{name}"')
            db.execute(f'CREATE TABLE "{name}" ({", ".join(f"{chr(34)}{h}{chr(34)} {t}" for h, t in zip(header, types))})')
            db.executemany(f'INSERT INTO "{name}" VALUES ({", ".join("?" * len(header))})', values)
        tables[name] = self._describe(self.database, name, source=str(path))
        return name

    def _register_sqlite(self, path: Path, data: bytes, tables: dict) -> list[str]:
        if not data.startswith(_SQLITE_MAGIC):
            raise TableError(f"{path.name}: not a SQLite database")
        with _read_only(path) as db:
            names = [r[0] for r in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        if not names:
            raise TableError(f"{path.name}: the database has no tables")
        for name in names:
            if name in tables:
                raise TableError(f"{path.name}: a table named {name!r} is already registered from {tables[name]['source']}")
            tables[name] = self._describe(path, name, source=str(path))
        return names

    @staticmethod
    def _describe(database: Path, name: str, source: str) -> dict:
        with _read_only(database) as db:
            info = db.execute(f'PRAGMA table_info("{name}")').fetchall()
            count = db.execute(f'SELECT COUNT(*) FROM "{name}"').fetchone()[0]
            samples = [list(r) for r in db.execute(f'SELECT * FROM "{name}" LIMIT {SAMPLE_ROWS}')]
            columns = []
            for _, column, kind, *_ in info:
                distinct, low, high = db.execute(
                    f'SELECT COUNT(DISTINCT "{column}"), MIN("{column}"), MAX("{column}") FROM "{name}"').fetchone()
                columns.append({"name": column, "type": (kind or "TEXT").upper(), "distinct": distinct, "min": low, "max": high})
        return {"source": source, "database": str(database), "rows": count, "columns": columns, "samples": samples}

    def schema_text(self, names: list[str] | None = None) -> str:
        """The tables as the model reads them: CREATE TABLE, statistics and sample rows."""
        parts = []
        for name, t in self.tables.items():
            if names is not None and name not in names:
                continue
            columns = ",\n".join(f'  "{c["name"]}" {c["type"]}' for c in t["columns"])
            stats = "; ".join(
                f'{c["name"]}: {c["distinct"]} distinct' + (f', {c["min"]} to {c["max"]}' if c["type"] in ("INTEGER", "REAL") else "")
                for c in t["columns"])
            samples = "\n".join(" | ".join(str(v) for v in row) for row in t["samples"])
            parts.append(f'CREATE TABLE "{name}" (\n{columns}\n);  -- {t["rows"]} rows; {stats}\n'
                         f'-- sample rows:\n-- ' + samples.replace("\n", "\n-- "))
        return "\n\n".join(parts)


#: Words of a question about a table's contents beyond its names: aggregates and rankings.
_AGGREGATE = re.compile(
    r"\b(how many|number of|count|total|sum|average|mean|most|least|highest|lowest|largest|smallest|maximum|"
    r"minimum|top|per|each|more than|less than|fewer than|at least|at most|greater|ranked|sorted|list|which)\b",
    re.IGNORECASE,
)


def _words(text: str) -> set[str]:
    out = set()
    for word in re.findall(r"[a-z0-9]+", text.lower().replace("_", " ")):
        out.add(word)
        if len(word) > 3 and word.endswith("s"):
            out.add(word[:-1])  # "planets" names the table "planet", "units" the column "unit"
    return out


#: Words of column names too common in ordinary questions to tell that a question is about a table.
_GENERIC_COLUMNS = frozenset("""id name date time year type value title text description notes number count total
of the a an in at to from by per and or for is""".split())


def tables_asked_about(question: str, catalog: TableCatalog) -> list[str]:
    """The registered tables a question is about: it names the table and one of its columns or an
    aggregate (a count, sum, ranking or comparison), or it names two of its columns.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> folder = Path(tempfile.mkdtemp())
        >>> _ = (folder / "planets.csv").write_text("name,moons,diameter_km\\nMars,2,6779\\n")
        >>> catalog = TableCatalog(folder / "data", "demo")
        >>> _ = catalog.register(folder / "planets.csv")
        >>> tables_asked_about("Which planet has the most moons?", catalog)
        ['planets']
        >>> tables_asked_about("Who wrote the report on Mars?", catalog)
        []
    """
    asked = _words(question)
    found = []
    for name, table in catalog.tables.items():
        names_table = bool(_words(name) & asked)
        columns = sum(bool((_words(c["name"]) - _GENERIC_COLUMNS) & asked) for c in table["columns"])
        if (names_table and (columns or _AGGREGATE.search(question))) or columns >= 2:
            found.append(name)
    return found


@contextmanager
def _read_only(path: Path) -> Iterator[sqlite3.Connection]:
    db = sqlite3.connect(f"file:{Path(path).as_posix()}?mode=ro", uri=True)
    try:
        yield db
    finally:
        db.close()


@contextmanager
def _writable(path: Path) -> Iterator[sqlite3.Connection]:
    db = sqlite3.connect(path, timeout=30)
    try:
        with db:  # one transaction, committed on success
            yield db
    finally:
        db.close()
