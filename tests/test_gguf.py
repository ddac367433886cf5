"""Assembling split GGUF weights from data-only packages, and refusing a wrong hash."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap

import pytest

from arag.llms import gguf
from arag.llms.factory import local_model_file, parse_provider
from arag.llms.gguf import GGUFPreset, ModelUnavailable, ensure_model
from arag.settings import Settings, default_models_dir


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
    # A file that failed its hash never takes the model's name, and no temporary file is left.
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == [".fake.gguf.lock"]


def test_a_verified_model_is_not_hashed_again(parts, tmp_path, monkeypatch):
    preset, _ = parts
    path = ensure_model(preset, tmp_path / "models", progress=False)
    hashed = []
    real = gguf._hash_stream
    monkeypatch.setattr(gguf, "_hash_stream", lambda *a, **k: hashed.append(1) or real(*a, **k))
    for _ in range(3):
        assert ensure_model(preset, tmp_path / "models", progress=False) == path
    assert hashed == []
    # A stamp that no longer describes the file (copied in, touched) costs one hash, then none.
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    ensure_model(preset, tmp_path / "models", progress=False)
    ensure_model(preset, tmp_path / "models", progress=False)
    assert hashed == [1]


def test_a_corrupted_cached_model_of_the_same_size_is_detected(parts, tmp_path):
    preset, whole = parts
    models = tmp_path / "cache"
    path = ensure_model(preset, models, progress=False)
    verified = path.stat()
    # One flipped byte, same size: only the hash can tell, and the changed mtime makes it look.
    data = bytearray(whole)
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    # File times tick in milliseconds; a real corruption comes later than this test's rewrite.
    os.utime(path, ns=(verified.st_atime_ns, verified.st_mtime_ns + 10**9))
    with pytest.raises(ModelUnavailable, match=f"{preset.filename} has sha256 .*, expected {preset.sha256}"):
        ensure_model(preset, models, progress=False)
    # The stamp of the good file does not vouch for the bad one on a later load either.
    with pytest.raises(ModelUnavailable, match="has sha256"):
        ensure_model(preset, models, progress=False)


def test_assemblers_racing_leave_one_whole_verified_file(parts, tmp_path):
    preset, whole = parts
    models = tmp_path / "models"
    # Each child finds the fake part packages through PYTHONPATH and assembles the same model.
    script = textwrap.dedent("""
        import json, sys
        from pathlib import Path
        from arag.llms.gguf import GGUFPreset, ensure_model
        fields = json.loads(sys.argv[2])
        preset = GGUFPreset(**{**fields, "distributions": tuple(fields["distributions"])})
        print(ensure_model(preset, Path(sys.argv[1]), progress=False))
    """)
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    children = [subprocess.Popen([sys.executable, "-c", script, str(models), json.dumps(preset.__dict__)], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outputs = [child.communicate(timeout=120) for child in children]
    assert [child.returncode for child in children] == [0, 0, 0], outputs
    assert {out.strip() for out, _ in outputs} == {str(models / preset.filename)}
    assert (models / preset.filename).read_bytes() == whole
    assert sorted(p.name for p in models.iterdir()) == [".fake.gguf.lock", "fake.gguf", "fake.gguf.verified"]


def test_stale_partial_files_of_a_dead_assembler_are_removed(parts, tmp_path):
    preset, _ = parts
    models = tmp_path / "models"
    models.mkdir()
    (models / ".fake.gguf.4242.deadbeef.partial").write_bytes(b"half a model")
    (models / "fake.gguf.partial").write_bytes(b"left by an older version")
    ensure_model(preset, models, progress=False)
    assert not list(models.glob("*.partial")) and not list(models.glob(".*.partial"))


def test_every_data_dir_shares_one_per_user_model_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    one, two = Settings(data_dir=tmp_path / "one"), Settings(data_dir=tmp_path / "two")
    assert one.models_path == two.models_path == tmp_path / "xdg" / "arag" / "models"
    # Trained embedders and rerankers stay per collection in the data directory (model_registry).
    assert not one.models_path.is_relative_to(one.data_dir)
    monkeypatch.setenv("ARAG_MODELS_DIR", str(tmp_path / "mine"))
    assert Settings(data_dir=tmp_path / "one").models_path == tmp_path / "mine"
    monkeypatch.delenv("ARAG_MODELS_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")  # the XDG spec says to ignore it
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_models_dir() == tmp_path / "home" / ".cache" / "arag" / "models"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert Settings(data_dir=tmp_path / "two").models_path == tmp_path / "home" / ".cache" / "arag" / "models"


def test_two_data_dirs_load_the_model_assembled_once(parts, tmp_path, monkeypatch):
    preset, whole = parts
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setitem(gguf.PRESETS, preset.name, preset)
    assembled = []
    real = gguf._assemble
    monkeypatch.setattr(gguf, "_assemble", lambda *a, **k: assembled.append(1) or real(*a, **k))
    paths = {local_model_file(preset.name, Settings(data_dir=tmp_path / d), progress=False)[0] for d in ("a", "b")}
    assert paths == {tmp_path / "xdg" / "arag" / "models" / preset.filename}
    assert assembled == [1] and next(iter(paths)).read_bytes() == whole
    assert not (tmp_path / "a" / "models").exists() and not (tmp_path / "b" / "models").exists()


def test_a_copy_assembled_into_a_data_dir_by_an_older_version_is_linked_not_rebuilt(parts, tmp_path, monkeypatch):
    preset, whole = parts
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setitem(gguf.PRESETS, preset.name, preset)
    settings = Settings(data_dir=tmp_path / "data")
    older = ensure_model(preset, settings.data_dir / "models", progress=False)  # where older versions put it
    assembled = []
    real = gguf._assemble
    monkeypatch.setattr(gguf, "_assemble", lambda *a, **k: assembled.append(1) or real(*a, **k))
    path, _ = local_model_file(preset.name, settings, progress=False)
    assert path == settings.models_path / preset.filename and path.read_bytes() == whole
    assert assembled == [] and path.stat().st_ino == older.stat().st_ino  # one copy on disk
    # A copy that no longer matches its stamp is never brought back into the cache.
    path.unlink()
    older.write_bytes(b"GGUF damaged")
    local_model_file(preset.name, settings, progress=False)
    assert assembled == [1] and path.read_bytes() == whole


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
