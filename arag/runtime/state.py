"""The typed state of the RAG graph.

Per-turn fields are reset by the graph's first node each turn, to :func:`turn_defaults`;
``history`` grows across the turns of a thread kept by the checkpointer. Every decision a
node takes is recorded in ``trace`` (node, milliseconds, LLM calls and tokens, and what it
decided and why).
"""

from __future__ import annotations

import operator
from typing import Annotated, Literal, TypedDict


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


class Reflection(TypedDict, total=False):
    """The reflect node's judgement of an answer (empty before the first)."""

    verdict: Literal["ok", "ungrounded", "not useful", "skipped"]
    #: Share of the answer's new content words found in its sources.
    support: float
    useful: bool
    next: Literal["finish", "regenerate", "search_again"]
    #: Why reflection was skipped (only with verdict "skipped").
    reason: str


class BestAnswer(TypedDict, total=False):
    """The best answer of the turn so far (empty before the first reflection)."""

    #: (useful, grounded, support), compared in that order.
    quality: list[bool | float]
    answer: str
    citations: list[Citation]
    documents: list[RetrievedChunk]


class RAGState(TypedDict, total=False):
    question: str
    standalone_question: str
    route: str
    complex: bool
    queries: list[str]
    rewordings: list[str]
    step_back_question: str
    hypothetical_passage: str
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
    sql: str
    best: BestAnswer
    reflection: Reflection
    notes: Annotated[list[str], operator.add]
    history: Annotated[list[Turn], operator.add]
    trace: Annotated[list[TraceEvent], operator.add]
    llm_calls: Annotated[int, operator.add]


def turn_defaults(standalone: str) -> dict:
    """Every per-turn field as a turn starts, new lists and dicts each call; ``queries`` is the question.

    The fields outside it are the question itself and what spans the turn or the thread:

    >>> sorted(set(RAGState.__annotations__) - set(turn_defaults("q")))
    ['history', 'llm_calls', 'notes', 'question', 'standalone_question', 'trace']
    >>> turn_defaults("q")["queries"], turn_defaults("q")["candidates"] is turn_defaults("q")["candidates"]
    (['q'], False)
    """
    return {
        "route": "index",
        "complex": False,
        "queries": [standalone],
        "rewordings": [],
        "step_back_question": "",
        "hypothetical_passage": "",
        "filters": None,
        "sub_questions": [],
        "sub_answers": [],
        "candidates": [],
        "documents": [],
        "search_query": "",
        "need_more": False,
        "web_ready": False,
        "web_used": False,
        "retries": 0,
        "generations": 0,
        "answer": "",
        "citations": [],
        "sql": "",
        "best": {},
        "reflection": {},
    }
