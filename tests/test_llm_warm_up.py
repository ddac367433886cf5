"""Warming the local model before the first answer: loaded, and the answer prompt's fixed start read ahead."""

from __future__ import annotations

import pytest
from conftest import MODELS_DIR
from langchain_core.messages import HumanMessage, SystemMessage
from scripted_llm import ScriptedChatModel

from arag.runtime.components import Components
from arag.settings import Settings
from graphs import warm_up_in_background
from nodes.generate import SYSTEM_PROMPT, answer_prefix


@pytest.mark.parametrize("preset", ["local-0.5b", "local-270m"])  # chat template, and a base model's plain prompt
def test_a_warmed_prefix_is_not_evaluated_again_and_the_reply_is_unchanged(preset, monkeypatch):
    from arag.llms.factory import make_chat_model
    from arag.llms.llamacpp import forget_prompt_caches

    if not (MODELS_DIR / f"{preset}.gguf").exists():
        pytest.skip(f"{preset} is not assembled (make install does it)")
    chat = make_chat_model(Settings(llm=f"llamacpp:{preset}", models_dir=MODELS_DIR, llm_context_tokens=1024), progress=False)
    prefix = [SystemMessage("You answer questions about lighthouses from the notes you are given, in a few words.")]
    prompt = [*prefix, HumanMessage("Notes: The Harbour Lighthouse was designed by Mara Olsen.\nWho designed it?")]
    cold = chat.invoke(prompt, max_tokens=8)

    forget_prompt_caches()
    chat.warm_up(prefix)
    llama, _ = chat._llama()
    prefix_tokens = len(chat._prompt_tokens(llama, prefix, reply_follows=False))
    evaluated: list[int] = []
    evaluate = llama.eval
    monkeypatch.setattr(llama, "eval", lambda tokens: (evaluated.append(len(tokens)), evaluate(tokens))[1])
    warm = chat.invoke(prompt, max_tokens=8)

    assert warm.content == cold.content
    prompt_tokens = warm.usage_metadata["input_tokens"]
    # The first evaluation is the prompt: all of it but the warmed prefix (a token may re-split at the seam).
    assert prefix_tokens > 10 and evaluated[0] <= prompt_tokens - prefix_tokens + 1

    # A warm-up that finds the model already used (an answer took the lock first) reads nothing.
    evaluated.clear()
    chat.warm_up(prefix)
    assert evaluated == []


def test_a_model_loading_in_the_background_leaves_the_programs_output_alone(capfd):
    import os
    import threading
    import time

    from arag.llms.factory import make_chat_model

    if not (MODELS_DIR / "local-270m.gguf").exists():
        pytest.skip("local-270m is not assembled (make install does it)")
    # A context size of its own, so that this test loads the model rather than finding it loaded.
    chat = make_chat_model(Settings(llm="llamacpp:local-270m", models_dir=MODELS_DIR, llm_context_tokens=640), progress=False)
    loading = threading.Thread(target=chat.warm_up)
    loading.start()
    written = 0
    while loading.is_alive() or written == 0:
        os.write(1, b"x")
        os.write(2, b"y")
        written += 1
        time.sleep(0.005)
    loading.join()
    out, err = capfd.readouterr()
    assert out.count("x") == written and err.count("y") == written


def test_warming_in_the_background_reads_the_answer_prompts_system_message(tmp_path):
    class WarmableModel(ScriptedChatModel):
        def warm_up(self, prefix):
            warmed.append(prefix)

    warmed: list = []
    components = Components(Settings(data_dir=tmp_path), llm=WarmableModel(default="unused"))
    thread = warm_up_in_background(components)
    thread.join(timeout=10)
    assert [m.content for m in warmed[0]] == [SYSTEM_PROMPT]
    assert answer_prefix("short") == [] and answer_prefix("standard") == []


def test_a_model_with_nothing_to_warm_starts_no_thread(tmp_path):
    components = Components(Settings(data_dir=tmp_path), llm=ScriptedChatModel(default="unused"))
    assert warm_up_in_background(components) is None


def test_a_model_that_cannot_be_made_is_left_to_the_answer_to_report(tmp_path):
    components = Components(Settings(data_dir=tmp_path, llm="llamacpp:/nowhere/model.gguf"))
    assert warm_up_in_background(components) is None


def test_the_web_app_and_both_servers_start_warming_the_model_before_their_first_question(tmp_path, monkeypatch):
    import uvicorn

    import arag.serving.mcp_server as mcp_server
    import graphs
    from arag.cli import main
    from ui import shell

    warmed: list[Components] = []
    monkeypatch.setattr(graphs, "warm_up_in_background", warmed.append)
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: None)

    class Server:
        def run(self, transport, **options):
            pass

    monkeypatch.setattr(mcp_server, "build_server", lambda components: Server())
    monkeypatch.setenv("ARAG_DATA_DIR", str(tmp_path))
    assert main(["serve", "--port", "0"]) == 0
    assert main(["mcp"]) == 0
    shell._build.clear()
    shell._build(Settings(data_dir=tmp_path).model_dump_json())
    assert len(warmed) == 3 and all(isinstance(c, Components) for c in warmed)
