"""Conversation memory: the LangGraph checkpointer that keeps threads between runs."""

from __future__ import annotations

import sqlite3

from langgraph.checkpoint.sqlite import SqliteSaver

from settings import Settings


def open_checkpointer(settings: Settings) -> SqliteSaver:
    """A SQLite checkpointer in the data directory (WAL mode, so readers never block)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(settings.checkpoint_path), check_same_thread=False, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    saver = SqliteSaver(conn)
    saver.setup()
    return saver
