"""Counting what each LLM call costs: calls, prompt tokens, completion tokens."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage


@dataclass
class LLMUsage:
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def add(self, message: AIMessage) -> None:
        meta = getattr(message, "usage_metadata", None) or {}
        self.calls += 1
        self.prompt_tokens += int(meta.get("input_tokens", 0))
        self.completion_tokens += int(meta.get("output_tokens", 0))

    def as_dict(self) -> dict:
        return asdict(self)


class LLMCallFailed(RuntimeError):
    """One call failed (timeout, refused connection, HTTP error, model crash); ``str()`` is one line.

    A model that cannot be loaded at all is not this: ``ModelUnavailable`` passes through,
    since no retry or default decision can help a misconfiguration.
    """

    def __init__(self, cause: BaseException):
        text = " ".join(str(cause).split())[:160]
        super().__init__(f"{type(cause).__name__}: {text}" if text else type(cause).__name__)


def invoke_counted(llm: BaseChatModel, messages: list[BaseMessage], usage: LLMUsage, **kwargs) -> AIMessage:
    """Call the model and add the call's tokens to ``usage``; failures become :class:`LLMCallFailed`."""
    from llms.gguf import ModelUnavailable

    try:
        reply = llm.invoke(messages, **kwargs)
    except ModelUnavailable:
        raise
    except Exception as exc:  # noqa: BLE001 - providers raise many types; callers handle one
        raise LLMCallFailed(exc) from exc
    usage.add(reply)
    return reply
