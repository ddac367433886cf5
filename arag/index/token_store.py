"""Token vectors of indexed chunks, kept from the ingest pass for late-interaction scoring.

Late interaction (ColBERT's max-sim, and the multi-vector part of the ``multi`` scorer) needs
every candidate's token vectors. Computing them at question time means an encoder pass over
all candidates (about 1.4 s for 30 HotpotQA paragraphs on 2 cores); ingestion computes them
anyway, in the same forward pass as the chunk's pooled vector, so they are stored here and a
rerank only encodes the question.

Vectors are stored per token as int8 codes with a float16 scale (``codec="int8"``:
symmetric quantisation, about 390 bytes a token, a quarter of float32; on HotpotQA paragraphs
the max-sim scores move by less than 5e-4, ``bench/rerank_speed.py``), product-quantised
(``codec="pq"``: ``subvectors`` bytes a token, :mod:`arag.index.product_quantizer`) or
residual-compressed as ColBERTv2 does (``codec="residual"``: a centroid id and
``residual_dims`` dimensions of ``residual_bits`` bits; by default all of the model's dimensions at
4 bits, 194 bytes a token for MiniLM, half of int8's: 2 bits rank as well but cost answers on
HotpotQA and 2Wiki (README, "Token vectors at a quarter of the bytes"),
:mod:`arag.index.residual_codec`). The two learnt codecs fit their codebook on the first batch
that brings enough tokens (``CODEBOOK_FIT_TOKENS``) and keep it in the file; rows written
before it exists stay int8, so a small collection never waits for a codebook it cannot fit,
and every kind is read back alike, as vectors of the model's own space. A file keeps the first
codebook stored in it, whichever learnt codec asked for it. Each Chroma
collection has its own file, keyed by the hash of the text the encoder saw (the chunk's
``text_hash``), so a text is encoded once however often it is scored. Texts scored that were
never ingested (web results) are stored too, and dropped at the next ingest that changes the
collection. SQLite in WAL mode lets several processes read and write the file.

Example:
    >>> import tempfile, numpy as np
    >>> store = TokenVectorStore(Path(tempfile.mkdtemp()) / "t.sqlite", model_id="demo@1")
    >>> store.put({"abc": np.eye(2, 4, dtype=np.float32)})
    >>> got = store.get(["abc", "missing"])
    >>> got["abc"].shape, "missing" in got
    ((2, 4), False)
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from tqdm import tqdm

from arag.index.product_quantizer import ProductQuantizer
from arag.index.residual_codec import ResidualCodec
from arag.settings import TOKEN_VECTOR_CODEC_PATTERN

#: Tokens one batch must bring before a codebook (product or residual quantisation) is fitted on it.
CODEBOOK_FIT_TOKENS = 20_000
#: The codecs that learn a codebook from the collection, by name; each reads back with ``from_bytes``.
LEARNT_CODECS = {"pq": ProductQuantizer, "residual": ResidualCodec}
CODECS = ("int8", *LEARNT_CODECS)
#: How a residual code is shaped where its spec leaves it open: all of the model's dimensions (None) at 4 bits.
RESIDUAL_DEFAULTS = {"residual_dims": None, "residual_bits": 4, "residual_centroids": 256}


def codec_options(spec: str) -> dict:
    """Store options named by a codec spec: ``int8``, ``pq-BYTES`` or ``residual-DIMSxBITS[-kCENTROIDS]``.

    The spec is checked against the settings' own pattern, so a setting and a benchmark variant read
    alike. Leaving out the numbers keeps the store's defaults (``pq``: 48 bytes; ``residual``: all of
    the model's dimensions at 4 bits, 256 centroids).

    Example:
        >>> codec_options("pq-32")
        {'codec': 'pq', 'subvectors': 32}
        >>> codec_options("residual-128x1-k1024")
        {'codec': 'residual', 'residual_dims': 128, 'residual_bits': 1, 'residual_centroids': 1024}
    """
    if not re.fullmatch(TOKEN_VECTOR_CODEC_PATTERN, spec):
        raise ValueError(f"unknown token-vector codec {spec!r}; use int8, pq-BYTES or residual-DIMSxBITS[-kCENTROIDS] "
                         "(BITS 1, 2 or 4)")
    codec, _, size = spec.partition("-")
    if not size:
        return {"codec": codec}
    if codec == "pq":
        return {"codec": codec, "subvectors": int(size)}
    shape, _, centroids = size.partition("-k")
    dims, bits = shape.split("x")
    return {"codec": codec, "residual_dims": int(dims), "residual_bits": int(bits),
            **({"residual_centroids": int(centroids)} if centroids else {})}


def text_key(text: str) -> str:
    """The key of the text the encoder saw: the same hash ingestion stores as ``text_hash``."""
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def quantise(vectors: np.ndarray) -> tuple[int, bytes, bytes]:
    """Width (0 for no tokens), int8 codes and float16 per-token scales of a (tokens, dim) float array."""
    scale = np.abs(vectors).max(axis=1, keepdims=True) / 127.0
    scale[scale == 0] = 1.0
    codes = np.clip(np.rint(vectors / scale), -127, 127).astype(np.int8)
    return (int(vectors.shape[1]) if len(vectors) else 0), codes.tobytes(), scale.astype(np.float16).tobytes()


def dequantise(dim: int, codes: bytes, scales: bytes) -> np.ndarray:
    if dim == 0:
        return np.zeros((0, 0), dtype=np.float32)
    matrix = np.frombuffer(codes, dtype=np.int8).reshape(-1, dim).astype(np.float32)
    return matrix * np.frombuffer(scales, dtype=np.float16).astype(np.float32)[:, None]


def token_store_path(data_dir: Path, collection: str) -> Path:
    return Path(data_dir) / "token-vectors" / f"{collection}.sqlite"


def drop_token_store(data_dir: Path, collection: str) -> None:
    """Delete a collection's token-vector file (and SQLite's side files) along with the collection."""
    path = token_store_path(data_dir, collection)
    for suffix in ("", "-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)


def resolved_codec(spec: str) -> dict:
    """``codec_options(spec)`` with the store's defaults filled in: how new rows are written, whatever the
    defaults of the day (a bare ``residual`` meant 2 bits on 2026-12-07 and 4 since).

    Example:
        >>> resolved_codec("residual-384x2")
        {'codec': 'residual', 'residual_dims': 384, 'residual_bits': 2, 'residual_centroids': 256}
    """
    options = codec_options(spec)
    return {"codec": options["codec"], **RESIDUAL_DEFAULTS, **options} if options["codec"] == "residual" else options


def token_store_for(settings, store) -> "TokenVectorStore | None":
    """The token-vector store of a :class:`knowledge.store.ChunkStore`; None when ``store_token_vectors`` is off."""
    if not settings.store_token_vectors:
        return None
    return TokenVectorStore.for_collection(settings.data_dir, store.name, store.model_id,
                                           **{"subvectors": settings.token_vector_bytes,
                                              **codec_options(settings.token_vector_codec)})


class TokenVectorStore:
    """Quantised token vectors by text hash, for one embedding model.

    ``codec`` picks how new rows are written (:data:`CODECS`); ``subvectors`` shapes ``pq``
    codes, ``residual_dims``, ``residual_bits`` and ``residual_centroids`` shape ``residual``
    ones (:class:`arag.index.residual_codec.ResidualCodec`). A file written by another model is
    emptied on open: its vectors would score wrongly.
    """

    def __init__(self, path: Path, model_id: str, codec: str = "int8", subvectors: int = 48,
                 residual_dims: int | None = RESIDUAL_DEFAULTS["residual_dims"],
                 residual_bits: int = RESIDUAL_DEFAULTS["residual_bits"],
                 residual_centroids: int = RESIDUAL_DEFAULTS["residual_centroids"]):
        if codec not in CODECS:
            raise ValueError(f"unknown token-vector codec {codec!r}; use one of {', '.join(CODECS)}")
        self.path = Path(path)
        self.model_id = model_id
        self.codec = codec
        self.subvectors = subvectors
        self.residual = {"dims": residual_dims, "bits": residual_bits, "centroids": residual_centroids}
        self._quantizer: ProductQuantizer | ResidualCodec | None = None
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path), timeout=30, check_same_thread=False, isolation_level=None)
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            # Without a sync at every commit: WAL keeps the file whole after a crash, and a text whose
            # vectors a power cut took is encoded again when it is next read (``vectors_for``).
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            self._db.execute("CREATE TABLE IF NOT EXISTS tokens (key TEXT PRIMARY KEY, dim INTEGER, codes BLOB, scales BLOB)")
            # One codebook per file; a row's ``scales`` is NULL when the codebook wrote its codes.
            # ``subvectors`` is the bytes of one token's code (a product quantiser's sub-vectors).
            self._db.execute("CREATE TABLE IF NOT EXISTS codebook (id INTEGER PRIMARY KEY CHECK (id = 1), "
                             "subvectors INTEGER, dim INTEGER, centroids BLOB, codec TEXT NOT NULL DEFAULT 'pq')")
            self._db.execute("BEGIN IMMEDIATE")
            # Files from before the residual codec have no ``codec`` column: their codebook is a product quantiser's.
            if "codec" not in {column[1] for column in self._db.execute("PRAGMA table_info(codebook)")}:
                self._db.execute("ALTER TABLE codebook ADD COLUMN codec TEXT NOT NULL DEFAULT 'pq'")
            row = self._db.execute("SELECT value FROM meta WHERE key = 'model_id'").fetchone()
            if row is None or row[0] != model_id:
                self._db.execute("DELETE FROM tokens")
                self._db.execute("DELETE FROM codebook")
                self._db.execute("INSERT OR REPLACE INTO meta VALUES ('model_id', ?)", (model_id,))
            self._db.execute("COMMIT")

    @classmethod
    def for_collection(cls, data_dir: Path, collection: str, model_id: str, codec: str = "int8",
                       **options) -> "TokenVectorStore":
        """The store of a Chroma collection (built by ``model_id``) under ``data_dir/token-vectors``.

        ``options`` are the codec's (``subvectors``, ``residual_dims``…), as :func:`codec_options` names them.
        """
        return cls(token_store_path(data_dir, collection), model_id, codec, **options)

    def _codebook(self) -> ProductQuantizer | ResidualCodec | None:
        """The file's codebook, if one was fitted (by this process or another); call under the lock."""
        if self._quantizer is None:
            row = self._db.execute("SELECT codec, subvectors, dim, centroids FROM codebook WHERE id = 1").fetchone()
            if row is not None:
                codec, code_bytes, dim, data = row
                self._quantizer = LEARNT_CODECS[codec].from_bytes(data, code_bytes, dim)
        return self._quantizer

    @property
    def fitted_codec(self) -> str | None:
        """The learnt codec whose codebook the file holds (``"pq"``, ``"residual"``); None while every row is int8."""
        with self._lock:
            row = self._db.execute("SELECT codec FROM codebook WHERE id = 1").fetchone()
        return row[0] if row else None

    def _fit(self, vectors: np.ndarray) -> ProductQuantizer | ResidualCodec:
        if self.codec == "pq":
            return ProductQuantizer.fit(vectors, self.subvectors)
        return ResidualCodec.fit(vectors, **self.residual)

    def _fit_tokens(self) -> int:
        """Tokens a batch must bring to fit this store's codebook: k-means needs a point a centroid at least."""
        return max(CODEBOOK_FIT_TOKENS, self.residual["centroids"] if self.codec == "residual" else 0)

    def _decode(self, rows: Iterable[tuple]) -> dict[str, np.ndarray]:
        """Vectors of stored ``(key, dim, codes, scales)`` rows; call under the lock.

        The codebook's rows are decoded in one call, so its fixed costs (look-ups, the residual's
        matrix product) are paid once for all of a rerank's candidates, not once each.
        """
        out: dict[str, np.ndarray] = {}
        learnt: list[tuple[str, bytes]] = []
        for key, dim, codes, scales in rows:
            if scales is not None or dim == 0:
                out[key] = dequantise(dim, codes, scales)
            else:
                learnt.append((key, codes))
        if learnt:
            codebook = self._codebook()
            vectors = codebook.decode(np.frombuffer(b"".join(codes for _, codes in learnt), dtype=np.uint8))
            ends = np.cumsum([len(codes) // codebook.code_bytes for _, codes in learnt])
            out.update((key, part) for (key, _), part in zip(learnt, np.split(vectors, ends[:-1])))
        return out

    def _rows(self, vectors: dict[str, np.ndarray]) -> list[tuple]:
        """Rows to write; fits the codebook first when a learnt codec is on and none exists."""
        quantizer = None
        if self.codec in LEARNT_CODECS:
            with self._lock:
                quantizer = self._codebook()
            tokens = sum(len(v) for v in vectors.values())
            if quantizer is None and tokens >= self._fit_tokens():
                fitted = self._fit(np.concatenate([v for v in vectors.values() if len(v)]))
                with self._lock:
                    self._db.execute("BEGIN IMMEDIATE")
                    # Another process may have fitted one meanwhile: the first stored is everyone's.
                    self._db.execute("INSERT OR IGNORE INTO codebook (id, subvectors, dim, centroids, codec) "
                                     "VALUES (1, ?, ?, ?, ?)", (fitted.code_bytes, fitted.dim, fitted.to_bytes(), self.codec))
                    self._db.execute("COMMIT")
                    quantizer = self._codebook()
        rows = []
        for key, v in vectors.items():
            if quantizer is not None and len(v) and v.shape[1] == quantizer.dim:
                rows.append((key, int(v.shape[1]), quantizer.encode(v).tobytes(), None))
            else:
                rows.append((key, *quantise(v)))
        return rows

    def get(self, keys: Iterable[str]) -> dict[str, np.ndarray]:
        """Stored vectors of the keys that have them."""
        keys = list(dict.fromkeys(keys))
        out: dict[str, np.ndarray] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                part = keys[start : start + 500]
                out.update(self._decode(self._db.execute(
                    f"SELECT key, dim, codes, scales FROM tokens WHERE key IN ({','.join('?' * len(part))})", part)))
        return out

    def put(self, vectors: dict[str, np.ndarray]) -> None:
        rows = self._rows(vectors)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("INSERT OR REPLACE INTO tokens VALUES (?, ?, ?, ?)", rows)
            self._db.execute("COMMIT")

    def vectors_for(self, texts: list[str], embedder) -> list[np.ndarray]:
        """Token vectors of ``texts``: stored ones read back, the others encoded now and stored."""
        keys = [text_key(t) for t in texts]
        found = self.get(keys)
        missing = [i for i, k in enumerate(keys) if k not in found]
        if missing:
            fresh = {keys[i]: v for i, v in zip(missing, embedder.token_vectors([texts[i] for i in missing]))}
            rows = self._rows(fresh)
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany("INSERT OR REPLACE INTO tokens VALUES (?, ?, ?, ?)", rows)
                self._db.execute("COMMIT")
                # As stored, so a score does not depend on whether the text was stored before.
                found.update(self._decode(rows))
        return [found[k] for k in keys]

    def fill(self, texts: list[str], embedder, progress: bool = False, step: int = 256) -> np.ndarray:
        """Encode ``texts``, documents being indexed, once: store their token vectors and return their pooled vectors.

        Texts go to the encoder ``step`` at a time (their token vectors are held in memory until
        stored), longest first over all of ``texts``: each step's batches then hold texts of
        nearly one length, as if all were sorted together, so little padding is encoded
        (measured on dev-250's paragraphs: 8% fewer tokens than sorting within each step, 1.1
        times the encoder's speed).
        """
        pooled = np.zeros((len(texts), embedder.dim), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))  # characters, a proxy for tokens
        with tqdm(total=len(texts), unit="chunk", desc="embed", leave=False, disable=not progress or len(texts) <= step) as bar:
            for start in range(0, len(order), step):
                members = order[start : start + step]
                part = [texts[i] for i in members]
                pooled[members], vectors = embedder.encode(part, tokens=True, progress=progress and len(texts) <= step,
                                                            bulk=True)
                self.put({text_key(t): v for t, v in zip(part, vectors)})
                bar.update(len(part))
        return pooled

    def retain(self, keys: Iterable[str]) -> int:
        """Drop every entry whose key is not in ``keys`` (texts no longer indexed); return how many."""
        keep = set(keys)
        with self._lock:
            stored = [k for (k,) in self._db.execute("SELECT key FROM tokens")]
            gone = [k for k in stored if k not in keep]
            if gone:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany("DELETE FROM tokens WHERE key = ?", [(k,) for k in gone])
                self._db.execute("COMMIT")
        return len(gone)

    def disk_bytes(self) -> int:
        """Size of the file once SQLite's write-ahead log is folded into it."""
        with self._lock:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return self.path.stat().st_size

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM tokens").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
