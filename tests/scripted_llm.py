"""A chat model that plays a script: each call takes the next reply, or raises the next error."""

from __future__ import annotations

from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import Field


class ScriptedChatModel(BaseChatModel):
    """Replies in order; an ``Exception`` in the script is raised instead of replying.

    ``default`` answers once the script is used up; ``prompts`` keeps every prompt seen, and
    ``unexpected`` counts calls past the script with no default. Such a call raises
    AssertionError, which is no failed model call: it propagates out of the graph.
    """

    script: list[Any] = Field(default_factory=list)
    default: str | None = None
    prompts: list[str] = Field(default_factory=list)
    unexpected: int = 0

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def _generate(self, messages: list[BaseMessage], stop=None, run_manager=None, **kwargs) -> ChatResult:
        self.prompts.append("\n".join(str(m.content) for m in messages))
        if self.script:
            step = self.script.pop(0)
        elif self.default is not None:
            step = self.default
        else:
            self.unexpected += 1
            raise AssertionError(f"unexpected LLM call #{len(self.prompts)}:\n{self.prompts[-1][:500]}")
        if isinstance(step, BaseException):
            raise step
        words = len(self.prompts[-1].split())
        return ChatResult(generations=[ChatGeneration(message=AIMessage(
            content=step,
            usage_metadata={"input_tokens": words, "output_tokens": len(step.split()), "total_tokens": words + len(step.split())},
        ))])
