"""Conversations: one question run through the graph as a stream of events, and the threads kept.

:func:`stream_turn` runs a question and yields what a person watching wants to see as it
happens: each node as it finishes (with its trace event), the answer's tokens as the model
writes them, and finally the turn's result. The command line and the web app both use it.

The checkpointer keeps a thread's graph state (its history, for follow-up questions); the
:class:`ThreadStore` beside it, in the same SQLite file, keeps what the chat shows again
after a restart: each thread's title and every turn's answer, citations, notes and trace.

Example:
    >>> import tempfile, pathlib
    >>> threads = ThreadStore(pathlib.Path(tempfile.mkdtemp()) / "checkpoints.sqlite")
    >>> tid = threads.create("Volcanoes")
    >>> threads.add_turn(tid, {"question": "Where is Etna?", "answer": "In Sicily [1]."})
    1
    >>> [t["title"] for t in threads.list()], threads.turns(tid)[0]["answer"]
    (['Volcanoes'], 'In Sicily [1].')
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

#: The fields of a citation that leave the graph (the rest are internal scores).
CITATION_FIELDS = ("n", "source", "title", "heading", "chunk_id", "text", "score", "relevance")


def turn_result(final: dict, question: str, seconds: float, thread: str | None = None) -> dict:
    """What one answered question gives the outside world, from the graph's final state."""
    return {
        "question": question,
        "standalone_question": final.get("standalone_question", question),
        "answer": final.get("answer", ""),
        "citations": [{k: c[k] for k in CITATION_FIELDS if k in c} for c in final.get("citations", [])],
        "notes": list(dict.fromkeys(final.get("notes", []))),  # a failure met twice is said once
        "route": final.get("route"),
        "sql": final.get("sql", ""),
        "sub_questions": final.get("sub_questions", []),
        "web_used": final.get("web_used", False),
        "trace": final.get("trace", []),
        "llm_calls": final.get("llm_calls", 0),
        "thread": thread,
        "seconds": round(seconds, 2),
    }


def stream_turn(graph, question: str, config: dict | None = None, stream_tokens: bool = True,
                inputs: dict | None = None) -> Iterator[tuple[str, object]]:
    """Run ``question``; yield ``("node", (name, trace event))``, ``("token", text)``, then ``("result", dict)``.

    Tokens are those of the final answer (the ``generate`` node), as the model writes them.
    ``inputs`` adds to the graph's input (``history`` for a conversation kept by the caller).
    """
    config = config or {}
    thread = (config.get("configurable") or {}).get("thread_id")
    started = time.perf_counter()
    final: dict = {}
    modes = ["updates", "messages", "values"] if stream_tokens else ["updates", "values"]
    for mode, payload in graph.stream({"question": question, **(inputs or {})}, config, stream_mode=modes):
        if mode == "updates":
            for node, values in payload.items():
                events = (values or {}).get("trace")
                events = getattr(events, "value", events)
                if events:
                    yield "node", (node, events[-1])
        elif mode == "messages":
            chunk, meta = payload
            if meta.get("langgraph_node") == "generate" and chunk.content:
                yield "token", str(chunk.content)
        else:
            final = payload
    yield "result", turn_result(final, question, time.perf_counter() - started, thread)


class ThreadStore:
    """Thread titles and the record of each turn, in SQLite (a path) or PostgreSQL (a ``postgresql://`` URL).

    Safe across threads (a connection each) and processes (the database's own locking).
    """

    SCHEMA = (
        "CREATE TABLE IF NOT EXISTS arag_threads (id TEXT PRIMARY KEY, title TEXT NOT NULL, "
        "created DOUBLE PRECISION NOT NULL, updated DOUBLE PRECISION NOT NULL)",
        "CREATE TABLE IF NOT EXISTS arag_turns (thread_id TEXT NOT NULL, n INTEGER NOT NULL, "
        "record TEXT NOT NULL, PRIMARY KEY (thread_id, n))",
    )

    def __init__(self, target: Path | str):
        self.postgres = isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))
        self.target = target if self.postgres else Path(target)
        if not self.postgres:
            self.target.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        for statement in self.SCHEMA:
            self._run(statement)

    def _connection(self):
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if self.postgres:
                import psycopg  # only for a PostgreSQL database: the driver takes about 0.15 s to import, SQLite none

                conn = psycopg.connect(self.target)
            else:
                conn = sqlite3.connect(str(self.target), timeout=30)
                conn.execute("PRAGMA journal_mode=WAL")
            self._local.conn = conn
        return conn

    def _run(self, *statements: tuple | str) -> list[tuple]:
        """Run statements (SQL, or (SQL, params)) in one transaction; return the last one's rows."""
        conn = self._connection()
        rows: list[tuple] = []
        try:
            cur = conn.cursor()
            for statement in statements:
                sql, params = (statement, ()) if isinstance(statement, str) else statement
                cur.execute(sql.replace("?", "%s") if self.postgres else sql, params)
                rows = cur.fetchall() if cur.description else []
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        return rows

    def create(self, title: str | None = None, thread_id: str | None = None) -> str:
        tid = thread_id or uuid.uuid4().hex[:12]
        now = time.time()
        self._run(("INSERT INTO arag_threads VALUES (?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                   (tid, (title or "New chat")[:80], now, now)))
        return tid

    def rename(self, thread_id: str, title: str) -> None:
        self._run(("UPDATE arag_threads SET title = ? WHERE id = ?", (title.strip()[:80] or "New chat", thread_id)))

    def list(self) -> list[dict]:
        """Threads, most recently used first, with their number of turns."""
        rows = self._run("SELECT t.id, t.title, t.updated, COUNT(u.n) FROM arag_threads t LEFT JOIN arag_turns u "
                         "ON u.thread_id = t.id GROUP BY t.id, t.title, t.updated ORDER BY t.updated DESC")
        return [{"id": r[0], "title": r[1], "updated": r[2], "turns": r[3]} for r in rows]

    def add_turn(self, thread_id: str, record: dict) -> int:
        """Append a turn (creating the thread if needed, titled by its first question); return its number."""
        self.create(record.get("question"), thread_id)
        payload = json.dumps(record, ensure_ascii=False, default=str)
        title = (record.get("question") or "New chat")[:80]
        # Numbered inside the insert, so two processes adding to one thread never take the same number.
        rows = self._run(
            ("INSERT INTO arag_turns SELECT ?, COALESCE(MAX(n), 0) + 1, ? FROM arag_turns WHERE thread_id = ? RETURNING n",
             (thread_id, payload, thread_id)),
        )
        n = rows[0][0]
        self._run(("UPDATE arag_threads SET updated = ? WHERE id = ?", (time.time(), thread_id)),
                  ("UPDATE arag_threads SET title = ? WHERE id = ? AND title = 'New chat'", (title, thread_id)))
        return n

    def turns(self, thread_id: str) -> list[dict]:
        rows = self._run(("SELECT record FROM arag_turns WHERE thread_id = ? ORDER BY n", (thread_id,)))
        return [json.loads(r[0]) for r in rows]

    def delete(self, thread_id: str, checkpointer=None) -> None:
        """Forget the thread: its turns here and its graph state in ``checkpointer``."""
        if checkpointer is not None:
            checkpointer.delete_thread(thread_id)
        self._run(("DELETE FROM arag_turns WHERE thread_id = ?", (thread_id,)),
                  ("DELETE FROM arag_threads WHERE id = ?", (thread_id,)))


def run_steps(graph, thread_id: str) -> list[list[dict]]:
    """Per turn of a checkpointed thread, the nodes in run order with the state each read and what it changed.

    Read from the checkpointer's history: a checkpoint whose ``next`` names a node holds that
    node's input; the keys that differ in the following checkpoint are its output.
    """
    snapshots = list(graph.get_state_history({"configurable": {"thread_id": thread_id}}))[::-1]
    turns: list[list[dict]] = []
    for before, after in zip(snapshots, snapshots[1:]):
        if (before.metadata or {}).get("source") == "input":
            turns.append([])
            continue
        if not turns or not before.next:
            continue
        changed = {k: v for k, v in after.values.items() if before.values.get(k) != v}
        for node in before.next:
            turns[-1].append({"node": node, "input": dict(before.values), "output": changed})
    return turns
