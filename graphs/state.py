"""The typed state of the RAG graph.

Per-turn fields are reset by the graph's first node each turn; ``history`` grows across
the turns of a thread kept by the checkpointer. Every decision a node takes is recorded
in ``trace`` (node, milliseconds, LLM calls and tokens, and what it decided and why).
"""

from __future__ import annotations

import operator
from typing import Annotated, TypedDict


class RetrievedChunk(TypedDict, total=False):
    chunk_id: str
    source: str
    title: str
    heading: str
    text: str
    score: float
    relevance: float
    relevance_raw: float


class Citation(RetrievedChunk):
    n: int


class Turn(TypedDict):
    question: str
    answer: str


class SubAnswer(TypedDict):
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
    route: str
    complex: bool
    queries: list[str]
    filters: dict | None
    sub_questions: list[str]
    sub_answers: list[SubAnswer]
    candidates: list[RetrievedChunk]
    documents: list[RetrievedChunk]
    search_query: str
    need_more: bool
    web_ready: bool
    web_used: bool
    retries: int
    generations: int
    answer: str
    citations: list[Citation]
    best: dict
    reflection: dict
    notes: Annotated[list[str], operator.add]
    history: Annotated[list[Turn], operator.add]
    trace: Annotated[list[TraceEvent], operator.add]
    llm_calls: Annotated[int, operator.add]
