"""llama.cpp's weight repacking: decided by the kernels llama.cpp was built with unless set, and passed to the load."""

from __future__ import annotations

import logging

import pytest
from conftest import MODELS_DIR

from arag.llms import factory
from arag.llms.llamacpp import llama_cpp_kernels, repack_pays_here
from arag.runtime.components import Components
from arag.settings import Settings


def test_weights_are_repacked_only_where_llama_cpp_has_no_avx512_kernels():
    assert repack_pays_here(["AVX2"]) is True
    assert repack_pays_here(["AVX2", "AVX512", "AVX512_VNNI"]) is False
    assert repack_pays_here([]) is True  # nothing known: llama.cpp's own default
    assert repack_pays_here(["AVX2", "AVX512", "AVX512_VNNI", "AMX_INT8"]) is True  # AMX reads the repacked weights
    built = llama_cpp_kernels()
    assert repack_pays_here() is ("AVX512" not in built or "AMX_INT8" in built)  # the installed build's


@pytest.mark.parametrize(("setting", "repack"), [("auto", None), ("on", True), ("off", False)])
def test_the_setting_reaches_the_chat_model_and_auto_is_decided_at_load(setting, repack, monkeypatch):
    monkeypatch.setattr(factory, "local_model_file", lambda name, settings, progress=True: ("/models/x.gguf", None))
    chat = factory.make_chat_model(Settings(llm="llamacpp:local-0.5b", llm_repack=setting))
    assert chat.repack is repack


def test_a_configuration_that_changes_how_the_model_loads_gets_its_own_chat_model(monkeypatch, tmp_path):
    monkeypatch.setattr(factory, "local_model_file", lambda name, settings, progress=True: ("/models/x.gguf", None))
    base = Settings(data_dir=tmp_path, llm="llamacpp:local-0.5b")
    components = Components(base)
    default = components.llm_for(base)
    assert components.llm_for(base.model_copy()) is default
    unpacked = components.llm_for(base.model_copy(update={"llm_repack": "off"}))
    quantised_cache = components.llm_for(base.model_copy(update={"llm_kv_cache": "q8_0"}))
    assert unpacked is not default and unpacked.repack is False
    assert quantised_cache is not default and quantised_cache.kv_cache == "q8_0"


@pytest.mark.parametrize("repack", [True, False])
def test_llama_cpp_loads_the_weights_as_told(repack, caplog):
    from arag.llms.llamacpp import LlamaCppChat

    model = MODELS_DIR / "local-0.5b.gguf"
    if not model.exists():
        pytest.skip("local-0.5b is not assembled (make install does it)")
    # A context size of its own (each case too), so that the model loads here rather than being found loaded.
    n_ctx = 704 if repack else 768
    chat = LlamaCppChat(model_path=str(model), n_ctx=n_ctx, repack=repack)
    with caplog.at_level(logging.DEBUG, logger="arag.llamacpp"):
        chat._llama()
    load_log = "\n".join(r.getMessage() for r in caplog.records if r.name == "arag.llamacpp")
    assert "model buffer size" in load_log  # llama.cpp's load was heard
    # Its Q4_K matrices go into the interleaved layout on any x86-64 CPU with AVX2 when repacking is on.
    assert ("CPU_REPACK model buffer" in load_log) is repack
    assert chat.invoke("Say yes.", max_tokens=2).content.strip()
    # Left to llama.cpp's build, the same parameters load (or find) the model repack_pays_here asks for.
    decided = LlamaCppChat(model_path=str(model), n_ctx=n_ctx, repack=None)
    assert (decided._llama()[0] is chat._llama()[0]) is (repack_pays_here() is repack)
