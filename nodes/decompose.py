"""Decompose a complex question into sub-questions (one structured LLM call).

In sequential mode a later sub-question may refer to an earlier one's answer as ``#1``,
``#2``; the answer_sub_question node fills those in as it goes, which is what multi-hop
questions need ("the woman who portrayed X" must be found before her career is looked
up). If the model's plan is unusable or has fewer than two steps, the question is
answered as a simple one.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from arag.llms.structured import ask_json
from arag.runtime.frame import Run, node
from arag.runtime.state import RAGState

PROMPT_SEQUENTIAL = """Split the question into {n} or fewer simple questions that can each be looked up on their own, in the order they must be answered. When a question needs the answer of an earlier one, write #1 or #2 in its place.
Example: "Where was the director of Jaws born?" -> {{"sub_questions": ["Who directed Jaws?", "Where was #1 born?"]}}
Question: {question}"""  # noqa: E501 - the prompt is kept verbatim

PROMPT_PARALLEL = """Split the question into {n} or fewer simple questions that can each be looked up on their own.
Example: "Are Paris and Rome both capitals?" -> {{"sub_questions": ["Is Paris a capital?", "Is Rome a capital?"]}}
Question: {question}"""


class Plan(BaseModel):
    sub_questions: list[str] = Field(default_factory=list, max_length=5)


@node("decompose")
def decompose(state: RAGState, run: Run) -> dict:
    """Plan the sub-questions of a complex question."""
    settings = run.settings
    question = state["standalone_question"]
    prompt = PROMPT_SEQUENTIAL if settings.decompose_mode == "sequential" else PROMPT_PARALLEL
    plan, status = ask_json(
        run.llm, prompt.format(n=settings.max_sub_questions, question=question), Plan, run.usage,
        default=Plan(), max_tokens=120,
    )
    subs = []
    for sub in plan.sub_questions[: settings.max_sub_questions]:
        sub = " ".join(sub.split())
        if sub and sub.lower() != question.lower() and sub not in subs and len(sub) <= 300:
            subs.append(sub)
    if len(subs) < 2:
        subs = []
    run.trace(mode=settings.decompose_mode, sub_questions=subs, status=status,
              **({} if subs else {"note": "no usable plan; answering as a simple question"}))
    return {"sub_questions": subs, "complex": bool(subs)}
