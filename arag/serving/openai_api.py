"""``arag serve``: the graph behind an OpenAI-compatible chat API, for the chat clients people already use.

Open WebUI, LibreChat, IDE assistants and the official ``openai`` client speak this API:

- ``GET /v1/models`` lists the profiles as models: ``arag-default`` (the shipped settings),
  ``arag-naive``, ``arag-fast``, ``arag-agentic``;
- ``POST /v1/chat/completions``, streamed as server-sent events or not: the last user message is
  the question; a thread (the ``user`` field, or the ``X-Arag-Thread`` header) keeps the
  conversation on the server, otherwise the earlier messages are the history. The answer carries
  its ``[n]`` markers and a sources block in ``content``, and the citations, notes and trace in an
  extra ``arag`` field that clients may ignore. ``usage`` counts the tokens the model really read
  and wrote;
- ``GET /health``.

One local model serves one question at a time: requests wait their turn in a bounded queue, and
past it are answered 429 with ``Retry-After``. A client that goes away stops its question: the
model's next token raises, the graph ends the turn, and the model is free for the next request.
A bearer key (``--api-key`` or ``ARAG_API_KEY``) is checked when set, and is required to listen
on anything but loopback.

Example (a scripted model, no server started):
    >>> from starlette.testclient import TestClient
    >>> from langchain_core.language_models import FakeListChatModel
    >>> from arag.runtime.components import Components
    >>> from arag.settings import Settings
    >>> app = create_app(Components(Settings(), llm=FakeListChatModel(responses=["hi"])))
    >>> [m["id"] for m in TestClient(app).get("/v1/models").json()["data"]]
    ['arag-default', 'arag-naive', 'arag-fast', 'arag-agentic']
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from langchain_core.callbacks import BaseCallbackHandler
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from arag.runtime.components import Components
from arag.sessions.conversations import stream_turn
from arag.text import citation_name
from graphs import build_graph

#: Model ids and the profile each runs (None: the settings as they are).
MODELS = {"arag-default": None, "arag-naive": "naive", "arag-fast": "fast", "arag-agentic": "agentic"}
THREAD_HEADER = "x-arag-thread"
#: Seconds a client told to retry waits: about one answer of the default model on two cores.
RETRY_AFTER_S = 10
#: How often a non-streamed request checks whether its client is still there.
DISCONNECT_POLL_S = 0.25


class Cancelled(RuntimeError):
    """The client went away; raised from the model's token callback to stop the generation."""


class _CancelOnToken(BaseCallbackHandler):
    """Raises at the model's next token (or call) once ``event`` is set."""

    raise_error = True

    def __init__(self, event: threading.Event):
        self.event = event

    def _check(self, *args, **kwargs) -> None:
        if self.event.is_set():
            raise Cancelled("the client disconnected")

    on_llm_new_token = _check
    on_chat_model_start = _check


@dataclass
class ModelQueue:
    """At most one question on the model, at most ``size`` waiting; ``admit`` refuses the rest."""

    size: int
    waiting: int = 0
    running: int = 0
    served: int = 0
    _turn: asyncio.Lock = field(default_factory=asyncio.Lock)

    def full(self) -> bool:
        return self.waiting + self.running >= 1 + self.size

    async def __aenter__(self):
        self.waiting += 1
        try:
            await self._turn.acquire()
        finally:
            self.waiting -= 1
        self.running += 1
        return self

    async def __aexit__(self, *exc) -> None:
        self.running -= 1
        self.served += 1
        self._turn.release()


def _error(status: int, message: str, kind: str, code: str | None = None, headers: dict | None = None) -> JSONResponse:
    # OpenAI's error shape, so clients show the message.
    return JSONResponse({"error": {"message": message, "type": kind, "code": code}}, status_code=status, headers=headers)


def _history(messages: list[dict]) -> list[dict]:
    """The earlier user/assistant exchanges as the graph's turns."""
    turns, question = [], None
    for message in messages:
        role, content = message.get("role"), _text(message.get("content"))
        if role == "user":
            question = content
        elif role == "assistant" and question is not None:
            turns.append({"question": question, "answer": content})
            question = None
    return turns


def _text(content) -> str:
    """A message's text: a string, or the text parts of a list of content parts."""
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
    return str(content or "")


def sources_block(citations: list[dict]) -> str:
    """The "Sources:" lines appended to an answer: ``[n] title — section — source``, as ``arag ask`` prints them."""
    if not citations:
        return ""
    lines = [f"[{c['n']}] {citation_name(c) or c.get('source', '')}" + (f" — {c['source']}" if c.get("source") else "")
             for c in citations]
    return "\n\nSources:\n" + "\n".join(lines)


def usage_of(result: dict) -> dict:
    """Prompt and completion tokens the model read and wrote in this turn, summed over its calls."""
    prompt = sum(int(e.get("prompt_tokens") or 0) for e in result.get("trace", []))
    completion = sum(int(e.get("completion_tokens") or 0) for e in result.get("trace", []))
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _extra(result: dict) -> dict:
    return {key: result.get(key) for key in ("citations", "notes", "trace", "thread", "llm_calls", "seconds", "route")}


class ChatService:
    """Runs chat requests through the graph: one graph for threads (with a checkpointer), one without."""

    def __init__(self, components: Components, checkpointer=None, thread_store=None):
        self.components = components
        self.stateless = build_graph(components=components)
        self.threaded = build_graph(components=components, checkpointer=checkpointer) if checkpointer else None
        self.thread_store = thread_store

    def turn(self, question: str, history: list[dict], profile: str | None, thread: str | None,
             cancel: threading.Event, on_token: Callable[[str], None] | None = None) -> dict:
        """Answer one question (blocking); ``on_token`` receives the answer's tokens as they come."""
        configurable: dict = {}
        if profile:
            configurable["profile"] = profile
        config: dict = {"configurable": configurable, "callbacks": [_CancelOnToken(cancel)]}
        graph, inputs = self.stateless, {"history": history}
        if thread and self.threaded is not None:
            configurable["thread_id"] = thread
            graph, inputs = self.threaded, {}
        result: dict = {}
        try:
            # Tokens are streamed even when nobody reads them: the cancel check runs at each one.
            for kind, payload in stream_turn(graph, question, config, stream_tokens=True, inputs=inputs):
                if kind == "token" and on_token is not None:
                    on_token(payload)
                elif kind == "result":
                    result = payload
        except Cancelled:
            return {"answer": "", "citations": [], "notes": ["cancelled: the client disconnected"], "trace": []}
        if thread and self.thread_store is not None:
            self.thread_store.add_turn(thread, result)
        return result


def create_app(components: Components, *, api_key: str | None = None, queue_size: int = 16, checkpointer=None,
               thread_store=None) -> Starlette:
    """The Starlette application: ``uvicorn.run(create_app(Components(Settings())))`` serves it."""
    service = ChatService(components, checkpointer, thread_store)
    queue = ModelQueue(queue_size)

    def authorised(request: Request) -> bool:
        return api_key is None or request.headers.get("authorization", "") == f"Bearer {api_key}"

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "waiting": queue.waiting, "running": queue.running, "served": queue.served})

    async def models(request: Request) -> Response:
        if not authorised(request):
            return _error(401, "invalid or missing API key", "authentication_error", "invalid_api_key")
        created = int(time.time())
        return JSONResponse({"object": "list", "data": [
            {"id": name, "object": "model", "created": created, "owned_by": "arag"} for name in MODELS]})

    async def chat(request: Request) -> Response:
        if not authorised(request):
            return _error(401, "invalid or missing API key", "authentication_error", "invalid_api_key")
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "the request body is not JSON", "invalid_request_error")
        model = body.get("model") or "arag-default"
        if model not in MODELS:
            return _error(404, f"model {model!r} does not exist; use one of {', '.join(MODELS)}", "invalid_request_error",
                          "model_not_found")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return _error(400, "messages must be a non-empty list", "invalid_request_error")
        last = messages[-1] if isinstance(messages[-1], dict) else {}
        question = _text(last.get("content")).strip()
        if last.get("role") != "user" or not question:
            return _error(400, "the last message must be a user message with text", "invalid_request_error")
        thread = request.headers.get(THREAD_HEADER) or body.get("user") or None
        if queue.full():
            return _error(429, "the local model is busy and the queue is full; retry later", "rate_limit_error",
                          "queue_full", headers={"Retry-After": str(RETRY_AFTER_S)})
        history = _history(messages[:-1])
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())
        cancel = threading.Event()
        if body.get("stream"):
            return StreamingResponse(
                _stream(service, queue, request, question, history, MODELS[model], thread, cancel, completion_id,
                        created, model, bool((body.get("stream_options") or {}).get("include_usage"))),
                media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        async with queue:
            work = asyncio.create_task(asyncio.to_thread(service.turn, question, history, MODELS[model], thread, cancel))
            while not work.done():
                await asyncio.wait({work}, timeout=DISCONNECT_POLL_S)
                if not work.done() and await request.is_disconnected():
                    cancel.set()
            result = await work
        content = result.get("answer", "") + sources_block(result.get("citations", []))
        return JSONResponse({
            "id": completion_id, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": usage_of(result), "arag": _extra(result)})

    return Starlette(routes=[Route("/health", health), Route("/v1/models", models),
                             Route("/v1/chat/completions", chat, methods=["POST"])])


def _chunk(completion_id: str, created: int, model: str, delta: dict, finish: str | None = None, **extra) -> str:
    payload = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


async def _stream(service: ChatService, queue: ModelQueue, request: Request, question: str, history: list[dict],
                  profile: str | None, thread: str | None, cancel: threading.Event, completion_id: str, created: int,
                  model: str, include_usage: bool) -> AsyncIterator[str]:
    """Server-sent events: the role, the answer's tokens as the model writes them, what the final answer adds
    (its attributed citations and the sources block), then ``[DONE]``. A client that leaves stops the model.
    """
    loop = asyncio.get_running_loop()
    tokens: asyncio.Queue = asyncio.Queue()
    try:
        async with queue:
            yield _chunk(completion_id, created, model, {"role": "assistant", "content": ""})
            work = asyncio.create_task(asyncio.to_thread(
                service.turn, question, history, profile, thread, cancel,
                lambda token: loop.call_soon_threadsafe(tokens.put_nowait, token)))
            streamed, getter = "", None
            while True:
                # The server may go on accepting writes to a closed connection, so ask whether the client is there.
                if await request.is_disconnected():
                    cancel.set()
                    await asyncio.wait({work})  # the model stops at its next token; the queue's turn ends after it
                    return
                getter = getter or asyncio.ensure_future(tokens.get())
                done, _ = await asyncio.wait({getter, work}, timeout=DISCONNECT_POLL_S,
                                             return_when=asyncio.FIRST_COMPLETED)
                if getter in done:
                    token, getter = getter.result(), None
                    streamed += token
                    yield _chunk(completion_id, created, model, {"content": token})
                elif work.done():  # the turn ended: what is left in the queue, then the end
                    getter.cancel()
                    while not tokens.empty():
                        token = tokens.get_nowait()
                        streamed += token
                        yield _chunk(completion_id, created, model, {"content": token})
                    break
            result = await work
    except BaseException:
        # The client went away (the response is cancelled): stop the model at its next token.
        cancel.set()
        raise
    answer = result.get("answer", "")
    # The final answer may differ from the tokens streamed: citations attributed afterwards, a regeneration.
    rest = answer[len(streamed):] if answer.startswith(streamed) else ("\n\n" + answer if streamed else answer)
    yield _chunk(completion_id, created, model, {"content": rest + sources_block(result.get("citations", []))})
    extra = {"arag": _extra(result)}
    if include_usage:
        extra["usage"] = usage_of(result)
    yield _chunk(completion_id, created, model, {}, "stop", **extra)
    yield "data: [DONE]\n\n"


__all__ = ["MODELS", "ChatService", "ModelQueue", "create_app", "sources_block", "usage_of"]
