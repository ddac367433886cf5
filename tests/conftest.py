"""Shared fixtures: real embedding model, real Chroma in a temporary directory, sample files."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

for key, value in {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "ANONYMIZED_TELEMETRY": "False",
    "OMP_WAIT_POLICY": "PASSIVE",
}.items():
    os.environ.setdefault(key, value)

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

#: Assembled GGUF files are shared with `make install` / `make demo` instead of rebuilt per test.
MODELS_DIR = Path(os.environ.get("ARAG_TEST_MODELS_DIR", REPO / ".arag" / "models"))


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    """No test reads the developer's .env or ARAG_* variables."""
    for key in list(os.environ):
        if key.startswith("ARAG_") or key in {"OPENAI_API_KEY", "ANTHROPIC_API_KEY", "TAVILY_API_KEY"}:
            monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def embedder():
    from embeddings import Embedder, packaged_minilm_dir

    return Embedder(packaged_minilm_dir())


@pytest.fixture
def settings(tmp_path):
    from settings import Settings

    return Settings(data_dir=tmp_path / "data", models_dir=MODELS_DIR)


@pytest.fixture
def ingestor(settings, embedder):
    from knowledge.ingest import Ingestor
    from knowledge.store import ChunkStore

    return Ingestor(settings, embedder, ChunkStore(settings, embedder.model_id, embedder.dim))
