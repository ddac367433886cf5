"""Token vectors kept from ingestion: same scores as encoding at question time, no encoder pass over candidates."""

from __future__ import annotations

import multiprocessing

import numpy as np
import pytest

from arag.embeddings.embedder import Embedder, embedding_text
from arag.index.token_store import TokenVectorStore, dequantise, quantise, text_key, token_store_for
from arag.relevance.scorers import LateInteractionScorer, MultiScorer

PAGES = {
    "tea.md": "# Tea\nGreen tea is steamed or pan-fired soon after picking, so its leaves stay green.\n\n"
              "## Black tea\nBlack tea leaves are rolled and left to oxidise until they turn dark brown.",
    "rust.md": "# Rust\nIron rusts when it meets water and oxygen; salt water speeds the reaction up.",
}


class CountingEmbedder:
    """The real embedder, recording how many texts each token-vector call encodes."""

    def __init__(self, embedder):
        self.inner = embedder
        self.calls: list[int] = []

    def token_vectors(self, texts, max_length=None):
        self.calls.append(len(texts))
        return self.inner.token_vectors(texts, max_length)


@pytest.fixture
def indexed(tmp_path, ingestor):
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in PAGES.items():
        (docs / name).write_text(text)
    ingestor.ingest([docs], progress=False)
    return docs, ingestor


def chunk_texts(store) -> dict[str, str]:
    got = store.collection.get(include=["documents", "metadatas"])
    return {m["text_hash"]: embedding_text(m["title"], m["heading"], d) for d, m in zip(got["documents"], got["metadatas"])}


def test_quantised_vectors_stay_within_a_step_of_the_originals():
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(7, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    back = dequantise(*quantise(vectors))
    step = np.abs(vectors).max(axis=1, keepdims=True) / 127
    assert back.shape == vectors.shape
    # Half a step of rounding, plus the float16 scale's own rounding (relative 2**-11).
    assert (np.abs(back - vectors) <= step / 2 + np.abs(vectors) * 2**-10).all()
    assert dequantise(*quantise(np.zeros((0, 384), np.float32))).shape == (0, 0)


def test_ingestion_stores_the_token_vectors_of_every_chunk_in_its_one_encoder_pass(indexed, embedder):
    _, ingestor = indexed
    texts = chunk_texts(ingestor.store)
    stored = ingestor.tokens.get(texts)
    assert set(stored) == set(texts) and len(texts) >= 3
    tokens = sum(len(v) for v in stored.values())
    assert tokens * 386 <= ingestor.tokens.disk_bytes() < tokens * 386 + 64 * 1024
    for key, text in texts.items():
        assert key == text_key(text)
        fresh = embedder.token_vectors([text])[0]
        assert stored[key].shape == fresh.shape
        assert np.abs(stored[key] - fresh).max() < 0.01


def test_pooled_vectors_match_sentence_transformers_on_every_backend(embedder, tmp_path):
    from sentence_transformers import SentenceTransformer

    texts = [embedding_text(name, "", text) for name, text in PAGES.items()] + ["", "x", "long " * 400]
    reference_model = SentenceTransformer(str(embedder.model_dir), device="cpu")
    reference_model.max_seq_length = embedder.max_length
    reference = reference_model.encode(texts, normalize_embeddings=True, batch_size=len(texts) + 1)
    assert embedder.backend == "onnx"
    assert np.abs(embedder.embed_documents(texts) - reference).max() < 1e-5
    by_torch = Embedder(embedder.model_dir, backend="torch")
    assert by_torch.model_id == embedder.model_id
    assert np.abs(by_torch.embed_documents(texts) - reference).max() < 1e-5
    # int8 weights: the vectors move a little, so they are a model of their own.
    quantised = Embedder(embedder.model_dir, backend="onnx-int8", models_dir=tmp_path)
    assert quantised.model_id == embedder.model_id + "+int8"
    cosines = (quantised.embed_documents(texts) * reference).sum(axis=1)
    # ... and a text's int8 vector does not depend on the texts embedded with it.
    alone = np.stack([quantised.embed_documents([t])[0] for t in texts])
    assert np.abs(quantised.embed_documents(texts) - alone).max() < 1e-6
    assert cosines.min() > 0.95 and (tmp_path / "onnx" / f"{embedder.weights_id}-int8.onnx").is_file()


def test_scoring_reads_stored_vectors_and_encodes_only_the_question(indexed, embedder, settings):
    _, ingestor = indexed
    texts = list(chunk_texts(ingestor.store).values())
    counting = CountingEmbedder(embedder)
    cached = LateInteractionScorer(counting, ingestor.tokens).score("why does green tea stay green?", texts)
    assert counting.calls == [1]
    encoded = LateInteractionScorer(embedder).score("why does green tea stay green?", texts)
    assert np.abs(cached - encoded).max() < 2e-3
    assert np.argsort(-cached).tolist() == np.argsort(-encoded).tolist()
    multi = MultiScorer(counting, {}, tokens=ingestor.tokens).features("rust and salt water", texts)
    assert counting.calls == [1, 1] and multi.shape == (len(texts), 3)


def test_texts_never_ingested_are_encoded_once_then_served_from_the_store(indexed, embedder):
    _, ingestor = indexed
    counting = CountingEmbedder(embedder)
    web = ["Oolong tea is partly oxidised, between green and black.", "Copper turns green, not red."]
    scorer = LateInteractionScorer(counting, ingestor.tokens)
    first = scorer.score("what is oolong?", web)
    second = scorer.score("what is oolong?", web)
    assert counting.calls == [1, 2, 1]
    assert np.allclose(first, second)


def test_changed_and_removed_files_take_their_token_vectors_with_them(indexed, embedder):
    docs, ingestor = indexed
    web_key = text_key("a web result")
    ingestor.tokens.put({web_key: embedder.token_vectors(["a web result"])[0]})
    before = set(chunk_texts(ingestor.store))
    (docs / "rust.md").write_text("# Rust\nAluminium does not rust; a thin oxide layer protects it.")
    (docs / "tea.md").unlink()
    ingestor.ingest([docs], prune=True, progress=False)
    after = set(chunk_texts(ingestor.store))
    assert after and not after & before
    assert set(ingestor.tokens.get(before | after | {web_key})) == after
    assert len(ingestor.tokens) == len(after)


def test_deleting_a_file_from_the_catalog_drops_its_token_vectors(indexed):
    from arag.index.catalog import delete_file

    docs, ingestor = indexed
    before = set(chunk_texts(ingestor.store))
    assert delete_file(ingestor.store, str(docs / "tea.md")) >= 2
    after = set(chunk_texts(ingestor.store))
    assert after and after < before
    assert set(ingestor.tokens.get(before)) == after


def test_a_store_written_by_another_model_is_emptied(tmp_path):
    path = tmp_path / "t.sqlite"
    TokenVectorStore(path, "model-a@1").put({"k": np.ones((2, 4), np.float32)})
    assert len(TokenVectorStore(path, "model-a@1")) == 1
    assert len(TokenVectorStore(path, "model-b@1")) == 0


def clustered_tokens(rng, rows: int, dim: int = 48) -> np.ndarray:
    centres = rng.normal(size=(40, dim))
    v = centres[rng.integers(0, 40, rows)] + 0.1 * rng.normal(size=(rows, dim))
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def test_product_quantised_store_fits_its_codebook_once_enough_tokens_come(tmp_path, monkeypatch):
    import arag.index.token_store as token_store

    monkeypatch.setattr(token_store, "PQ_FIT_TOKENS", 2000)
    rng = np.random.default_rng(1)
    path = tmp_path / "pq.sqlite"
    store = TokenVectorStore(path, "m@1", codec="pq", subvectors=12)
    small = clustered_tokens(rng, 50)
    store.put({"early": small})  # too few tokens for a codebook: kept as int8
    assert np.abs(store.get(["early"])["early"] - small).max() < 0.01
    batch = {f"k{i}": clustered_tokens(rng, 100) for i in range(30)}
    store.put(batch)
    # Another instance (another process) reads the same codebook back.
    again = TokenVectorStore(path, "m@1", codec="pq", subvectors=12)
    got = again.get(list(batch) + ["early"])
    assert np.abs(got["early"] - small).max() < 0.01
    rebuilt = np.concatenate([got[k] for k in batch])
    original = np.concatenate(list(batch.values()))
    cosine = (rebuilt * original).sum(axis=1) / np.linalg.norm(rebuilt, axis=1)
    assert rebuilt.shape == original.shape and cosine.mean() > 0.95
    # 12 bytes a token plus SQLite's row overhead, against 48 + 2 for int8 of 48 dimensions.
    codes = again._db.execute("SELECT codes, scales FROM tokens WHERE key = 'k3'").fetchone()
    assert len(codes[0]) == 100 * 12 and codes[1] is None
    # A score of a text read back equals the score of the same text just encoded and stored.
    fresh = again.vectors_for(["a new text"], type("Fixed", (), {"token_vectors": lambda self, texts: [batch["k0"]]})())[0]
    assert np.allclose(fresh, again.get([text_key("a new text")])[text_key("a new text")])


def _writer(path: str, start: int) -> None:
    store = TokenVectorStore(path, "m@1")
    for i in range(start, start + 40):
        store.put({f"k{i}": np.full((3, 8), i / 100, np.float32)})


def test_two_processes_write_one_store_without_losing_entries(tmp_path):
    path = str(tmp_path / "shared.sqlite")
    TokenVectorStore(path, "m@1")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, start)) for start in (0, 40)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    store = TokenVectorStore(path, "m@1")
    assert len(store) == 80
    assert abs(float(store.get(["k57"])["k57"][0, 0]) - 0.57) < 0.005


def test_the_setting_turns_the_store_off(settings, embedder, tmp_path):
    from arag.index.store import ChunkStore
    from arag.ingestion.ingest import Ingestor

    off = settings.model_copy(update={"store_token_vectors": False})
    store = ChunkStore(off, embedder.model_id, embedder.dim)
    assert token_store_for(off, store) is None
    docs = tmp_path / "plain"
    docs.mkdir()
    (docs / "a.md").write_text("# A\nA plain note about kettles.")
    report = Ingestor(off, embedder, store).ingest([docs], progress=False)
    assert report.chunks_written == 1
    assert not (off.data_dir / "token-vectors").exists()


QUESTION_PROCESS = """
import json, sys
from pathlib import Path
from arag.settings import Settings
from graphs import build_graph
settings = Settings(data_dir=Path(sys.argv[1]), models_dir=Path(sys.argv[2]), write_answer=False)
out = build_graph(settings).invoke({"question": "why does green tea stay green?"})
print(json.dumps({"modules": sorted(m for m in ("torch", "transformers", "FlagEmbedding", "sentence_transformers")
                                    if m in sys.modules), "documents": len(out["documents"])}))
"""


def test_a_question_in_a_new_process_loads_no_torch(indexed, settings):
    import json
    import subprocess
    import sys

    # The ingest above exported the encoder to ONNX; a process that only asks reads that file.
    done = subprocess.run([sys.executable, "-c", QUESTION_PROCESS, str(settings.data_dir), str(settings.models_path)],
                          capture_output=True, text=True, timeout=300, check=True)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["documents"] >= 1 and report["modules"] == []
