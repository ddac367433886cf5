"""The whole path on the embedded defaults: real corpus, real MiniLM, real Qwen2.5-1.5B."""

from __future__ import annotations

import pytest
from conftest import REPO

from arag.runtime.components import Components
from graphs import build_graph

pytestmark = pytest.mark.slow


def test_default_model_answers_from_the_sample_corpus_with_a_citation(settings, embedder, ingestor):
    report = ingestor.ingest([REPO / "arag" / "samples" / "python-tutorial"], progress=False)
    assert report.added == 7 and not report.failures
    assert settings.llm == "llamacpp:local-1.5b"
    graph = build_graph(components=Components(settings, embedder=embedder))
    out = graph.invoke({"question": "Which command creates a virtual environment?"})
    assert "venv" in out["answer"]
    assert out["citations"], out["answer"]
    assert any(c["source"].endswith("venv.rst") for c in out["citations"])
    generate = next(e for e in out["trace"] if e["node"] == "generate")
    assert generate["llm_calls"] == 1 and 100 < generate["prompt_tokens"] < 2000
