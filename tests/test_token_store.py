"""Token vectors kept from ingestion: same scores as encoding at question time, no encoder pass over candidates."""

from __future__ import annotations

import multiprocessing

import numpy as np
import pytest

from arag.embeddings.embedder import Embedder, embedding_text
from arag.index.residual_codec import ResidualCodec
from arag.index.token_store import TokenVectorStore, codec_options, dequantise, quantise, text_key, token_store_for
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


def test_filling_in_length_order_returns_and_stores_each_text_its_own_vectors(embedder, tmp_path):
    # Steps of 2 over texts given shortest first: the store reorders them longest first across steps.
    texts = ["Tea.", "Iron rusts in salt water.", "Green tea leaves are steamed soon after picking.",
             "Black tea leaves are rolled and left to oxidise until they turn a dark brown colour.", "Rust."]
    store = TokenVectorStore.for_collection(tmp_path, "c", embedder.model_id)
    pooled = store.fill(texts, embedder, step=2)
    alone = np.stack([embedder.embed_documents([t])[0] for t in texts])
    assert np.abs(pooled - alone).max() < 1e-4
    stored = store.get(text_key(t) for t in texts)
    for text in texts:
        fresh = embedder.token_vectors([text])[0]
        assert stored[text_key(text)].shape == fresh.shape
        assert np.abs(stored[text_key(text)] - fresh).max() < 0.01


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
    assert quantised.model_id == embedder.model_id + "+int8s"
    together = quantised.embed_documents(texts)
    cosines = (together * reference).sum(axis=1)
    # ... and a text's int8 vector depends only a little on the texts batched with it.
    alone = np.stack([quantised.embed_documents([t])[0] for t in texts])
    assert (together * alone).sum(axis=1).min() > 0.98
    assert cosines.min() > 0.95 and (tmp_path / "onnx" / f"{embedder.weights_id}-int8s.onnx").is_file()


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


#: Each learnt codec with a shape that fits 48 dimensions, and the bytes a token that shape takes.
LEARNT = [pytest.param({"codec": "pq", "subvectors": 12}, 12, id="pq"),
          pytest.param({"codec": "residual", "residual_dims": 48, "residual_bits": 2, "residual_centroids": 64},
                       2 + 48 * 2 // 8, id="residual")]


@pytest.mark.parametrize(("options", "code_bytes"), LEARNT)
def test_a_learnt_codec_fits_its_codebook_once_enough_tokens_come(tmp_path, monkeypatch, options, code_bytes):
    import arag.index.token_store as token_store

    monkeypatch.setattr(token_store, "CODEBOOK_FIT_TOKENS", 2000)
    rng = np.random.default_rng(1)
    path = tmp_path / "learnt.sqlite"
    store = TokenVectorStore(path, "m@1", **options)
    small = clustered_tokens(rng, 50)
    store.put({"early": small})  # too few tokens for a codebook: kept as int8
    assert np.abs(store.get(["early"])["early"] - small).max() < 0.01 and store.fitted_codec is None
    batch = {f"k{i}": clustered_tokens(rng, 100) for i in range(30)}
    store.put(batch)
    # Another instance (another process) reads the same codebook back from the file.
    again = TokenVectorStore(path, "m@1", **options)
    assert again.fitted_codec == options["codec"]
    got = again.get(list(batch) + ["early"])
    assert np.abs(got["early"] - small).max() < 0.01
    rebuilt = np.concatenate([got[k] for k in batch])
    original = np.concatenate(list(batch.values()))
    cosine = (rebuilt * original).sum(axis=1) / np.linalg.norm(rebuilt, axis=1)
    assert rebuilt.shape == original.shape and cosine.mean() > 0.95
    # The codebook's bytes a token plus SQLite's row overhead, against 48 + 2 for int8 of 48 dimensions.
    codes = again._db.execute("SELECT codes, scales FROM tokens WHERE key = 'k3'").fetchone()
    assert len(codes[0]) == 100 * code_bytes and codes[1] is None
    # A score of a text read back equals the score of the same text just encoded and stored.
    fresh = again.vectors_for(["a new text"], type("Fixed", (), {"token_vectors": lambda self, texts: [batch["k0"]]})())[0]
    assert np.allclose(fresh, again.get([text_key("a new text")])[text_key("a new text")])


def test_a_file_from_before_the_residual_codec_keeps_its_product_quantiser(tmp_path, monkeypatch):
    import arag.index.token_store as token_store

    monkeypatch.setattr(token_store, "CODEBOOK_FIT_TOKENS", 2000)
    rng = np.random.default_rng(2)
    path = tmp_path / "old.sqlite"
    batch = {f"k{i}": clustered_tokens(rng, 100) for i in range(30)}
    TokenVectorStore(path, "m@1", codec="pq", subvectors=12).put(batch)
    before = TokenVectorStore(path, "m@1").get(batch)
    TokenVectorStore(path, "m@1")._db.execute("ALTER TABLE codebook DROP COLUMN codec")  # the schema it was written with
    # Whatever codec a later store asks for, the file's codebook reads and writes its rows.
    later = TokenVectorStore(path, "m@1", codec="residual")
    assert later.fitted_codec == "pq"
    assert all(np.array_equal(before[k], v) for k, v in later.get(batch).items())
    later.put({"new": batch["k0"]})
    assert len(later._db.execute("SELECT codes FROM tokens WHERE key = 'new'").fetchone()[0]) == 100 * 12


def gaussian_with_spread_axes(rng, rows: int, dim: int = 64) -> np.ndarray:
    """Gaussian vectors whose dimensions' spreads fall from 2 to 0.2, like principal axes."""
    return (rng.normal(size=(rows, dim)) * np.linspace(2.0, 0.2, dim)).astype(np.float32)


@pytest.mark.parametrize(("bits", "lloyd_max_error"), [(1, 0.3634), (2, 0.1175), (4, 0.009497)])
def test_residual_error_is_that_of_the_best_buckets_for_a_gaussian(bits, lloyd_max_error):
    rng = np.random.default_rng(bits)
    vectors = gaussian_with_spread_axes(rng, 20_000)
    # One centroid: the residual is the Gaussian itself, whose least squared error with 2**bits
    # levels a dimension is Lloyd–Max's (a fraction of each dimension's variance).
    codec = ResidualCodec.fit(vectors, dims=64, bits=bits, centroids=1)
    back = codec.decode(codec.encode(vectors))
    residual = vectors - codec.centroids[0]
    error = ((back - vectors) ** 2).sum(axis=0) / (residual ** 2).sum(axis=0)
    assert error.mean() < lloyd_max_error * 1.1 and error.max() < lloyd_max_error * 1.3
    assert not codec.unit_length and back.dtype == np.float32


def test_cutting_the_residual_to_its_principal_axes_loses_only_what_lies_outside_them(tmp_path):
    rng = np.random.default_rng(4)
    axes = np.linalg.qr(rng.normal(size=(64, 16)))[0].T  # 16 orthonormal directions in 64 dimensions
    centres = 4 * rng.normal(size=(8, 64))
    flat = (centres[rng.integers(0, 8, 20_000)] + rng.normal(size=(20_000, 16)) @ axes).astype(np.float32)
    codec = ResidualCodec.fit(flat, dims=16, bits=2, centroids=8)
    assert codec.projection.shape == (64, 16)
    back = codec.decode(codec.encode(flat))
    residual = flat - codec.centroids[codec.encode(flat)[:, :2].copy().view("<u2").ravel()]
    assert ((back - flat) ** 2).sum() / (residual ** 2).sum() < 0.15  # two bits' error, nothing cut
    spread = gaussian_with_spread_axes(rng, 20_000)
    cut = ResidualCodec.fit(spread, dims=16, bits=2, centroids=1)
    # Isotropic enough that 48 of 64 axes hold most of it: the cut costs what they held.
    lost = ((cut.decode(cut.encode(spread)) - spread) ** 2).sum() / ((spread - cut.centroids[0]) ** 2).sum()
    held = (np.linspace(2.0, 0.2, 64)[:16] ** 2).sum() / (np.linspace(2.0, 0.2, 64) ** 2).sum()
    assert abs(lost - (1 - held) - held * 0.1175) < 0.03


@pytest.mark.parametrize(("dims", "bits", "code_bytes"),
                         [(128, 1, 18), (128, 2, 34), (192, 2, 50), (384, 1, 50), (384, 2, 98), (384, 4, 194)])
def test_residual_codes_take_the_bytes_a_token_the_module_names(dims, bits, code_bytes):
    vectors = np.random.default_rng(0).normal(size=(600, 384)).astype(np.float32)
    codec = ResidualCodec.fit(vectors, dims=dims, bits=bits, centroids=16)
    codes = codec.encode(vectors[:7])
    assert codec.code_bytes == code_bytes and codes.shape == (7, code_bytes) and codes.dtype == np.uint8
    again = ResidualCodec.from_bytes(codec.to_bytes(), code_bytes, 384)
    assert np.array_equal(again.decode(codes), codec.decode(codes))
    assert (codec.projection is None) == (dims == 384)


def test_residual_shapes_that_do_not_fill_bytes_or_fit_the_vectors_are_refused():
    vectors = np.zeros((300, 64), np.float32)
    for dims, bits, centroids in ((12, 1, 8), (68, 2, 8), (64, 3, 8), (64, 2, 301), (64, 2, 2**16 + 1)):
        with pytest.raises(ValueError):
            ResidualCodec.fit(vectors, dims=dims, bits=bits, centroids=centroids)
    for spec in ("int8-4", "residual-128", "residual-128x2-1024", "pq-many", "opq-16"):
        with pytest.raises(ValueError):
            codec_options(spec)
    assert codec_options("residual") == {"codec": "residual"}


def stdlib_paragraphs(count: int) -> list[str]:
    """Paragraphs of English prose that do not change with this repository: the standard library's docstrings."""
    import importlib
    import inspect

    paragraphs: list[str] = []
    for name in ("argparse", "json", "logging", "pathlib", "textwrap", "csv", "sqlite3", "zipfile", "shutil",
                 "subprocess", "threading", "unittest"):
        module = importlib.import_module(name)
        docs = [inspect.getdoc(module)] + [inspect.getdoc(member) for _, member in sorted(vars(module).items())
                                           if callable(member) and getattr(member, "__module__", None) == name]
        for doc in docs:
            for paragraph in (doc or "").split("\n\n"):
                paragraph = " ".join(paragraph.split())
                if len(paragraph.split()) >= 12 and paragraph not in paragraphs:
                    paragraphs.append(paragraph)
    return paragraphs[:count]


def test_residual_codes_of_real_minilm_token_vectors_keep_late_interaction_scores_close(embedder):
    from arag.embeddings.embedder import max_sim

    vectors = embedder.token_vectors(stdlib_paragraphs(180))
    sample, unseen = np.concatenate(vectors[:120]), vectors[120:]  # fitted on some texts, scored on others
    queries = embedder.token_vectors(["how do I run a command and read its output?", "write rows to a spreadsheet file",
                                      "start a background thread", "parse command-line options"])
    cosines, score_errors = [], []
    for dims, bits in ((384, 2), (128, 2), (128, 1)):
        codec = ResidualCodec.fit(sample, dims=dims, bits=bits)
        back = [codec.decode(codec.encode(v)) for v in unseen]
        assert codec.unit_length and all(np.allclose(np.linalg.norm(b, axis=1), 1, atol=1e-5) for b in back)
        cosines.append(np.mean([(b * v).sum(axis=1).mean() for b, v in zip(back, unseen)]))
        score_errors.append(np.mean([abs(max_sim(q, b) - max_sim(q, v)) for q in queries for b, v in zip(back, unseen)]))
    # 98, 34 and 18 bytes a token: each fewer bytes moves the vectors, and their scores, further.
    assert cosines[0] > 0.9 and cosines[1] > 0.72 and cosines[2] > 0.6 and cosines == sorted(cosines, reverse=True)
    assert score_errors[0] < 0.025 and score_errors[1] < 0.05 and score_errors[2] < 0.08
    assert score_errors == sorted(score_errors)


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


def test_by_default_an_ingest_stores_token_vectors_as_residuals_in_every_dimension(settings, embedder, tmp_path,
                                                                                 monkeypatch):
    import json

    import arag.index.token_store as token_store
    from arag.embeddings.embedder import max_sim
    from arag.index.store import ChunkStore
    from arag.ingestion.ingest import Ingestor
    from arag.settings import Settings

    assert Settings.model_fields["token_vector_codec"].default == "residual"
    monkeypatch.setattr(token_store, "CODEBOOK_FIT_TOKENS", 2000)  # the stand-in corpus is smaller than 20,000 tokens
    default = settings.model_copy(update={"token_vector_codec": "residual", "collection": "residual-default"})
    docs = tmp_path / "stdlib"
    docs.mkdir()
    paragraphs = stdlib_paragraphs(120)
    (docs / "paragraphs.jsonl").write_text("".join(json.dumps({"id": str(i), "title": f"P{i}", "text": p}) + "\n"
                                                   for i, p in enumerate(paragraphs)))
    ingestor = Ingestor(default, embedder, ChunkStore(default, embedder.model_id, embedder.dim))
    assert ingestor.ingest([docs], progress=False).chunks_written >= 120  # a long paragraph takes two chunks
    tokens = ingestor.tokens
    assert tokens.fitted_codec == "residual"
    codec = tokens._codebook()
    assert codec.projection is None and codec.dims == embedder.dim == 384 and codec.bits == 4
    assert codec.code_bytes == 2 + 384 * 4 // 8
    texts = list(chunk_texts(ingestor.store).values())
    stored = tokens.vectors_for(texts[:10], embedder)
    fresh = embedder.token_vectors(texts[:10])
    assert [len(s) for s in stored] == [len(f) for f in fresh]
    query = embedder.token_vectors(["how do I read a file line by line?"])[0]
    assert max(abs(max_sim(query, s) - max_sim(query, f)) for s, f in zip(stored, fresh)) < 0.03
    row = tokens._db.execute("SELECT codes, scales FROM tokens WHERE key = ?", (text_key(texts[0]),)).fetchone()
    assert row[1] is None and len(row[0]) == len(stored[0]) * codec.code_bytes


def test_bucketing_by_comparison_agrees_with_a_sorted_search_even_on_the_cutoffs():
    from arag.index.residual_codec import bucket_of

    rng = np.random.default_rng(4)
    cutoffs = np.sort(rng.normal(size=(16, 3)).astype(np.float32), axis=1)
    values = rng.normal(size=(500, 16)).astype(np.float32)
    values[:16] = cutoffs[:, 1]  # values that sit exactly on a cutoff fall below it, as searchsorted's left side puts them
    expected = np.stack([np.searchsorted(cutoffs[d], values[:, d]) for d in range(16)], axis=1)
    assert np.array_equal(bucket_of(values, cutoffs), expected)


def test_encoding_in_blocks_gives_the_codes_of_encoding_at_once(monkeypatch):
    import arag.index.residual_codec as residual_codec

    vectors = clustered_tokens(np.random.default_rng(5), 1000)
    codec = ResidualCodec.fit(vectors, dims=32, bits=2, centroids=32)
    whole = codec.encode(vectors)
    monkeypatch.setattr(residual_codec, "ENCODE_BLOCK", 96)  # blocks that do not divide the rows
    assert np.array_equal(codec.encode(vectors), whole)
    assert np.array_equal(np.concatenate([codec.encode(vectors[:500]), codec.encode(vectors[500:])]), whole)
