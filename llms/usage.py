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


def invoke_counted(llm: BaseChatModel, messages: list[BaseMessage], usage: LLMUsage, **kwargs) -> AIMessage:
    """Call the model and add the call's tokens to ``usage``."""
    reply = llm.invoke(messages, **kwargs)
    usage.add(reply)
    return reply
