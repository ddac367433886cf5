"""Multi-query (RAG-Fusion): other wordings of the question, each retrieved for and fused by RRF.

One of the three query transforms the graph fans out in parallel after self-query (with
:mod:`nodes.step_back` and :mod:`nodes.hyde`); the retrieve node searches the question and
everything they wrote. One structured LLM call; unusable output adds no query.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from arag.llms.structured import ask_json
from arag.runtime.frame import Run, node
from arag.runtime.state import RAGState

PROMPT = """Help search a document collection for the question below.
Reply with JSON holding "rewordings": {count} different phrasings of the question, each a full question.
Question: {question}"""


class Rewordings(BaseModel):
    rewordings: list[str] = Field(default_factory=list, max_length=5)


@node("multi_query")
def multi_query(state: RAGState, run: Run) -> dict:
    """Write ``multi_query`` rewordings of the question."""
    count = run.settings.multi_query
    if not count:
        run.trace(skipped="multi-query off")
        return {"rewordings": []}
    reply, status = ask_json(run.llm, PROMPT.format(count=count, question=state["standalone_question"]), Rewordings,
                             run.usage, default=Rewordings(), max_tokens=40 * count + 20)
    rewordings = [r.strip() for r in reply.rewordings[:count] if r.strip()]
    run.trace(rewordings=rewordings, status=status)
    return {"rewordings": rewordings}
