"""Components shares one chat model between runs whose ``CHAT_MODEL_SETTINGS`` agree, so the list
must name every setting the factory reads: one it missed would let an evaluation's configuration
that changes it silently answer with a model made for another.
"""

from __future__ import annotations

import pytest

from arag.llms import factory
from arag.llms.gguf import ModelUnavailable
from arag.settings import Settings


class ReadRecorder:
    """Stands in for a Settings object and notes which fields are read, through its properties too."""

    def __init__(self, settings: Settings):
        self._settings = settings
        self.read: set[str] = set()

    def __getattr__(self, name: str):
        derived = getattr(type(self._settings), name, None)
        if isinstance(derived, property):  # e.g. models_path: the fields it is made from are what count
            return derived.fget(self)
        self.read.add(name)
        return getattr(self._settings, name)


def settings_read_for(spec: str, settings: Settings) -> set[str]:
    recorder = ReadRecorder(settings.model_copy(update={"llm": spec}))
    try:
        factory.make_chat_model(recorder, progress=False)  # type: ignore[arg-type]
    except ModelUnavailable:  # a provider whose package is not installed: what it read still counts
        pass
    return recorder.read


@pytest.mark.parametrize("spec", ["local-1.5b", "llamacpp:{gguf}", "openai:gpt-4o-mini", "anthropic:claude-x",
                                  "ollama:llama3"])
def test_the_shared_model_key_names_every_setting_the_factory_reads(spec, tmp_path, monkeypatch):
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")  # only its path is read until the first call
    # A preset is found (or assembled) where the settings say; here it is "found" without assembling it.
    monkeypatch.setattr(factory, "ensure_model", lambda preset, directory, **kwargs: gguf)
    settings = Settings(data_dir=tmp_path / "data", models_dir=tmp_path / "models",
                        openai_api_key="sk-test", anthropic_api_key="ak-test", llm_base_url="http://127.0.0.1:9/v1")
    read = settings_read_for(spec.format(gguf=gguf), settings)
    assert "llm" in read
    assert read <= set(factory.CHAT_MODEL_SETTINGS), sorted(read - set(factory.CHAT_MODEL_SETTINGS))


def test_the_recorder_sees_a_setting_the_key_leaves_out(tmp_path, monkeypatch):
    """The check above can fail: a factory that reads one more setting is caught."""
    real = factory.make_chat_model

    def reads_more(settings, spec=None, progress=True):
        settings.top_k  # noqa: B018 - read, as a factory that used it would
        return real(settings, spec, progress)

    monkeypatch.setattr(factory, "make_chat_model", reads_more)
    read = settings_read_for("openai:gpt-4o-mini", Settings(data_dir=tmp_path, openai_api_key="sk-test"))
    assert read - set(factory.CHAT_MODEL_SETTINGS) == {"top_k"}


@pytest.mark.parametrize(("spec", "package"), [("ollama:llama3", "langchain-ollama"),
                                                ("anthropic:claude-x", "langchain-anthropic")])
def test_a_provider_without_its_package_is_named_with_the_package_to_install(spec, package, tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == package.replace("-", "_") else real(name, *a))
    with pytest.raises(ModelUnavailable, match=f"pip install {package}"):
        factory.make_chat_model(Settings(data_dir=tmp_path, llm=spec, anthropic_api_key="ak-test"))
