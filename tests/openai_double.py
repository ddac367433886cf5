"""A local stand-in for an OpenAI-compatible chat server, so hosted LLMs are tested over real HTTP.

:class:`OpenAIDouble` serves ``POST /v1/chat/completions`` on 127.0.0.1, plain and streamed
(server-sent events), with usage counts. ``reply`` decides the text from the request (a
string, or a function of the request body); ``mode`` switches to the failures a hosted model
shows: HTTP 429 and 500, a malformed body, an empty answer, or a slow one (a timeout).

Example:
    >>> from langchain_openai import ChatOpenAI
    >>> with OpenAIDouble(reply="Paris [1].") as llm:
    ...     model = ChatOpenAI(base_url=llm.url + "/v1", api_key="sk-test", model="double")
    ...     model.invoke("Where?").content
    'Paris [1].'
"""

from __future__ import annotations

import json
from collections.abc import Callable

from http_double import HTTPDouble, ReceivedRequest, Reply

MODES = ("normal", "slow", "429", "500", "malformed", "empty")


class OpenAIDouble(HTTPDouble):
    MODES = MODES
    name = "openai-double"

    def __init__(self, reply: str | Callable[[dict], str] = "The sources say so [1].", slow_s: float = 5.0,
                 failures_before_success: int = 0):
        super().__init__(slow_s)
        self.reply = reply
        #: In a failure mode, answer normally once this many requests have failed (tests retries).
        self.failures_before_success = failures_before_success
        self.failed = 0

    def chat_requests(self) -> list[ReceivedRequest]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def answer(self, request: ReceivedRequest) -> Reply:
        if not request.path.endswith("/chat/completions"):
            return Reply(404, {"error": {"message": "Not Found", "type": "invalid_request_error"}})
        body = request.body if isinstance(request.body, dict) else {}
        mode = self.mode
        if mode not in ("normal", "slow") and self.failures_before_success and self.failed >= self.failures_before_success:
            mode = "normal"
        if mode == "429":
            self.failed += 1
            return Reply(429, {"error": {"message": "Rate limit reached for requests", "type": "requests", "code": "rate_limit_exceeded"}})
        if mode == "500":
            self.failed += 1
            return Reply(500, {"error": {"message": "The server had an error", "type": "server_error"}})
        if mode == "malformed":
            self.failed += 1
            return Reply(200, raw=b'{"id": "x", "choices": [{"message": ')
        text = "" if mode == "empty" else (self.reply(body) if callable(self.reply) else self.reply)
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(text.split()),
                 "total_tokens": prompt_tokens + len(text.split())}
        model = body.get("model", "double")
        if body.get("stream"):
            def event(delta: dict, finish=None, with_usage=False) -> bytes:
                chunk = {"id": "chatcmpl-double", "object": "chat.completion.chunk", "created": 0, "model": model,
                         "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
                if with_usage:
                    chunk["usage"] = usage
                return f"data: {json.dumps(chunk)}\n\n".encode()

            words = text.split(" ")
            chunks = [event({"role": "assistant", "content": ""})]
            chunks += [event({"content": w if i == 0 else " " + w}) for i, w in enumerate(words) if text]
            chunks += [event({}, "stop", with_usage=True), b"data: [DONE]\n\n"]
            return Reply(200, content_type="text/event-stream", chunks=chunks)
        return Reply(200, {
            "id": "chatcmpl-double", "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": usage,
        })
