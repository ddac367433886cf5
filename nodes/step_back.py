"""Step-back prompting: a more generic question about the concept behind the asked one.

"Which Python version added the walrus operator?" steps back to "What are assignment
expressions in Python?", whose passages give the background the specific question's words
may miss. One of the three query transforms fanned out after self-query; one LLM call.
"""

from __future__ import annotations

from langchain_core.messages import HumanMessage, SystemMessage

from arag.llms.usage import LLMCallFailed, invoke_counted
from arag.runtime.frame import Run, node
from arag.runtime.state import RAGState

SYSTEM = ("Write one more generic question about the underlying concept or background of the user's question. "
          "Reply with that question only.")
#: A question longer than this is not a step back but the model rambling.
MAX_CHARS = 200


@node("step_back")
def step_back(state: RAGState, run: Run) -> dict:
    """Write the step-back question (empty when off or when the model fails)."""
    if not run.settings.step_back:
        run.trace(skipped="step-back off")
        return {"step_back_question": ""}
    try:
        reply = invoke_counted(run.llm, [SystemMessage(SYSTEM), HumanMessage(state["standalone_question"])], run.usage,
                               max_tokens=60)
    except LLMCallFailed as exc:  # optional: the question itself is still searched
        run.trace(error=str(exc))
        return {"step_back_question": ""}
    question = " ".join(str(reply.content).split()[:40]).strip()
    if len(question) > MAX_CHARS:
        run.trace(dropped="longer than a question")
        question = ""
    run.trace(step_back=question)
    return {"step_back_question": question}
