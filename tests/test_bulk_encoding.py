"""Large batches of documents encoded in bfloat16: vectors of the fp32 model, checked before use."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from arag.embeddings import embedder as embedder_module
from arag.embeddings.embedder import BULK_MIN_TEXTS, Embedder, EmbeddingModelError, bf16_pays
from arag.index.store import ChunkStore
from arag.ingestion.ingest import Ingestor

TOPICS = ("green tea is steamed soon after picking", "iron rusts when it meets water and oxygen",
          "the train to Lyon leaves at nine", "a heron waits in the shallows for fish")


def documents(count: int) -> list[str]:
    """``count`` distinct documents of different lengths, so the batches are padded."""
    return [f"Note {i}. " + " ".join(TOPICS[(i + k) % len(TOPICS)] for k in range(1 + i % 5)) for i in range(count)]


@pytest.fixture
def fp32_encoder_as_bulk(monkeypatch):
    """The bulk path without OpenVINO: the "bf16" encoder is the fp32 one, so it passes the probe."""
    loaded = []

    def load(self):
        loaded.append(True)
        return self._encoder()

    monkeypatch.setattr(Embedder, "_load_openvino", load)
    return loaded


def test_a_large_batch_of_documents_in_bf16_gives_the_fp32_models_vectors(embedder):
    texts = documents(BULK_MIN_TEXTS)
    fp32 = Embedder(embedder.model_dir, models_dir=embedder.models_dir, bulk_precision="fp32")
    bf16 = Embedder(embedder.model_dir, models_dir=embedder.models_dir, bulk_precision="bf16")
    want_pooled, want_tokens = fp32.encode(texts, tokens=True, bulk=True)
    got_pooled, got_tokens = bf16.encode(texts, tokens=True, bulk=True)
    assert bf16.bulk_encoded == len(texts) and fp32.bulk_encoded == 0
    assert bf16.model_id == fp32.model_id  # the same model: one index holds both
    assert (want_pooled * got_pooled).sum(axis=1).min() > 0.9995
    assert not np.array_equal(want_pooled, got_pooled)  # bf16 did run: its rounding shows
    token_cosines = np.concatenate([(w * g).sum(axis=1) for w, g in zip(want_tokens, got_tokens)])
    assert [len(t) for t in got_tokens] == [len(t) for t in want_tokens] and token_cosines.min() > 0.99
    # Once loaded, bf16 takes small bulk batches too ...
    assert (bf16.embed_documents(texts[:10], bulk=True) * want_pooled[:10]).sum(axis=1).min() > 0.9995
    assert bf16.bulk_encoded == len(texts) + 10
    # ... but what a question needs encoded (the question, passages to score) stays on the fp32 encoder.
    assert np.array_equal(bf16.embed_queries(texts), fp32.embed_queries(texts))
    assert np.array_equal(bf16.embed_documents(texts[:10]), fp32.embed_documents(texts[:10]))
    assert all(np.array_equal(a, b) for a, b in zip(bf16.token_vectors(texts[:10]), fp32.token_vectors(texts[:10])))
    assert bf16.bulk_encoded == len(texts) + 10
    # A fresh embedder's small bulk batch does not load it.
    small = Embedder(embedder.model_dir, models_dir=embedder.models_dir, bulk_precision="bf16")
    assert np.array_equal(small.embed_documents(texts[:10], bulk=True), fp32.embed_documents(texts[:10]))
    assert small.bulk_encoded == 0 and small._bulk is None


def test_a_bf16_encoder_that_disagrees_with_fp32_is_never_used(embedder, monkeypatch, caplog):
    noise = np.random.default_rng(0)
    monkeypatch.setattr(Embedder, "_load_openvino", lambda self: lambda ids, mask: noise.normal(
        size=(*ids.shape, 384)).astype(np.float32))
    bulk = Embedder(embedder.model_dir, models_dir=embedder.models_dir, bulk_precision="bf16")
    texts = documents(BULK_MIN_TEXTS)
    with caplog.at_level(logging.WARNING, logger="arag.embeddings.embedder"):
        got = bulk.embed_documents(texts, bulk=True)
    assert bulk.bulk_encoded == 0
    assert np.array_equal(got, Embedder(embedder.model_dir, models_dir=embedder.models_dir,
                                        bulk_precision="fp32").embed_documents(texts))
    assert "documents are encoded in fp32" in caplog.text and "cosine" in caplog.text


@pytest.mark.parametrize(("precision", "backend", "bf16_faster", "in_bf16"), [
    ("auto", "onnx", True, True),
    ("auto", "onnx", False, False),
    ("fp32", "onnx", True, False),
    ("bf16", "onnx", False, True),
    ("auto", "torch", True, False),  # no exported file to hand OpenVINO: some presets run on torch only
    ("auto", "onnx-int8", True, False),  # int8 vectors are a model of their own
])
def test_the_bulk_precision_decides_whether_bf16_is_loaded(embedder, fp32_encoder_as_bulk, monkeypatch, tmp_path,
                                                            precision, backend, bf16_faster, in_bf16):
    monkeypatch.setattr(embedder_module, "bf16_pays", lambda: bf16_faster)
    if backend == "torch":  # its fp32 encoder, without loading torch
        monkeypatch.setattr(Embedder, "_encoder", lambda self: Embedder._load_onnx(self))
    chosen = Embedder(embedder.model_dir, models_dir=embedder.models_dir if backend != "onnx-int8" else tmp_path,
                      backend=backend, bulk_precision=precision)
    chosen.embed_documents(documents(BULK_MIN_TEXTS), bulk=True)
    assert fp32_encoder_as_bulk == ([True] if in_bf16 else [])
    assert chosen.bulk_encoded == (BULK_MIN_TEXTS if in_bf16 else 0)


def test_auto_keeps_onnx_runtime_where_openvino_would_not_use_bf16(embedder, monkeypatch):
    from arag.embeddings import onnx_encoder

    monkeypatch.setattr(embedder_module, "bf16_pays", lambda: True)
    monkeypatch.setattr(onnx_encoder.OpenVinoEncoder, "precision", property(lambda self: "f32"))
    chosen = Embedder(embedder.model_dir, models_dir=embedder.models_dir, bulk_precision="auto")
    chosen.embed_documents(documents(BULK_MIN_TEXTS), bulk=True)
    assert chosen.bulk_encoded == 0


def test_without_openvino_documents_stay_fp32_with_a_warning(embedder, monkeypatch, caplog):
    import builtins

    real_import = builtins.__import__

    def no_openvino(name, *args, **kwargs):
        if name == "openvino" or name.startswith("openvino."):
            raise ImportError("No module named 'openvino'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_openvino)
    chosen = Embedder(embedder.model_dir, models_dir=embedder.models_dir, bulk_precision="bf16")
    with caplog.at_level(logging.WARNING, logger="arag.embeddings.embedder"):
        chosen.embed_documents(documents(BULK_MIN_TEXTS), bulk=True)
    assert chosen.bulk_encoded == 0 and "OpenVINO cannot run the encoder" in caplog.text


def test_an_unknown_bulk_precision_is_refused(embedder):
    with pytest.raises(EmbeddingModelError, match="unknown bulk precision 'fp16'"):
        Embedder(embedder.model_dir, bulk_precision="fp16")


def test_bf16_is_chosen_only_where_the_cpu_has_amx(tmp_path):
    amx = tmp_path / "amx"
    amx.write_text("processor\t: 0\nflags\t\t: fpu sse avx512f avx512_bf16 amx_bf16 amx_tile\n\nprocessor\t: 1\n")
    # AVX512-BF16 without AMX: OpenVINO's bf16 encoder ran slower than ONNX Runtime's fp32 there.
    avx512_bf16 = tmp_path / "avx512-bf16"
    avx512_bf16.write_text("flags\t\t: fpu avx2 avx512f avx512_bf16 avx512_vnni\n")
    avx2 = tmp_path / "avx2"
    avx2.write_text("flags\t\t: fpu avx2 fma\n")
    assert bf16_pays(str(amx))
    assert not bf16_pays(str(avx512_bf16)) and not bf16_pays(str(avx2)) and not bf16_pays(str(tmp_path / "missing"))


@pytest.mark.parametrize("real_bf16", [False, True])
def test_an_ingest_reports_the_chunks_it_encoded_in_bf16(tmp_path, settings, embedder, request, real_bf16):
    if not real_bf16:
        request.getfixturevalue("fp32_encoder_as_bulk")
    docs = tmp_path / "docs"
    docs.mkdir()
    for i, text in enumerate(documents(BULK_MIN_TEXTS + 20)):
        (docs / f"note-{i:03}.md").write_text(text)
    (docs / "kettle.md").write_text("The copper kettle whistles when the water boils for the morning tea.")
    bulk = Embedder(embedder.model_dir, models_dir=embedder.models_dir, bulk_precision="bf16")
    store = ChunkStore(settings, bulk.model_id, bulk.dim)
    report = Ingestor(settings, bulk, store).ingest([docs], progress=False)
    assert report.chunks_embedded == BULK_MIN_TEXTS + 21
    assert report.chunks_in_bf16 == report.chunks_embedded
    assert f"({report.chunks_in_bf16} encoded in bf16)" in report.summary()
    # A question, encoded in fp32, finds the chunk that bf16 indexed.
    found = store.collection.query(query_embeddings=embedder.embed_queries(["what whistles when water boils?"]).tolist(),
                                   n_results=1, include=["metadatas"])
    assert found["metadatas"][0][0]["source"].endswith("kettle.md")
    # A small ingest by an embedder that never loaded bf16 says nothing of it.
    small = tmp_path / "small"
    small.mkdir()
    (small / "one.md").write_text("A single note about herons.")
    plain = Embedder(embedder.model_dir, models_dir=embedder.models_dir, bulk_precision="bf16")
    again = Ingestor(settings, plain, ChunkStore(settings, plain.model_id, plain.dim)).ingest([small], progress=False)
    assert again.chunks_embedded == 1 and again.chunks_in_bf16 == 0 and "bf16" not in again.summary()
