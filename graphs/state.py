"""The typed state of the RAG graph.

Per-turn fields (``documents``, ``answer``, ``citations``, ``trace``, ``llm_calls``) are
reset by the graph's first node each turn; ``history`` grows across the turns of a thread
kept by the checkpointer.
"""

from __future__ import annotations

import operator
from typing import Annotated, TypedDict


class RetrievedChunk(TypedDict):
    chunk_id: str
    source: str
    title: str
    heading: str
    text: str
    score: float


class Citation(RetrievedChunk):
    n: int


class Turn(TypedDict):
    question: str
    answer: str


class TraceEvent(TypedDict, total=False):
    node: str
    ms: float
    llm_calls: int
    prompt_tokens: int
    completion_tokens: int


class RAGState(TypedDict, total=False):
    question: str
    standalone_question: str
    documents: list[RetrievedChunk]
    answer: str
    citations: list[Citation]
    history: Annotated[list[Turn], operator.add]
    trace: Annotated[list[TraceEvent], operator.add]
    llm_calls: Annotated[int, operator.add]
