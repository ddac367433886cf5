"""Answer the next sub-question of a decomposed question.

Each pass retrieves for one sub-question, with ``#n`` replaced by the answers found so
far, pins its best chunks (by the relevance scorer, when reranking is on) so the final
context keeps the evidence of every hop, and in
sequential mode asks the LLM for a short answer from those chunks alone (a short prompt:
two chunks, a few words out). In parallel mode no intermediate answer is written.
"""

from __future__ import annotations

import re

from langchain_core.messages import HumanMessage, SystemMessage

from arag.llms.usage import LLMCallFailed, invoke_counted
from arag.runtime.frame import Run, node
from arag.runtime.state import RAGState
from arag.text import format_sources

SYSTEM_PROMPT = (
    "Answer the question with a short phrase taken from the sources (a name, date, place or number). "
    "If the sources do not say, answer: unknown."
)

#: Chunks pinned per sub-question, and chunks each sub-question adds to the candidate pool.
PINNED, POOLED = 2, 6


def fill_placeholders(question: str, answers: list[str]) -> str:
    """Replace ``#n`` with the n-th answer found so far (left as is when unknown)."""
    def sub(match: re.Match) -> str:
        n = int(match.group(1))
        answer = answers[n - 1] if 0 < n <= len(answers) else ""
        return answer if answer and answer.lower() != "unknown" else match.group(0)

    return re.sub(r"#(\d)", sub, question)


@node("answer_sub_question")
def answer_sub_question(state: RAGState, run: Run) -> dict:
    """Retrieve for (and in sequential mode answer) the next sub-question."""
    settings, components = run.settings, run.components
    done = list(state.get("sub_answers") or [])
    index = len(done)
    question = fill_placeholders(state["sub_questions"][index], [a["answer"] for a in done])
    hits, error, notes = components.search(settings, [question], settings.candidates, state.get("filters"))
    if settings.rerank and len(hits) > 1:
        # The evidence pinned for a hop is what the relevance scorer ranks best for that hop.
        hits = sorted(components.judge_for(settings).judge(question, hits), key=lambda c: -c["relevance"])
    pool = {c["chunk_id"]: c for c in state.get("candidates") or []}
    if index == 0 and not error:
        for c in components.search(settings, [state["standalone_question"]], POOLED, state.get("filters"))[0]:
            pool.setdefault(c["chunk_id"], c)
    for rank, c in enumerate(hits[:POOLED]):
        entry = pool.setdefault(c["chunk_id"], dict(c))
        if rank < PINNED:
            entry["pinned"] = True
    answer, failure = "", error
    if settings.decompose_mode == "sequential" and hits:
        try:
            reply = invoke_counted(
                run.llm,
                [SystemMessage(SYSTEM_PROMPT),
                 HumanMessage(f"<sources>\n{format_sources(hits[:PINNED])}\n</sources>\n\nQuestion: {question}")],
                run.usage, max_tokens=24, stop=["\n"],
            )
            answer = " ".join(str(reply.content).split()).rstrip(".")
        except LLMCallFailed as exc:  # the pooled evidence still reaches the final answer
            failure = str(exc)
    run.trace(index=index + 1, question=question, answer=answer, evidence=[c["title"] for c in hits[:PINNED]],
              ranking=[c["chunk_id"] for c in hits], **({"error": failure} if failure else {}))
    return {
        "sub_answers": done + [{"question": question, "answer": answer}],
        "candidates": list(pool.values()),
        "queries": (state.get("queries") or []) + [question],
        "notes": notes,
    }
