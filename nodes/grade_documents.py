"""Grade retrieved chunks and keep the relevant ones.

Two graders behind one node. The score grader (default) asks the relevance scorer (the
collection's trained cross-encoder, else late interaction) for each chunk's calibrated
probability of relevance and keeps chunks at or above ``relevance_threshold``: no LLM call,
and the threshold means the same whichever scorer is active. The probability reads both a
chunk's own score and its gap to the best candidate of this retrieval (set-aware calibration,
:mod:`relevance.calibration`): raw scores are not comparable across questions, gaps are. The LLM grader asks for a
yes/no per chunk in one batched, schema-constrained call; small local models grade near
chance, so it is meant for capable hosted models. Chunks pinned as the evidence of a
sub-question are kept by either grader, whatever their relevance to the whole question.
The scores travel with the chunks, so the rerank node orders them without scoring again.

The grade decides whether to search again. When no further search follows and fewer than
``top_k`` chunks passed, ``fill_context`` tops the context up with the best remaining
candidates: the scorer's threshold drops about a third of the supporting paragraphs on
multi-hop questions (``bench/trained_retrieval.py``), and a small context has room for them.
Filling past ``context_min`` chunks takes only candidates that are not near-certainly irrelevant.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from arag.llms.structured import ask_json
from arag.retrieval.web import unavailable_reason
from arag.runtime.frame import Run, node
from arag.runtime.loops import can_search_again
from arag.runtime.state import RAGState

LLM_GRADE_PROMPT = """For each numbered passage, say whether it helps answer the question.
Reply with JSON: {{"relevant": [true or false for passage 1, passage 2, ...]}}.
Question: {question}

{passages}"""

#: Passages shown to the LLM grader, and words of each, to bound the prompt.
LLM_GRADE_MAX, LLM_GRADE_WORDS = 8, 60


class Grades(BaseModel):
    relevant: list[bool] = Field(max_length=LLM_GRADE_MAX)


@node("grade_documents")
def grade_documents(state: RAGState, run: Run) -> dict:
    """Keep the candidates judged relevant; the rest are dropped with their grades in the trace."""
    settings = run.settings
    question = state["standalone_question"]
    candidates = state.get("candidates") or []
    details = run.details
    details["grader"] = settings.grader
    if settings.grader == "off" or not candidates:
        scored = list(candidates)
        kept = scored
    else:
        judge = run.components.judge_for(settings)
        scored = judge.judge(question, candidates, links=settings.link_expansion)
        details["scorer"] = judge.name
    if settings.grader == "score" and candidates:
        kept = [c for c in scored if c["relevance"] >= settings.relevance_threshold or c.get("pinned")]
        details["threshold"] = settings.relevance_threshold
    elif settings.grader == "llm":
        shown = scored[:LLM_GRADE_MAX]
        passages = "\n\n".join(
            f"[{i}] {' '.join(c['text'].split()[:LLM_GRADE_WORDS])}" for i, c in enumerate(shown, start=1)
        )
        # Unusable output keeps every passage: dropping good context is worse than keeping noise.
        default = Grades(relevant=[True] * len(shown))
        grades, status = ask_json(
            run.llm, LLM_GRADE_PROMPT.format(question=question, passages=passages), Grades, run.usage,
            default=default, max_tokens=12 * len(shown) + 20,
        )
        flags = (grades.relevant + [True] * len(shown))[: len(shown)]
        kept = [c for c, keep in zip(shown, flags) if keep or c.get("pinned")]
        details["status"] = status
    kept_ids = {c["chunk_id"] for c in kept}
    details["grades"] = [
        {"chunk_id": c["chunk_id"], "title": c["title"], "relevance": c.get("relevance"), "kept": c["chunk_id"] in kept_ids,
         **({"linked_from": c["linked_from"]} if c.get("linked_from") else {})}
        for c in scored
    ]
    details["kept"] = len(kept)
    too_few = len(kept) < settings.min_relevant
    need_more = too_few and can_search_again(state, settings)
    if too_few and not need_more:
        # Out of retries: answer from the best candidates rather than from nothing.
        kept = kept + fill(scored, kept, settings)
        details["note"] = "too few relevant chunks and no retries left; using the best candidates"
    elif settings.fill_context and not need_more and len(kept) < settings.top_k:
        filled = fill(scored, kept, settings)
        kept = kept + filled
        if filled:
            details["filled"] = [c["chunk_id"] for c in filled]
    details["need_more"] = need_more
    update = {"documents": kept, "need_more": need_more}
    # No search was left to try although retries were: say so, as the rewrite node does when it skips the web.
    if too_few and not need_more and state.get("retries", 0) < settings.max_retries \
            and (web_skipped := unavailable_reason(settings)):
        details["web_skipped"] = web_skipped
        update["notes"] = [f"web search skipped: {web_skipped}"]
    return update


def fill(scored: list[dict], kept: list[dict], settings) -> list[dict]:
    """The best candidates not kept: up to ``context_min`` chunks in all whatever their relevance, then up to
    ``top_k`` those of at least ``fill_min_relevance``. Near-zero filler costs prompt tokens and, with a
    small model, sometimes the answer; a doubtful fifth passage is kept, since it may be the second hop.
    """
    kept_ids = {c["chunk_id"] for c in kept}
    rest = sorted((c for c in scored if c["chunk_id"] not in kept_ids), key=lambda c: -(c.get("relevance") or 0.0))
    room = max(0, settings.top_k - len(kept))
    unconditional = max(0, min(settings.context_min, settings.top_k) - len(kept))
    return rest[:unconditional] + [
        c for c in rest[unconditional:room] if (c.get("relevance") or 0.0) >= settings.fill_min_relevance
    ]
