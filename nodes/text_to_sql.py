"""Text-to-SQL: answer a question about a registered table with one checked, read-only SELECT.

Reached when the router finds the question is about a registered table
(:func:`arag.tables.catalog.tables_asked_about`). The local model reads the tables' schemas,
statistics and sample rows and writes one SQLite query; :mod:`arag.tables.sql_guard` parses and checks it (a single
SELECT over known tables, no writes, no ATTACH or PRAGMA, allowed functions only) and runs it on
a read-only, sandboxed connection with a row and a time limit. A query that fails gets one repair
attempt with the error. The answer states the result and cites the table; the SQL is in the
trace and the result. Nothing usable: the question goes on to the documents.
"""

from __future__ import annotations

import re
import sqlite3

from langchain_core.messages import HumanMessage, SystemMessage

from arag.llms.usage import LLMCallFailed, invoke_counted
from arag.runtime.frame import Run, node
from arag.runtime.state import RAGState
from arag.tables.catalog import tables_asked_about
from arag.tables.sql_guard import QueryResult, UnsafeSQL, check_select, run_select, tables_in

SYSTEM_PROMPT = """You write SQLite queries. Given the tables below, write one SELECT query that answers the question.
Use only the tables and columns shown. Output only the SQL, nothing else.

{schema}"""

REPAIR = "That query failed: {error}\nWrite a corrected SELECT query. Output only the SQL."

def _sql_of(reply: str) -> str:
    """The query inside a reply: fences and a leading "sql" dropped, the first statement kept."""
    text = reply.strip()
    fenced = re.search(r"```(?:sql|sqlite)?\s*(.*?)```", text, re.DOTALL | re.IGNORECASE)
    if fenced:
        text = fenced.group(1).strip()
    text = re.sub(r"^(sql|sqlite)\s*:?\s*\n", "", text, flags=re.IGNORECASE)
    return text.strip()


def answer_text(result: QueryResult) -> str:
    """The result as a short answer: a single value alone, else rows of comma-separated values."""
    if not result.rows:
        return "No rows match [1]."
    if len(result.rows) == 1 and len(result.columns) == 1:
        return f"{_value(result.rows[0][0])} [1]."
    shown = result.rows[:10]
    lines = "; ".join(", ".join(_value(v) for v in row) for row in shown)
    more = f" (and more: {len(result.rows) - len(shown)}{'+' if result.truncated else ''} rows not shown)" \
        if len(result.rows) > len(shown) or result.truncated else ""
    return f"{lines}{more} [1]."


def _value(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e6 else f"{value:,.0f}"
    return "NULL" if value is None else str(value)


@node("text_to_sql")
def text_to_sql(state: RAGState, run: Run) -> dict:
    """Write, check and run one SELECT; answer from its result, or hand the question to the documents."""
    settings = run.settings
    catalog = run.components.tables
    question = state["standalone_question"]
    tables = catalog.tables
    wanted = tables_asked_about(question, catalog) or list(tables)
    messages = [SystemMessage(SYSTEM_PROMPT.format(schema=catalog.schema_text(wanted))), HumanMessage(question)]
    attempts: list[dict] = []
    result, sql, used = None, "", []
    for attempt in range(2):  # the query, then one repair with the error it met
        try:
            reply = invoke_counted(run.llm, messages, run.usage, max_tokens=200)
        except LLMCallFailed as exc:
            attempts.append({"error": f"the language model failed ({exc})"})
            break
        sql = _sql_of(str(reply.content))
        try:
            checked = check_select(sql, set(tables))
            used = [t for t in tables if t.lower() in tables_in(checked)]
            databases = {tables[t]["database"] for t in used}
            if len(databases) > 1:
                raise UnsafeSQL("a query may read the tables of one file only")
            database = databases.pop() if databases else str(catalog.database)
            result = run_select(database, checked, settings.sql_max_rows, settings.sql_timeout_s)
            sql = checked
            attempts.append({"sql": sql, "rows": len(result.rows)})
            break
        except (UnsafeSQL, TimeoutError, sqlite3.Error) as exc:  # told to the model once, to repair
            error = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
            attempts.append({"sql": sql, "error": error})
            if attempt == 0:
                messages += [reply, HumanMessage(REPAIR.format(error=error))]
    run.trace(attempts=attempts, tables=wanted)
    if result is None:
        return {"route": "index", "sql": "", "notes": [f"no usable SQL for the tables ({attempts[-1].get('error', '')}); "
                                                        "answered from the documents instead"]}
    used = used or wanted
    source = {
        "n": 1, "title": ", ".join(used), "heading": "", "source": ", ".join(tables[t]["source"] for t in used),
        "chunk_id": f"table:{used[0]}", "text": f"SQL: {sql}\nResult ({', '.join(result.columns)}): "
        + "; ".join(", ".join(_value(v) for v in row) for row in result.rows[:20]),
    }
    return {"answer": answer_text(result), "citations": [source], "documents": [source], "sql": sql}
