"""Start of a turn: reset per-turn state and resolve a follow-up question against the thread.

A rewrite costs an LLM call, so it is made only when the question has history behind it
and refers back to it (a pronoun or a leading connective); otherwise the question stands.
"""

from __future__ import annotations

import re

from langchain_core.messages import HumanMessage, SystemMessage

from arag.llms.usage import LLMCallFailed, invoke_counted
from arag.runtime.frame import Run, node
from arag.runtime.state import RAGState, turn_defaults

SYSTEM_PROMPT = (
    "Rewrite the user's last question so it can be understood without the conversation. "
    "Replace pronouns with the names they refer to. Output only the rewritten question."
)

_REFERRING = re.compile(
    r"\b(he|she|it|its|they|them|their|his|her|hers|him|this|that|these|those|there|then|"
    r"the same|former|latter|one)\b|^\s*(and|also|what about|how about|why|so)\b",
    re.IGNORECASE,
)


def needs_rewrite(question: str, history: list) -> bool:
    return bool(history) and bool(_REFERRING.search(question))


def _conversation(history: list, turns: int) -> str:
    lines = []
    for turn in history[-turns:]:
        answer = " ".join(turn["answer"].split()[:60])
        lines.append(f"User: {turn['question']}\nAssistant: {answer}")
    return "\n".join(lines)


@node("contextualize", starts_turn=True)
def contextualize(state: RAGState, run: Run) -> dict:
    """Begin the turn; give retrieval a standalone question."""
    question = state.get("question", "")
    if not isinstance(question, str) or not question.strip():
        raise ValueError("the question is empty")
    question = question.strip()
    history = state.get("history") or []
    settings = run.settings
    notes = []
    words = question.split()
    if len(words) > settings.max_question_words:
        # A question longer than the answer's whole context budget would crowd out the sources.
        question = " ".join(words[: settings.max_question_words])
        notes.append(f"the question was cut to its first {settings.max_question_words} words (of {len(words)})")
    turns = settings.history_turns
    standalone, reason = question, "no history" if not history else "self-contained"
    if turns and needs_rewrite(question, history):
        try:
            reply = invoke_counted(
                run.llm,
                [
                    SystemMessage(SYSTEM_PROMPT),
                    HumanMessage(f"{_conversation(history, turns)}\nUser: {question}\n\nRewritten question:"),
                ],
                run.usage,
                max_tokens=48,
                stop=["\n"],
            )
        except LLMCallFailed as exc:  # the user's own words still make a usable query
            reason = f"rewrite failed ({exc})"
        else:
            candidate = str(reply.content).strip().strip('"')
            # A rewrite that is empty or rambles is worse than the user's own words.
            if 3 <= len(candidate) <= 3 * len(question) + 80:
                standalone, reason = candidate, "rewritten against history"
            else:
                reason = "rewrite rejected"
    run.trace(reason=reason, standalone_question=standalone)
    return {"question": question, "standalone_question": standalone, **turn_defaults(standalone), "notes": notes}
