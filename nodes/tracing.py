"""The trace event every node appends: what it decided, how long it took, what the LLM cost."""

from __future__ import annotations

import time

from llms.usage import LLMUsage


def trace_event(node: str, started: float, usage: LLMUsage | None = None, **details) -> dict:
    event = {"node": node, "ms": round((time.perf_counter() - started) * 1000, 1)}
    if usage is not None and usage.calls:
        event.update(
            llm_calls=usage.calls,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
        )
    event.update(details)
    return event
