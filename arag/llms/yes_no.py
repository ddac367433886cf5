"""Yes or no from the model's own odds, corrected for its bias (contextual calibration).

The 1.5B local model answers "Yes" to nearly every yes/no question, right about half the time.
Instead of letting it write the verdict, its logit gap between "Yes" and "No" as the reply's
first token is read twice: for the question, and for the same prompt with the question
replaced by a content-free one ("N/A"), which measures how far these instructions and these
sources alone push it towards "Yes". The verdict is the sign of the difference of the two
gaps (the calibration of Zhao et al., 2021, "Calibrate Before Use", in logit form), so no
constant is fitted to any dataset. The second reading shares all of the prompt but its last
line with the first, so llama.cpp evaluates only those few tokens again.

Measured on 2Wiki's 29 yes/no questions with the default 1.5B model, it does not help: the
raw gap is about the same for gold "yes" and gold "no" (means 1.27 and 1.25, AUC 0.54), and
the content-free question leans to "No" (gap about -3), so every verdict stays "Yes". It is
therefore off by default (``yes_no="generate"``); a model whose odds carry the answer can use it.

Example:
    >>> is_yes_no_question("Were Scott Derrickson and Ed Wood of the same nationality?")
    True
    >>> is_yes_no_question("Which is older, the Eiffel Tower or Big Ben?")
    False
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from langchain_core.messages import BaseMessage

from arag.llms.usage import LLMUsage, model_call

#: The reply's first token, as the model would write the verdict.
VERDICT_WORDS = ("Yes", "yes", "No", "no")
#: The content-free question whose answer says only what the prompt itself leans to.
CONTENT_FREE_QUESTION = "N/A"

_AUXILIARY = re.compile(
    r"^\s*(is|are|was|were|do|does|did|can|could|has|have|had|will|would|should|shall|may|might|must)\b", re.IGNORECASE
)
#: "Is X or Y older?" asks for one of two names, not for a yes or a no.
_ALTERNATIVE = re.compile(r"\bor\b", re.IGNORECASE)


def is_yes_no_question(question: str) -> bool:
    """A question that opens with an auxiliary verb and offers no alternatives to choose from."""
    return bool(_AUXILIARY.match(question)) and not _ALTERNATIVE.search(question)


@dataclass
class Verdict:
    answer: str
    gap: float
    bias: float

    def as_trace(self) -> dict:
        return {"yes_no": self.answer, "yes_no_gap": round(self.gap, 3), "yes_no_bias": round(self.bias, 3)}


def can_read_odds(llm) -> bool:
    """Whether the chat model exposes its next-token logits (the local llama.cpp models do)."""
    return callable(getattr(llm, "next_token_logits", None))


def _gap(llm, messages: list[BaseMessage], seen: list[tuple[int, int]]) -> float:
    yes, yes_lower, no, no_lower = llm.next_token_logits(messages, list(VERDICT_WORDS), tokens_seen=seen)
    return max(yes, yes_lower) - max(no, no_lower)


def calibrated_verdict(llm, messages: list[BaseMessage], content_free: list[BaseMessage], usage: LLMUsage) -> Verdict:
    """The calibrated yes or no for ``messages``; ``content_free`` is the same prompt asking "N/A".

    Counted as one LLM call: the whole prompt once, plus the tokens the second reading evaluates.
    A failed model call raises :class:`LLMCallFailed`, like every other call.
    """
    seen: list[tuple[int, int]] = []
    with model_call():
        gap = _gap(llm, messages, seen)
        bias = _gap(llm, content_free, seen)
    usage.calls += 1
    usage.prompt_tokens += seen[0][0] + sum(evaluated for _, evaluated in seen[1:])
    usage.completion_tokens += 1
    return Verdict("Yes" if gap - bias > 0 else "No", gap, bias)
