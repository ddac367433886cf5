"""Second hop without an LLM call: search again with the question and its best passage.

A multi-hop question ("What government position was held by the woman who portrayed Corliss
Archer?") names the first passage's subject but not the second's; the second passage shares
its words with the first (the actress's name), not with the question. As in multi-hop dense
retrieval (Xiong et al., 2021), the question joined to the passage the relevance scorer rates
best becomes a second query; its hits join the candidates, and the grade node scores them all
together. Costs one retrieval and one scoring pass (milliseconds), no LLM call.
"""

from __future__ import annotations

from arag.runtime.frame import Run, node
from arag.runtime.state import RAGState

#: Words of the best passage added to the question: the embedding model reads about 128 tokens.
PASSAGE_WORDS = 60


@node("second_hop")
def second_hop(state: RAGState, run: Run) -> dict:
    """Add the candidates found for the question joined to its best-scored passage."""
    settings = run.settings
    candidates = state.get("candidates") or []
    if not settings.second_hop or not candidates:
        run.trace(skipped="second hop off" if not settings.second_hop else "no candidates")
        return {}
    question = state["standalone_question"]
    scored = run.components.judge_for(settings).judge(question, candidates, links=False)
    best = max(scored, key=lambda c: c["relevance"])
    query = f"{question} {best['title']}: {' '.join(best['text'].split()[:PASSAGE_WORDS])}"
    hits, error, notes = run.components.search(settings, [query], max(settings.candidates, settings.top_k),
                                               state.get("filters"))
    seen = {c["chunk_id"] for c in candidates}
    added = [h for h in hits if h["chunk_id"] not in seen]
    run.trace(from_chunk=best["chunk_id"], from_title=best["title"], found=len(hits), added=len(added),
              top_added=[{"chunk_id": h["chunk_id"], "title": h["title"]} for h in added[:5]])
    if error:
        run.trace(error=error)
    return {"candidates": candidates + added, "notes": notes}
