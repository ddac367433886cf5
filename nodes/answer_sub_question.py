"""Answer the next sub-question of a decomposed question.

Each pass retrieves for one sub-question, with ``#n`` replaced by the answers found so
far, pins its best chunks (by the relevance scorer, when reranking is on) so the final
context keeps the evidence of every hop, and in
sequential mode asks the LLM for a short answer from those chunks alone (a short prompt:
two chunks, a few words out). In parallel mode no intermediate answer is written.
"""

from __future__ import annotations

import re
import time

from langchain_core.messages import HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig

from components import Components
from graphs.state import RAGState
from llms.usage import LLMCallFailed, LLMUsage, invoke_counted
from nodes.generate import format_sources
from nodes.retrieve import search
from nodes.tracing import trace_event

SYSTEM_PROMPT = "Answer the question with a short phrase taken from the sources (a name, date, place or number). If the sources do not say, answer: unknown."

#: Chunks pinned per sub-question, and chunks each sub-question adds to the candidate pool.
PINNED, POOLED = 2, 6


def fill_placeholders(question: str, answers: list[str]) -> str:
    """Replace ``#n`` with the n-th answer found so far (left as is when unknown)."""
    def sub(match: re.Match) -> str:
        n = int(match.group(1))
        answer = answers[n - 1] if 0 < n <= len(answers) else ""
        return answer if answer and answer.lower() != "unknown" else match.group(0)

    return re.sub(r"#(\d)", sub, question)


def answer_sub_question(state: RAGState, config: RunnableConfig, *, components: Components) -> dict:
    """Retrieve for (and in sequential mode answer) the next sub-question."""
    started = time.perf_counter()
    settings = components.settings.for_run(config)
    done = list(state.get("sub_answers") or [])
    index = len(done)
    question = fill_placeholders(state["sub_questions"][index], [a["answer"] for a in done])
    hits, error, notes = search(components, settings, [question], settings.candidates, state.get("filters"))
    if settings.rerank and len(hits) > 1:
        # The evidence pinned for a hop is what the relevance scorer ranks best for that hop.
        hits = sorted(components.judge_for(settings).judge(question, hits), key=lambda c: -c["relevance"])
    pool = {c["chunk_id"]: c for c in state.get("candidates") or []}
    if index == 0 and not error:
        for c in search(components, settings, [state["standalone_question"]], POOLED, state.get("filters"))[0]:
            pool.setdefault(c["chunk_id"], c)
    for rank, c in enumerate(hits[:POOLED]):
        entry = pool.setdefault(c["chunk_id"], dict(c))
        if rank < PINNED:
            entry["pinned"] = True
    usage = LLMUsage()
    answer, details = "", ({"error": error} if error else {})
    if settings.decompose_mode == "sequential" and hits:
        try:
            reply = invoke_counted(
                components.llm_for(settings),
                [SystemMessage(SYSTEM_PROMPT),
                 HumanMessage(f"<sources>\n{format_sources(hits[:PINNED])}\n</sources>\n\nQuestion: {question}")],
                usage, max_tokens=24, stop=["\n"],
            )
            answer = " ".join(str(reply.content).split()).rstrip(".")
        except LLMCallFailed as exc:  # the pooled evidence still reaches the final answer
            details["error"] = str(exc)
    return {
        "sub_answers": done + [{"question": question, "answer": answer}],
        "candidates": list(pool.values()),
        "queries": (state.get("queries") or []) + [question],
        "llm_calls": usage.calls,
        "notes": notes,
        "trace": [
            trace_event(
                "answer_sub_question", started, usage, index=index + 1, question=question, answer=answer,
                evidence=[c["title"] for c in hits[:PINNED]], ranking=[c["chunk_id"] for c in hits], **details,
            )
        ],
    }
