"""Shared fixtures: real embedding model, real Chroma in a temporary directory, sample files.

Also what a test does when something it needs is missing (:func:`unavailable`,
:func:`require_program`): on a developer's machine it is skipped with the reason; under CI
(``CI=true``), where ``make test`` installs everything first, it fails, since a skipped test
there is a test that passes by not running.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import NoReturn

import pytest

from arag.environment import apply_offline_environment
from arag.settings import Settings

apply_offline_environment()

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

#: Assembled GGUF files are shared with `make install` / `make demo` (the per-user model cache,
#: or ARAG_MODELS_DIR) instead of rebuilt per test.
MODELS_DIR = Path(os.environ.get("ARAG_TEST_MODELS_DIR") or Settings().models_path)

#: Running under CI (CI services set CI=true): there, every test must run.
IN_CI = os.environ.get("CI", "").strip().lower() == "true"


def unavailable(reason: str) -> NoReturn:
    """Stop a test that cannot run here: skipped on a developer's machine, failed under CI."""
    if IN_CI:
        pytest.fail(f"{reason} [CI=true: a test that cannot run fails instead of skipping]", pytrace=False)
    pytest.skip(reason)


def require_program(*names: str, package: str) -> str:
    """The path of the first of ``names`` on PATH; none there is :func:`unavailable`.

    ``package`` says what provides it (shown in the reason, e.g. "Debian's graphviz").
    """
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    unavailable(f"{' or '.join(f'`{n}`' for n in names)} not found on PATH ({package} provides it; make test installs it)")


class SkipsFailUnderCI:
    """Under CI a skip that did not come through :func:`unavailable` fails too: a ``skipif`` mark,
    a bare ``pytest.skip``, a doctest whose examples are all +SKIP.
    """

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        report = outcome.get_result()
        if report.skipped and not hasattr(report, "wasxfail"):
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
            report.outcome = "failed"
            report.longrepr = f"{reason} [CI=true: a test that cannot run fails instead of skipping]"


def pytest_configure(config):
    # Registered as a plugin rather than defined here as a hook: a conftest's hooks apply to the
    # tests below it only, and this must reach the doctests of arag/, graphs/ and nodes/ too.
    if IN_CI:
        config.pluginmanager.register(SkipsFailUnderCI(), "skips-fail-under-ci")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    """No test reads the developer's .env or ARAG_* variables."""
    for key in list(os.environ):
        if key.startswith("ARAG_") or key in {"OPENAI_API_KEY", "ANTHROPIC_API_KEY", "TAVILY_API_KEY"}:
            monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def embedder():
    from arag.embeddings.embedder import Embedder, packaged_minilm_dir

    # fp32 for every batch: shared by the whole session, it must not give other vectors once some test's
    # large ingest has loaded the bf16 encoder (tests/test_bulk_encoding.py tests that path).
    return Embedder(packaged_minilm_dir(), models_dir=MODELS_DIR, bulk_precision="fp32")


@pytest.fixture
def settings(tmp_path):
    return Settings(data_dir=tmp_path / "data", models_dir=MODELS_DIR)


@pytest.fixture
def ingestor(settings, embedder):
    from arag.index.store import ChunkStore
    from arag.ingestion.ingest import Ingestor

    return Ingestor(settings, embedder, ChunkStore(settings, embedder.model_id, embedder.dim))
