"""Assembling split GGUF weights from data-only packages, and refusing a wrong hash."""

from __future__ import annotations

import hashlib

import pytest

from llms import local_model_file, parse_provider
from llms.gguf import GGUFPreset, ModelUnavailable, ensure_model


def fake_distribution(site, name: str, payload: bytes) -> None:
    """A dist-info whose RECORD lists one data file, as the real part packages have."""
    module = name.replace("-", "_")
    (site / module / "data").mkdir(parents=True)
    (site / module / "data" / "part.bin").write_bytes(payload)
    info = site / f"{module}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "RECORD").write_text(f"{module}/__init__.py,,\n{module}/data/part.bin,,\n{info.name}/METADATA,,\n")


@pytest.fixture
def parts(tmp_path, monkeypatch):
    site = tmp_path / "site"
    chunks = [b"GGUF" + bytes(range(256)) * 100, b"tail-of-the-model" * 50]
    for i, chunk in enumerate(chunks, start=1):
        fake_distribution(site, f"fake-model-part{i}", chunk)
    monkeypatch.syspath_prepend(str(site))
    whole = b"".join(chunks)
    return GGUFPreset(
        name="fake", description="test", distributions=("fake-model-part1", "fake-model-part2"),
        sha256=hashlib.sha256(whole).hexdigest(), size=len(whole), chat_template=True, licence="test",
    ), whole


def test_parts_are_concatenated_in_order_and_verified(parts, tmp_path):
    preset, whole = parts
    path = ensure_model(preset, tmp_path / "models", progress=False)
    assert path.read_bytes() == whole
    assert (tmp_path / "models" / "fake.gguf.verified").exists()


def test_a_file_changed_after_verification_is_rejected(parts, tmp_path):
    preset, _ = parts
    path = ensure_model(preset, tmp_path / "models", progress=False)
    path.write_bytes(b"tampered")
    with pytest.raises(ModelUnavailable, match="has sha256"):
        ensure_model(preset, tmp_path / "models", progress=False)


def test_wrong_pinned_hash_is_a_clear_error(parts, tmp_path):
    preset, _ = parts
    wrong = GGUFPreset(**{**preset.__dict__, "sha256": "0" * 64})
    with pytest.raises(ModelUnavailable, match="expected 0000"):
        ensure_model(wrong, tmp_path / "models", progress=False)


def test_missing_package_names_the_install_command(tmp_path):
    preset = GGUFPreset("absent", "x", ("no-such-package-part1",), "0" * 64, 1, True, "x")
    with pytest.raises(ModelUnavailable, match="pip install no-such-package-part1"):
        ensure_model(preset, tmp_path, progress=False)


def test_provider_strings():
    assert parse_provider("openai:gpt-4o-mini") == ("openai", "gpt-4o-mini")
    assert parse_provider("local-0.5b") == ("llamacpp", "local-0.5b")
    with pytest.raises(ValueError, match="unknown LLM provider"):
        parse_provider("bogus:model")
    with pytest.raises(ValueError, match="names no model"):
        parse_provider("openai:")


def test_unknown_local_model(settings):
    with pytest.raises(ModelUnavailable, match="unknown local model"):
        local_model_file("local-99b", settings)
    with pytest.raises(ModelUnavailable, match="model file not found"):
        local_model_file(str(settings.data_dir / "missing.gguf"), settings)
