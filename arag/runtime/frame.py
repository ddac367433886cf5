"""The frame every node runs in: per-run settings, LLM usage, and the trace event it appends.

A node body takes ``(state, run)`` and returns its partial update; :func:`node` wraps it into the
``(state, config, *, components)`` function the graph calls, timing it and adding ``trace`` (one
event: node, milliseconds, LLM calls and tokens, then what the body put in ``run.details``) and
``llm_calls``.

Example:
    >>> from arag.runtime.components import Components
    >>> @node("echo")
    ... def echo(state, run):
    ...     "Repeat the question."
    ...     run.trace(words=len(state["question"].split()))
    ...     return {"answer": state["question"]}
    >>> out = echo({"question": "hello there"}, {}, components=Components(Settings()))
    >>> out["answer"], out["llm_calls"], out["trace"][0]["node"], out["trace"][0]["words"]
    ('hello there', 0, 'echo', 2)
    >>> echo.__name__, echo.__doc__
    ('echo', 'Repeat the question.')
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable
from functools import cached_property

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import RunnableConfig
from langgraph.types import Overwrite

from arag.llms.usage import LLMUsage
from arag.runtime.components import Components
from arag.settings import Settings


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


class Run:
    """What a node body works with during one call: components, settings, usage, trace details."""

    def __init__(self, components: Components, config: RunnableConfig):
        self.components = components
        self.config = config
        self.usage = LLMUsage()
        self.details: dict = {}

    @cached_property
    def settings(self) -> Settings:
        # Resolved on first use (then kept): a bad override is then reported where the node first
        # needs its settings, after the checks it makes before, as when each node resolved its own.
        return self.components.settings.for_run(self.config)

    @property
    def llm(self) -> BaseChatModel:
        """The chat model this run's settings name."""
        return self.components.llm_for(self.settings)

    def trace(self, **details) -> None:
        """Add ``details`` to the node's trace event."""
        self.details.update(details)


Body = Callable[[dict, Run], dict]


def node(name: str, *, starts_turn: bool = False) -> Callable[[Body], Callable[..., dict]]:
    """Wrap ``body(state, run) -> update`` as the graph node ``name``.

    ``starts_turn``: the node opens a turn, so its ``notes``, ``trace`` and ``llm_calls`` replace
    the previous turn's instead of adding to them.
    """

    def wrap(body: Body) -> Callable[..., dict]:
        def frame(state: dict, config: RunnableConfig, *, components: Components) -> dict:
            started = time.perf_counter()
            run = Run(components, config)
            update = dict(body(state, run))
            trace = [trace_event(name, started, run.usage, **run.details)]
            if starts_turn:
                update["notes"] = Overwrite(update.get("notes", []))
                return {**update, "trace": Overwrite(trace), "llm_calls": Overwrite(run.usage.calls)}
            return {**update, "trace": trace, "llm_calls": run.usage.calls}

        # LangGraph reads a node's signature to decide whether to pass ``config``; it must see this
        # function's, not the body's that ``functools.wraps`` would expose through ``__wrapped__``.
        signature = inspect.signature(frame)
        functools.update_wrapper(frame, body, assigned=("__module__", "__name__", "__qualname__", "__doc__"))
        frame.__signature__ = signature
        return frame

    return wrap
