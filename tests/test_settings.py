"""Settings: per-call overrides, profiles, and docs that list every setting."""

from __future__ import annotations

import pytest
from conftest import REPO
from pydantic import ValidationError

from arag.settings import PROFILES, Settings


def test_every_setting_is_documented_in_env_example():
    text = (REPO / ".env.example").read_text()
    aliases = {"openai_api_key": "OPENAI_API_KEY", "anthropic_api_key": "ANTHROPIC_API_KEY", "tavily_api_key": "TAVILY_API_KEY"}
    for name in Settings.model_fields:
        assert aliases.get(name, f"ARAG_{name.upper()}") in text, name


def test_environment_and_dotenv_are_read(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("ARAG_TOP_K=7\nTAVILY_API_KEY=tvly-secret\n")
    monkeypatch.setenv("ARAG_HYDE", "true")
    s = Settings()
    assert s.top_k == 7 and s.hyde is True
    assert s.tavily_api_key.get_secret_value() == "tvly-secret"
    assert "tvly-secret" not in repr(s)


def test_per_call_overrides_and_profiles():
    base = Settings()
    assert base.for_run(None) is base
    agentic = base.for_run({"configurable": {"profile": "agentic", "hyde": False, "thread_id": "x"}})
    assert agentic.transform_when == "retry" and agentic.multi_query == 2 and agentic.hyde is False
    assert base.for_run({"configurable": {"profile": "naive"}}).rerank is False
    with pytest.raises(ValueError, match="unknown profile"):
        base.for_run({"configurable": {"profile": "turbo"}})
    with pytest.raises(ValidationError):
        base.for_run({"configurable": {"max_retries": -1}})
    assert set(PROFILES) == {"naive", "fast", "agentic"}


def test_bad_collection_name_is_refused():
    with pytest.raises(ValidationError, match="collection names need"):
        Settings(collection="a")


def test_urls_must_be_http():
    with pytest.raises(ValidationError, match="must start with http"):
        Settings(web_search_url="127.0.0.1:8000")
    assert Settings(llm_base_url="http://127.0.0.1:8000/v1").llm_base_url.endswith("/v1")
