"""`arag serve`: the official ``openai`` client against the OpenAI-compatible API over real HTTP.

The server runs in this process on a free 127.0.0.1 port (uvicorn, stopped by the test) over a
real small corpus and embedder; the chat model is scripted, so the answers and the timing of
tokens are known.
"""

from __future__ import annotations

import contextlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import openai
import pytest
import uvicorn
from documents import write_corpus
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import Field
from servers import free_port

from arag.runtime.components import Components
from arag.serving.openai_api import create_app
from arag.sessions.checkpoints import open_checkpointer, open_thread_store

COBOL = "Who built the first COBOL compiler?"


class WordModel(BaseChatModel):
    """Answers with ``answer`` (or, for a prompt that holds a key of ``by_marker``, its value), one word a
    token, ``delay`` seconds apart. Records the prompts, and how many tokens each streamed answer got out.
    """

    answer: str = "Grace Hopper led the team that built the first COBOL compiler [1]."
    by_marker: dict[str, str] = Field(default_factory=dict)
    delay: float = 0.0
    prompts: list[str] = Field(default_factory=list)
    streamed: list[int] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "words"

    def _reply(self, messages) -> str:
        prompt = "\n".join(str(m.content) for m in messages)
        self.prompts.append(prompt)
        return next((reply for marker, reply in self.by_marker.items() if marker in prompt), self.answer)

    def _generate(self, messages, stop=None, run_manager=None, **kwargs: Any) -> ChatResult:
        text = self._reply(messages)
        message = AIMessage(content=text, usage_metadata={"input_tokens": 100, "output_tokens": len(text.split()),
                                                          "total_tokens": 100 + len(text.split())})
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(self, messages, stop=None, run_manager=None, **kwargs: Any):
        words = self._reply(messages).split(" ")
        self.streamed.append(0)
        for i, word in enumerate(words):
            time.sleep(self.delay)
            piece = word if i == 0 else f" {word}"
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=piece))
            if run_manager:
                run_manager.on_llm_new_token(piece, chunk=chunk)  # a cancelled request raises here
            self.streamed[-1] += 1
            yield chunk
        yield ChatGenerationChunk(message=AIMessageChunk(content="", usage_metadata={
            "input_tokens": 100, "output_tokens": len(words), "total_tokens": 100 + len(words)}))


@contextlib.contextmanager
def serving(settings, embedder, llm, **options):
    """The API on a free loopback port, in a thread of this process; yields its base URL, then stops it."""
    components = Components(settings, llm=llm, embedder=embedder)
    app = create_app(components, checkpointer=open_checkpointer(settings), thread_store=open_thread_store(settings),
                     **options)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the API server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


@pytest.fixture
def indexed(tmp_path, settings, embedder, ingestor):
    write_corpus(tmp_path / "docs")
    ingestor.ingest([tmp_path / "docs"], progress=False)
    return settings


def client(url: str, key: str = "none", **options) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, **options)


def test_models_list_the_profiles_and_health_answers(indexed, embedder):
    with serving(indexed, embedder, WordModel()) as url:
        assert [m.id for m in client(url).models.list()] == ["arag-default", "arag-naive", "arag-fast", "arag-agentic"]
        assert httpx.get(f"{url}/health").json()["status"] == "ok"


def test_answer_carries_citations_sources_and_real_usage(indexed, embedder):
    with serving(indexed, embedder, WordModel()) as url:
        reply = client(url).chat.completions.create(model="arag-default", messages=[{"role": "user", "content": COBOL}])
    content = reply.choices[0].message.content
    answer, _, sources = content.partition("\n\nSources:\n")
    assert answer == "Grace Hopper led the team that built the first COBOL compiler [1]."
    extra = reply.model_extra["arag"]
    assert extra["citations"][0]["n"] == 1 and extra["citations"][0]["title"] in sources.splitlines()[0]
    assert [e["node"] for e in extra["trace"]][:2] == ["contextualize", "route"]
    # What the scripted model reported: 100 prompt tokens, one completion token a word.
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (100, len(answer.split()))
    assert reply.choices[0].finish_reason == "stop" and reply.model == "arag-default"


def test_streamed_answer_arrives_token_by_token_and_matches_the_whole(indexed, embedder):
    with serving(indexed, embedder, WordModel()) as url:
        api = client(url)
        whole = api.chat.completions.create(model="arag-default", messages=[{"role": "user", "content": COBOL}])
        stream = api.chat.completions.create(model="arag-default", messages=[{"role": "user", "content": COBOL}],
                                             stream=True, stream_options={"include_usage": True})
        chunks = list(stream)
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) > 5  # one a word, not one block
    assert "".join(pieces) == whole.choices[0].message.content
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop" and last.usage.prompt_tokens == 100
    assert last.model_extra["arag"]["citations"][0]["n"] == 1


def test_a_thread_remembers_its_earlier_turn(indexed, embedder):
    # The follow-up refers back ("she"), so it is rewritten from the thread's history before retrieval.
    llm = WordModel(by_marker={"Rewritten question:": "What else did Grace Hopper build?"})
    with serving(indexed, embedder, llm) as url:
        api = client(url)
        api.chat.completions.create(model="arag-default", user="t-1", messages=[{"role": "user", "content": COBOL}])
        follow = api.chat.completions.create(model="arag-default", user="t-1",
                                             messages=[{"role": "user", "content": "What else did she build?"}])
        fresh = api.chat.completions.create(model="arag-default", user="t-2",
                                            messages=[{"role": "user", "content": "What else did she build?"}])
    rewrite = next(p for p in llm.prompts if "Rewritten question:" in p)
    assert COBOL in rewrite and "What else did she build?" in rewrite
    assert follow.model_extra["arag"]["thread"] == "t-1"
    assert next(e for e in follow.model_extra["arag"]["trace"] if e["node"] == "contextualize")["reason"] != "no history"
    assert next(e for e in fresh.model_extra["arag"]["trace"] if e["node"] == "contextualize")["reason"] == "no history"


def test_history_sent_in_the_messages_serves_a_client_without_threads(indexed, embedder):
    llm = WordModel(by_marker={"Rewritten question:": "What else did Grace Hopper build?"})
    with serving(indexed, embedder, llm) as url:
        client(url).chat.completions.create(model="arag-default", messages=[
            {"role": "user", "content": COBOL}, {"role": "assistant", "content": "Grace Hopper [1]."},
            {"role": "user", "content": "What else did she build?"}])
    assert any("Grace Hopper [1]." in p and "Rewritten question:" in p for p in llm.prompts)


def test_a_wrong_key_is_refused_and_the_right_one_served(indexed, embedder):
    with serving(indexed, embedder, WordModel(), api_key="s3cret") as url:
        with pytest.raises(openai.AuthenticationError):
            client(url, key="wrong").models.list()
        with pytest.raises(openai.AuthenticationError):
            client(url, key="wrong").chat.completions.create(model="arag-default",
                                                             messages=[{"role": "user", "content": COBOL}])
        assert len(client(url, key="s3cret").models.list().data) == 4


def test_unknown_model_and_bad_messages_get_clear_errors(indexed, embedder):
    with serving(indexed, embedder, WordModel()) as url:
        with pytest.raises(openai.NotFoundError, match="arag-default"):
            client(url).chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": COBOL}])
        with pytest.raises(openai.BadRequestError, match="last message must be a user message"):
            client(url).chat.completions.create(model="arag-default", messages=[{"role": "assistant", "content": "hi"}])


def test_a_full_queue_is_answered_429_with_retry_after(indexed, embedder):
    llm = WordModel(delay=0.05)
    with serving(indexed, embedder, llm, queue_size=1) as url:
        body = {"model": "arag-default", "messages": [{"role": "user", "content": COBOL}]}
        with ThreadPoolExecutor(2) as pool:
            busy = [pool.submit(httpx.post, f"{url}/v1/chat/completions", json=body, timeout=60) for _ in range(2)]
            deadline = time.monotonic() + 20
            while httpx.get(f"{url}/health").json()["waiting"] < 1:  # one running, one waiting
                assert time.monotonic() < deadline
                time.sleep(0.05)
            refused = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=60)
            assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
            assert refused.json()["error"]["code"] == "queue_full"
            assert all(f.result().status_code == 200 for f in busy)


def test_a_cancelled_stream_frees_the_model(indexed, embedder):
    # 400 words, 8 s if nobody stops it; the second question gets a short answer.
    llm = WordModel(answer=" ".join(["word"] * 400), delay=0.02, by_marker={"second question": "Short [1]."})
    with serving(indexed, embedder, llm) as url:
        started = time.monotonic()
        stream = client(url).chat.completions.create(model="arag-default", stream=True,
                                                     messages=[{"role": "user", "content": COBOL}])
        got = 0
        for chunk in stream:
            got += bool(chunk.choices and chunk.choices[0].delta.content)
            if got == 5:
                break
        stream.close()
        after = client(url).chat.completions.create(
            model="arag-default", messages=[{"role": "user", "content": "Who built the COBOL compiler, second question?"}])
        waited = time.monotonic() - started
    assert after.choices[0].message.content.startswith("Short [1].")
    # The first answer stopped within a few tokens of the close, and the model was free for the next.
    assert llm.streamed[0] < 50 and waited < 6


def test_twenty_clients_at_once_get_their_own_answers(indexed, embedder):
    questions = {f"t-{i}": f"Who built the first COBOL compiler, question {i}?" for i in range(20)}
    llm = WordModel(by_marker={q: f"Answer {tid} [1]." for tid, q in questions.items()})
    with serving(indexed, embedder, llm, queue_size=32) as url:
        api = client(url, timeout=120)

        def ask(item):
            tid, question = item
            reply = api.chat.completions.create(model="arag-default", user=tid, messages=[{"role": "user", "content": question}])
            return tid, reply

        with ThreadPoolExecutor(20) as pool:
            replies = list(pool.map(ask, questions.items()))
    for tid, reply in replies:
        assert reply.choices[0].message.content.startswith(f"Answer {tid} [1].")
        assert reply.model_extra["arag"]["thread"] == tid


def test_serve_refuses_to_listen_beyond_loopback_without_a_key(tmp_path):
    import subprocess
    import sys

    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "ARAG_DATA_DIR": str(tmp_path / "data")}
    out = subprocess.run([sys.executable, "-m", "arag", "serve", "--host", "0.0.0.0"], capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.returncode == 2 and "set an API key" in out.stderr
