"""HyDE: a hypothetical answer passage, searched for like a query.

A short made-up answer is worded like the passages that hold the real one, so its embedding
sits closer to them than the question's (Gao et al., 2022). Its facts are never shown to the
answer step: it only finds passages. One of the three query transforms fanned out after
self-query; one LLM call.
"""

from __future__ import annotations

from langchain_core.messages import HumanMessage, SystemMessage

from arag.llms.usage import LLMCallFailed, invoke_counted
from arag.runtime.frame import Run, node
from arag.runtime.state import RAGState

SYSTEM = "Write a short factual passage (two sentences) that answers the question, as an encyclopedia would."


@node("hyde")
def hyde(state: RAGState, run: Run) -> dict:
    """Write the hypothetical passage (empty when off or when the model fails)."""
    if not run.settings.hyde:
        run.trace(skipped="HyDE off")
        return {"hypothetical_passage": ""}
    try:
        reply = invoke_counted(run.llm, [SystemMessage(SYSTEM), HumanMessage(state["standalone_question"])], run.usage,
                               max_tokens=90)
    except LLMCallFailed as exc:  # optional: the question itself is still searched
        run.trace(error=str(exc))
        return {"hypothetical_passage": ""}
    passage = " ".join(str(reply.content).split())
    run.trace(hyde=passage)
    return {"hypothetical_passage": passage}
