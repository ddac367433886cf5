"""Structured output that survives weak or erratic models.

One path for every node that needs a decision or a list from the LLM: constrained JSON
decoding where the backend supports it (llama.cpp grammars), validation against a
pydantic model, one repair attempt that shows the model its error, then a safe default.
The caller always gets a value and a status for the trace; it never gets an exception
from a model that said something odd, timed out or could not be reached. A bug in the model's
wrapper (a ``TypeError``, ``KeyError`` …) is not a model failure and propagates (see
:func:`arag.llms.usage.is_call_failure`).

Example:
    >>> from pydantic import BaseModel
    >>> from langchain_core.language_models import FakeListChatModel
    >>> class Verdict(BaseModel):
    ...     relevant: bool
    >>> llm = FakeListChatModel(responses=["sure!", '{"relevant": true}'])
    >>> value, status = ask_json(llm, "Is it relevant?", Verdict, LLMUsage(), default=Verdict(relevant=False))
    >>> value.relevant, status
    (True, 'repaired')
"""

from __future__ import annotations

import json
import re
from typing import TypeVar

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from pydantic import BaseModel, ValidationError

from arag.llms.llamacpp import LlamaCppChat
from arag.llms.usage import LLMCallFailed, LLMUsage, invoke_counted

T = TypeVar("T", bound=BaseModel)

_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


def extract_json(text: str) -> str:
    """The JSON object inside a reply that may wrap it in prose or a code fence."""
    fenced = _FENCE.search(text)
    if fenced:
        text = fenced.group(1)
    start, end = text.find("{"), text.rfind("}")
    return text[start : end + 1] if 0 <= start < end else text.strip()


def _constraint_kwargs(llm: BaseChatModel, schema: dict) -> dict:
    return {"json_schema": schema} if isinstance(llm, LlamaCppChat) else {}


def ask_json(
    llm: BaseChatModel,
    prompt: str | list[BaseMessage],
    model: type[T],
    usage: LLMUsage,
    *,
    default: T,
    max_tokens: int = 160,
) -> tuple[T, str]:
    """Ask for JSON matching ``model``; return ``(value, status)``.

    ``status`` is ``"ok"``, ``"repaired"`` (valid on the second try) or ``"default: <why>"``.
    """
    messages: list[BaseMessage] = [HumanMessage(prompt)] if isinstance(prompt, str) else list(prompt)
    schema = model.model_json_schema()
    kwargs = _constraint_kwargs(llm, schema)
    problem = "invalid output"
    for attempt in range(2):
        try:
            reply = invoke_counted(llm, messages, usage, max_tokens=max_tokens, **kwargs)
        except LLMCallFailed as exc:
            return default, f"default: {exc}"
        text = str(reply.content)
        try:
            value = model.model_validate_json(extract_json(text))
            return value, "ok" if attempt == 0 else "repaired"
        except (ValidationError, ValueError) as exc:
            detail = " ".join(str(exc).split())[:80]
            problem = "invalid output" if not text.strip() else f"invalid output ({type(exc).__name__}: {detail})"
            messages = messages + [
                AIMessage(text[:500]),
                HumanMessage(
                    "That reply was not valid. Answer again with only a JSON object matching this schema: "
                    + json.dumps(schema, separators=(",", ":"))
                ),
            ]
    return default, f"default: {problem}"
