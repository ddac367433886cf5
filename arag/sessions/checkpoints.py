"""Conversation memory: the LangGraph checkpointer that keeps threads between runs, and the
record of turns beside it.

SQLite in the data directory by default; PostgreSQL when ``ARAG_DATABASE_URL`` is set, so
several app instances (web app replicas, command-line runs on other machines) continue the
same threads.
"""

from __future__ import annotations

import sqlite3

from arag.sessions.conversations import ThreadStore
from arag.settings import Settings


def open_checkpointer(settings: Settings):
    """The checkpointer the settings name, its tables created if missing."""
    if settings.database_url is not None:
        # Only the backend in use is imported: each takes 0.1-0.2 s (the PostgreSQL one with psycopg
        # and its pool), and the other is never needed in the same run.
        from langgraph.checkpoint.postgres import PostgresSaver
        from psycopg.rows import dict_row
        from psycopg_pool import ConnectionPool

        # A pool, so that concurrent questions (web app sessions, threads) each get a connection.
        pool = ConnectionPool(settings.database_url.get_secret_value(), min_size=1, max_size=8, open=True,
                              kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row})
        saver = PostgresSaver(pool)
    else:
        from langgraph.checkpoint.sqlite import SqliteSaver

        settings.data_dir.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(settings.checkpoint_path), check_same_thread=False, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")  # readers never block
        saver = SqliteSaver(conn)
    saver.setup()
    return saver


def open_thread_store(settings: Settings):
    """The :class:`arag.sessions.conversations.ThreadStore` in the same database as the checkpoints."""
    if settings.database_url is not None:
        return ThreadStore(settings.database_url.get_secret_value())
    return ThreadStore(settings.checkpoint_path)
