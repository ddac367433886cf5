"""Rerank the relevant chunks and trim them to the answer's context budget.

The relevance scorer (the collection's trained cross-encoder, else late interaction over the
embedding model's token vectors) orders the chunks; chunks the grade node already scored keep
their scores, so only newcomers (web results, chunks of an ungraded run) are scored here. The
best chunks come first, since small models attend most to the start of their context, and
chunks are kept while they fit ``context_tokens`` and ``top_k``. With ``compression`` on, the
chunks that could be kept are first cut to their sentences related to the question
(:mod:`relevance.compression`), so more of them fit.
"""

from __future__ import annotations

from arag.relevance.compression import compress_documents
from arag.retrieval.retriever import as_parents
from arag.runtime.frame import Run, node
from arag.runtime.state import RAGState
from arag.text import within_budget

#: Candidates scored; beyond this the retriever's order is kept.
RERANK_DEPTH = 30


@node("rerank")
def rerank(state: RAGState, run: Run) -> dict:
    """Order chunks by calibrated relevance and trim to the context budget."""
    settings, components = run.settings, run.components
    question = state["standalone_question"]
    documents = list(state.get("documents") or [])
    details = run.details
    details |= {"rerank": settings.rerank, "in": len(documents)}
    if settings.rerank and len(documents) > 1:
        judge = components.judge_for(settings)
        head = documents[:RERANK_DEPTH]
        unscored = [d for d in head if d.get("relevance") is None]
        fresh = {d["chunk_id"]: d for d in judge.judge(question, unscored, links=settings.link_expansion)}
        head = [fresh.get(d["chunk_id"], d) for d in head]
        # The evidence of each sub-question (pinned) stays ahead of better-scoring neighbours.
        head.sort(key=lambda d: (not d.get("pinned"), -d["relevance"]))
        documents = head + documents[RERANK_DEPTH:]
        details |= {"scorer": judge.name, "scored_here": len(unscored)}
    if any(d.get("parent_id") for d in documents):
        # Parent-document index: the matched chunks were small for precision; the model reads their sections.
        before = len(documents)
        documents = as_parents(documents)
        details["parents"] = {"chunks": before, "parents": len(documents)}
    if settings.compression and documents:
        # Only chunks that could reach the answer are compressed; the budget then fits more of them.
        head, stats = compress_documents(question, documents[: 2 * settings.top_k], components.embedder,
                                         settings.compression_keep, components.embedder.count_tokens)
        documents = head + documents[2 * settings.top_k :]
        details["compression"] = stats
    count = components.embedder.count_tokens
    # 8 tokens a passage for its number and title line in the prompt.
    kept, _ = within_budget(documents[: settings.top_k], lambda d: count(d["text"]) + 8, settings.context_tokens,
                            at_least_one=True)
    details["order"] = [{"chunk_id": d["chunk_id"], "title": d["title"], "relevance": d.get("relevance")} for d in kept]
    return {"documents": kept}
