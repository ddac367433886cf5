"""Checking and running the SQL a model writes: one read-only SELECT on registered tables.

Two independent walls. Before running, the statement is parsed (sqlglot, SQLite dialect): it
must be a single query (SELECT, UNION…, WITH … SELECT) whose every table is registered, with no
write, schema, ATTACH or PRAGMA anywhere in it and no function outside an allow-list. While it
runs, SQLite itself enforces the same: the connection is opened read-only (``mode=ro``,
``query_only``), an authorizer refuses every action but reading and the allowed functions, a
progress handler stops it after ``timeout_s``, and at most ``max_rows`` rows are fetched.

Example:
    >>> check_select("SELECT product, SUM(units) FROM sales GROUP BY product", {"sales"})
    'SELECT product, SUM(units) FROM sales GROUP BY product'
    >>> try:
    ...     check_select("DROP TABLE sales", {"sales"})
    ... except UnsafeSQL as refused:
    ...     print(refused)
    only a SELECT query may run, not DROP
"""

from __future__ import annotations

import logging
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import sqlglot
from sqlglot import exp

# sqlglot logs statements it cannot parse fully before falling back; the check reports them itself.
logging.getLogger("sqlglot").setLevel(logging.ERROR)

#: SQLite functions a query may call: aggregates, arithmetic, strings, dates. Nothing that reads
#: files, loads extensions or reaches outside the query.
ALLOWED_FUNCTIONS = frozenset("""
abs avg count max min sum total group_concat round length lower upper trim ltrim rtrim substr substring
replace instr coalesce ifnull nullif iif cast typeof date time datetime julianday strftime unixepoch
printf format like glob random hex quote char unicode sign ceil ceiling floor sqrt pow power exp ln log
log10 mod pi
""".split())

_FORBIDDEN = (exp.Insert, exp.Update, exp.Delete, exp.Drop, exp.Create, exp.Alter, exp.Command, exp.Pragma,
              exp.Attach, exp.Detach, exp.Transaction, exp.Commit, exp.Rollback, exp.Merge, exp.Into)


class UnsafeSQL(ValueError):
    """The statement is not a single read-only query over the registered tables."""


@dataclass
class QueryResult:
    columns: list[str]
    rows: list[tuple]
    truncated: bool
    seconds: float


def check_select(sql: str, tables: set[str]) -> str:
    """The statement, stripped of a trailing semicolon, if it may run; else :class:`UnsafeSQL` saying why."""
    text = sql.strip().rstrip(";").strip()
    if not text:
        raise UnsafeSQL("the query is empty")
    try:
        statements = [s for s in sqlglot.parse(text, read="sqlite") if s is not None]
    except sqlglot.errors.ParseError as exc:
        raise UnsafeSQL(f"the query does not parse: {str(exc).splitlines()[0]}") from None
    if len(statements) != 1:
        raise UnsafeSQL(f"exactly one statement may run, not {len(statements)}")
    tree = statements[0]
    if not isinstance(tree, exp.Query):
        raise UnsafeSQL(f"only a SELECT query may run, not {tree.key.upper()}")
    for node in tree.walk():
        if isinstance(node, _FORBIDDEN):
            raise UnsafeSQL(f"{node.key.upper()} is not allowed in a query")
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    known = {t.lower() for t in tables}
    for table in tree.find_all(exp.Table):
        name = table.name.lower()
        if table.args.get("db") or table.args.get("catalog"):
            raise UnsafeSQL(f"table {table.sql(dialect='sqlite')} names another database")
        if name not in known and name not in ctes:
            raise UnsafeSQL(f"unknown table {table.name!r}; the tables are {', '.join(sorted(tables)) or 'none'}")
    # Functions sqlglot knows are SQL's own; the ones it does not (parsed as anonymous) are where
    # SQLite's file and extension functions would hide, so those must be on the allow-list. The
    # authorizer checks every function SQLite really calls against the same list.
    for function in tree.find_all(exp.Anonymous):
        if function.name.lower() not in ALLOWED_FUNCTIONS:
            raise UnsafeSQL(f"function {function.name}() is not allowed")
    return text


def tables_in(sql: str) -> set[str]:
    """The tables (not common table expressions) a checked query reads, in lower case."""
    tree = sqlglot.parse_one(sql, read="sqlite")
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    return {t.name.lower() for t in tree.find_all(exp.Table)} - ctes


#: SQLite authorizer actions a query needs; everything else (writes, ATTACH, PRAGMA…) is refused.
_ALLOWED_ACTIONS = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}


def _authorizer(action, first, second, database, trigger):
    if action not in _ALLOWED_ACTIONS:
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_FUNCTION and (second or "").lower() not in ALLOWED_FUNCTIONS:
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


def run_select(database: Path, sql: str, max_rows: int = 50, timeout_s: float = 2.0) -> QueryResult:
    """Run a checked query on a read-only connection to ``database``, within ``timeout_s`` and ``max_rows``."""
    started = time.perf_counter()
    db = sqlite3.connect(f"file:{Path(database).as_posix()}?mode=ro", uri=True, timeout=timeout_s)
    try:
        db.execute("PRAGMA query_only = ON")
        db.set_authorizer(_authorizer)
        deadline = started + timeout_s
        # Called every 10,000 virtual-machine steps; a non-zero return interrupts the query.
        db.set_progress_handler(lambda: int(time.perf_counter() > deadline), 10_000)
        try:
            cursor = db.execute(sql)
            rows = cursor.fetchmany(max_rows + 1)
        except sqlite3.OperationalError as exc:
            if "interrupted" in str(exc):
                raise TimeoutError(f"the query ran past {timeout_s:g} s") from None
            raise
        columns = [d[0] for d in cursor.description or []]
    finally:
        db.close()
    return QueryResult(columns, [tuple(r) for r in rows[:max_rows]], len(rows) > max_rows, time.perf_counter() - started)
