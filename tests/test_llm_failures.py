"""A failed model call degrades to a note or a default decision; a bug in the code around the
model does not: it propagates out of the node and the graph, so that it is seen.
"""

from __future__ import annotations

import httpx
import openai
import pytest
from conftest import MODELS_DIR, unavailable
from documents import write_corpus
from langchain_core.messages import HumanMessage
from pydantic import BaseModel
from scripted_llm import ScriptedChatModel

from arag.llms.gguf import ModelUnavailable
from arag.llms.llamacpp import LlamaCallError, LlamaCppChat
from arag.llms.structured import ask_json
from arag.llms.usage import LLMCallFailed, LLMUsage, invoke_counted, is_call_failure
from arag.runtime.components import Components
from graphs import build_graph

QUESTION = "Who built the first COBOL compiler?"

#: What a wrapper bug looks like: nothing a retry, a note or a default decision should hide.
BUGS = [TypeError("generate() got an unexpected keyword argument 'max_tokens'"),
        AttributeError("'NoneType' object has no attribute 'content'"), KeyError("choices")]
#: What a model that is slow, unreachable or gone looks like.
CALL_FAILURES = [TimeoutError("timed out"), ConnectionRefusedError(111, "Connection refused"),
                 ConnectionResetError("Connection reset by peer")]


@pytest.fixture
def indexed(tmp_path, settings, embedder, ingestor):
    write_corpus(tmp_path / "docs")
    ingestor.ingest([tmp_path / "docs"], progress=False)
    return settings, embedder


def ask(indexed, llm, profile="naive"):
    settings, embedder = indexed
    graph = build_graph(components=Components(settings.model_copy(update={"reflect": False}), llm=llm, embedder=embedder))
    # "agentic" here is every LLM decision on: the router's and the transforms' JSON calls first.
    every_call = {"router": "llm", "transform_when": "first", "decompose": "auto"} if profile == "agentic" else {}
    return graph.invoke({"question": QUESTION}, {"configurable": {"profile": profile, **every_call}})


@pytest.mark.parametrize("bug", BUGS, ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("profile", ["naive", "agentic"])  # the answer's call, and the decisions' (ask_json)
def test_a_bug_in_the_model_wrapper_propagates_out_of_the_graph(indexed, bug, profile):
    llm = ScriptedChatModel(script=[bug])
    with pytest.raises(type(bug)) as raised:
        ask(indexed, llm, profile)
    assert raised.value is bug and len(llm.prompts) == 1


@pytest.mark.parametrize("failure", CALL_FAILURES, ids=lambda e: type(e).__name__)
def test_a_failed_model_call_becomes_a_note_and_the_best_passages(indexed, failure):
    out = ask(indexed, ScriptedChatModel(script=[failure]))
    note = next(n for n in out["notes"] if n.startswith("the language model failed"))
    assert type(failure).__name__ in note
    assert out["answer"].startswith("The language model could not write an answer") and out["citations"]


def test_failing_decisions_take_their_defaults_and_the_run_finishes(indexed):
    # Every call of the agentic profile fails: each decision falls back to its default and the
    # answer to the note, without an exception.
    llm = ScriptedChatModel(script=[ConnectionRefusedError(111, "Connection refused") for _ in range(40)])
    out = ask(indexed, llm, "agentic")
    assert llm.script and out["answer"] and any("ConnectionRefusedError" in n for n in out["notes"])


class Verdict(BaseModel):
    relevant: bool


def test_ask_json_defaults_on_a_failed_call_and_lets_a_bug_through():
    default = Verdict(relevant=False)
    value, status = ask_json(ScriptedChatModel(script=[TimeoutError("read timed out")]), "Relevant?", Verdict, LLMUsage(),
                             default=default)
    assert value is default and status == "default: TimeoutError: read timed out"
    with pytest.raises(KeyError):
        ask_json(ScriptedChatModel(script=[KeyError("choices")]), "Relevant?", Verdict, LLMUsage(), default=default)
    # A missing model is a misconfiguration, not a failed call: it is not hidden either.
    with pytest.raises(ModelUnavailable):
        ask_json(ScriptedChatModel(script=[ModelUnavailable("no such file")]), "Relevant?", Verdict, LLMUsage(), default=default)


def test_which_errors_count_as_a_failed_call():
    request = httpx.Request("POST", "http://127.0.0.1:9/v1/chat/completions")
    status = openai.RateLimitError("Rate limit reached", response=httpx.Response(429, request=request), body=None)
    assert is_call_failure(openai.APITimeoutError(request=request)) and is_call_failure(status)
    assert is_call_failure(httpx.ReadTimeout("timed out", request=request)) and is_call_failure(OSError("network down"))
    assert is_call_failure(LlamaCallError("llama.cpp failed"))
    # A body that is not JSON: the ValueError comes from the client reading the reply.
    with pytest.raises(ValueError) as garbled:
        httpx.Response(200, content=b'{"choices": [', request=request).json()
    assert is_call_failure(garbled.value)

    # The same ValueError raised by this project's own code is a bug.
    def own_code():
        raise ValueError("bad schema")

    with pytest.raises(ValueError) as ours:
        own_code()
    assert not is_call_failure(ours.value)
    assert not is_call_failure(ModelUnavailable("missing")) and not is_call_failure(RuntimeError("assembly went wrong"))


def test_llama_cpp_refusing_a_long_prompt_is_a_failed_call_not_a_bug():
    model = MODELS_DIR / "local-270m.gguf"
    if not model.exists():
        unavailable(f"{model.name} is not assembled (make install does it)")
    chat = LlamaCppChat(model_path=str(model), n_ctx=128, chat_template=False, max_tokens=4)
    with pytest.raises(LLMCallFailed, match="LlamaCallError: .*exceed context window") as failed:
        invoke_counted(chat, [HumanMessage("lighthouse " * 400)], LLMUsage())
    assert isinstance(failed.value.__cause__, LlamaCallError)
    assert isinstance(failed.value.__cause__.__cause__, ValueError)  # what llama-cpp-python raises
