"""Counting what each LLM call costs (calls, prompt tokens, completion tokens), and telling a
failed model call from a bug in the code around it.

:func:`invoke_counted` turns the errors that mean "the model call failed" into
:class:`LLMCallFailed`, which the nodes degrade to a note or a default decision. Anything else
(a ``TypeError``, ``AttributeError`` or ``KeyError`` in a wrapper, a failed assertion) is a
programming error and propagates, so that it is seen instead of becoming a canned answer.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage

from arag.llms.gguf import ModelUnavailable
from arag.llms.llamacpp import LlamaCallError


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


#: Failures of any backend: OSError covers TimeoutError, ConnectionError and socket/SSL errors
#: (and requests' errors); LlamaCallError is llama.cpp refusing or failing a call (context overflow).
CALL_ERRORS: tuple[type[BaseException], ...] = (OSError, LlamaCallError)

#: The error bases of hosted-model clients, by module. They are looked up in ``sys.modules`` only:
#: an exception of a client that was never imported cannot occur, so none is imported here
#: (openai's import alone takes about 0.4 s) and a client that is not installed needs no special case.
CLIENT_ERRORS: dict[str, tuple[str, ...]] = {
    "openai": ("APIError",),  # APIConnectionError, APITimeoutError, APIStatusError (429, 500, …)
    "anthropic": ("APIError",),
    "httpx": ("HTTPError", "StreamError"),  # transport errors, timeouts, status errors
    "httpx2": ("HTTPError", "StreamError"),  # the same, in the fork that recent openai clients use
    "ollama": ("ResponseError", "RequestError"),
}

#: Where a ValueError or RuntimeError means the server's reply was unusable rather than a bug here:
#: raised by a client library or by LangChain's model layer (a body that is not JSON, a body that
#: carries an error, a stream that ended without a chunk).
CLIENT_MODULES = ("openai", "anthropic", "ollama", "httpx", "httpx2", "httpcore", "httpcore2", "langchain_openai",
                  "langchain_anthropic", "langchain_ollama", "langchain_core.language_models")


def _client_errors() -> tuple[type[BaseException], ...]:
    found = []
    for module_name, names in CLIENT_ERRORS.items():
        module = sys.modules.get(module_name)
        found += [getattr(module, name) for name in names if module is not None and hasattr(module, name)]
    return tuple(found)


def _raised_by_client(exc: BaseException) -> bool:
    """Whether the innermost frame of ``exc``'s traceback outside the standard library is a client's."""
    owner = ""
    tb = exc.__traceback__
    while tb is not None:
        name = tb.tb_frame.f_globals.get("__name__", "")
        if name.partition(".")[0] not in sys.stdlib_module_names:
            owner = name
        tb = tb.tb_next
    return any(owner == m or owner.startswith(m + ".") for m in CLIENT_MODULES)


def is_call_failure(exc: BaseException) -> bool:
    """Whether ``exc`` means the model call failed (see :data:`CALL_ERRORS`, :data:`CLIENT_ERRORS`).

    Example:
        >>> is_call_failure(TimeoutError("read timed out")), is_call_failure(ConnectionRefusedError())
        (True, True)
        >>> is_call_failure(TypeError("unexpected keyword argument 'max_tokens'")), is_call_failure(KeyError("choices"))
        (False, False)
    """
    if isinstance(exc, ModelUnavailable):
        return False
    if isinstance(exc, CALL_ERRORS + _client_errors()):
        return True
    return isinstance(exc, (ValueError, RuntimeError)) and _raised_by_client(exc)


@contextmanager
def model_call() -> Iterator[None]:
    """Around a call into a model: a failed call (:func:`is_call_failure`) becomes
    :class:`LLMCallFailed`; ``ModelUnavailable`` and programming errors propagate unchanged.
    """
    try:
        yield
    except Exception as exc:
        if is_call_failure(exc):
            raise LLMCallFailed(exc) from exc
        raise


def invoke_counted(llm: BaseChatModel, messages: list[BaseMessage], usage: LLMUsage, **kwargs) -> AIMessage:
    """Call the model (inside :func:`model_call`) and add the call's tokens to ``usage``."""
    with model_call():
        reply = llm.invoke(messages, **kwargs)
    usage.add(reply)
    return reply
