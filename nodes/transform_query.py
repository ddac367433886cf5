"""Query transforms: multi-query (RAG-Fusion), step-back and HyDE.

Rewordings and the step-back question come from one structured LLM call when both are
on, so turning on both costs one call, not two. HyDE writes a short hypothetical answer
passage, which is searched for like a query (its wording sits closer to the passages
than the question's). Every query is retrieved for and the rankings are fused by RRF in
the retrieve node. With all transforms off this node costs nothing.
"""

from __future__ import annotations

from langchain_core.messages import HumanMessage, SystemMessage
from pydantic import BaseModel, Field

from arag.llms.structured import ask_json
from arag.llms.usage import LLMCallFailed, invoke_counted
from arag.runtime.frame import Run, node
from arag.runtime.state import RAGState

REWRITE_PROMPT = """Help search a document collection for the question below.
{wants}
Question: {question}"""

HYDE_SYSTEM = "Write a short factual passage (two sentences) that answers the question, as an encyclopedia would."


class Rewrites(BaseModel):
    rewordings: list[str] = Field(default_factory=list, max_length=5)
    step_back: str = Field("", max_length=200)


def _clean(queries: list[str], original: str) -> list[str]:
    """Distinct, non-empty queries, the original first."""
    seen, out = set(), []
    for q in [original, *queries]:
        key = " ".join(q.lower().split())
        if key and key not in seen and len(q) <= 300:
            seen.add(key)
            out.append(q.strip())
    return out


@node("transform_query")
def transform_query(state: RAGState, run: Run) -> dict:
    """Build the list of retrieval queries for the question."""
    settings = run.settings
    question = state["standalone_question"]
    details: dict = {}
    extra: list[str] = []
    wants = []
    if settings.multi_query:
        wants.append(f'"rewordings": {settings.multi_query} different phrasings of the question, each a full question.')
    if settings.step_back:
        wants.append('"step_back": one more generic question about the underlying concept or background.')
    if wants:
        default = Rewrites()
        rewrites, status = ask_json(
            run.llm,
            REWRITE_PROMPT.format(wants="Reply with JSON holding " + " ".join(wants), question=question),
            Rewrites, run.usage, default=default, max_tokens=160,
        )
        extra += rewrites.rewordings[: settings.multi_query]
        if settings.step_back and rewrites.step_back:
            extra.append(rewrites.step_back)
            details["step_back"] = rewrites.step_back
        details["rewordings"] = rewrites.rewordings[: settings.multi_query]
        details["rewrite_status"] = status
    if settings.hyde:
        try:
            reply = invoke_counted(run.llm, [SystemMessage(HYDE_SYSTEM), HumanMessage(question)], run.usage, max_tokens=90)
            passage = " ".join(str(reply.content).split())
            if passage:
                extra.append(passage)
                details["hyde"] = passage
        except LLMCallFailed as exc:  # HyDE is optional; the original query still runs
            details["hyde_error"] = str(exc)
    queries = _clean(extra, question)
    run.trace(queries=len(queries), **details)
    return {"queries": queries}
