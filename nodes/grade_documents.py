"""Grade retrieved chunks and keep the relevant ones.

Two graders behind one node. The score grader (default) compares the question's
embedding with each chunk's stored vector and keeps chunks whose cosine similarity
reaches ``relevance_threshold``: no LLM call, a few milliseconds. The LLM grader asks for
a yes/no per chunk in one batched, schema-constrained call; small local models grade near
chance, so it is meant for capable hosted models. Chunks pinned as the evidence of a
sub-question are kept by either grader, whatever their similarity to the whole question.
"""

from __future__ import annotations

import time

import numpy as np
from langchain_core.runnables import RunnableConfig
from pydantic import BaseModel, Field

from components import Components
from graphs.state import RAGState
from llms.structured import ask_json
from llms.usage import LLMUsage
from nodes.rewrite_question import can_search_again
from nodes.tracing import trace_event

LLM_GRADE_PROMPT = """For each numbered passage, say whether it helps answer the question.
Reply with JSON: {{"relevant": [true or false for passage 1, passage 2, ...]}}.
Question: {question}

{passages}"""

#: Passages shown to the LLM grader, and words of each, to bound the prompt.
LLM_GRADE_MAX, LLM_GRADE_WORDS = 8, 60


class Grades(BaseModel):
    relevant: list[bool] = Field(max_length=LLM_GRADE_MAX)


def score_relevance(components: Components, question: str, chunks: list[dict]) -> list[float]:
    """Cosine similarity of the question with each chunk's stored vector (web chunks: embedded now)."""
    if not chunks:
        return []
    query = components.embedder.embed_queries([question])[0]
    stored = components.store.embeddings_for([c["chunk_id"] for c in chunks if not c["chunk_id"].startswith("web:")])
    missing = [c for c in chunks if c["chunk_id"] not in stored]
    if missing:
        fresh = components.embedder.embed_documents([f"{c['title']}\n{c['text']}" for c in missing])
        stored.update({c["chunk_id"]: v for c, v in zip(missing, fresh)})
    return [round(float(np.dot(query, stored[c["chunk_id"]])), 4) for c in chunks]


def grade_documents(state: RAGState, config: RunnableConfig, *, components: Components) -> dict:
    """Keep the candidates judged relevant; the rest are dropped with their grades in the trace."""
    started = time.perf_counter()
    settings = components.settings.for_run(config)
    question = state["standalone_question"]
    candidates = state.get("candidates") or []
    usage = LLMUsage()
    details: dict = {"grader": settings.grader}
    relevance = score_relevance(components, question, candidates) if candidates else []
    scored = [{**c, "relevance": r} for c, r in zip(candidates, relevance)]
    if settings.grader == "off" or not candidates:
        kept = scored
    elif settings.grader == "score":
        kept = [c for c in scored if c["relevance"] >= settings.relevance_threshold or c.get("pinned")]
        details["threshold"] = settings.relevance_threshold
    else:
        shown = scored[:LLM_GRADE_MAX]
        passages = "\n\n".join(
            f"[{i}] {' '.join(c['text'].split()[:LLM_GRADE_WORDS])}" for i, c in enumerate(shown, start=1)
        )
        # Unusable output keeps every passage: dropping good context is worse than keeping noise.
        default = Grades(relevant=[True] * len(shown))
        grades, status = ask_json(
            components.llm_for(settings), LLM_GRADE_PROMPT.format(question=question, passages=passages), Grades, usage,
            default=default, max_tokens=12 * len(shown) + 20,
        )
        flags = (grades.relevant + [True] * len(shown))[: len(shown)]
        kept = [c for c, keep in zip(shown, flags) if keep or c.get("pinned")]
        details["status"] = status
    kept_ids = {c["chunk_id"] for c in kept}
    details["grades"] = [
        {"chunk_id": c["chunk_id"], "title": c["title"], "relevance": c["relevance"], "kept": c["chunk_id"] in kept_ids} for c in scored
    ]
    details["kept"] = len(kept)
    need_more = len(kept) < settings.min_relevant and can_search_again(state, settings)
    if len(kept) < settings.min_relevant and not need_more:
        # Out of retries: answer from the best candidates rather than from nothing.
        kept = scored[: settings.top_k]
        details["note"] = "too few relevant chunks and no retries left; using the best candidates"
    details["need_more"] = need_more
    return {
        "documents": kept,
        "need_more": need_more,
        "llm_calls": usage.calls,
        "trace": [trace_event("grade_documents", started, usage, **details)],
    }
