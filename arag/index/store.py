"""The Chroma collection that holds chunks, their vectors and their metadata.

Embeddings are always given explicitly (the collection has no embedding function, so
Chroma never tries to download its default model). The collection's metadata records
which embedding model built it; querying it with another model is refused.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from arag.embeddings.embedder import Embedder, backend_for_vectors, split_int8_tag
from arag.index.token_store import drop_token_store
from arag.model_registry import ModelRegistry
from arag.settings import Settings

#: Collection metadata that a store on a Chroma server changes after each of its writes (see
#: :meth:`ChunkStore.write_stamp`).
WRITE_TOKEN = "arag_write"


class IndexMismatch(RuntimeError):
    """The collection was built with a different embedding model."""


@dataclass
class ChunkRecord:
    id: str
    text: str
    metadata: dict
    embedding: np.ndarray | None = None


class IndexUnavailable(RuntimeError):
    """The Chroma server cannot be reached (or answered with an error)."""


def open_client(settings: Settings):
    """Chroma's HTTP client when ``chroma_url`` is set, else the embedded persistent client."""
    import chromadb  # here, not at the top: chromadb takes about 0.4 s to import, and only opening a store needs it
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    if settings.chroma_url:
        url = urlparse(settings.chroma_url)
        try:
            return chromadb.HttpClient(host=url.hostname or "127.0.0.1", port=url.port or (443 if url.scheme == "https" else 8000),
                                       ssl=url.scheme == "https", settings=chroma_settings)
        except Exception as exc:  # noqa: BLE001 - the client checks the server on creation
            raise IndexUnavailable(f"the Chroma server at {settings.chroma_url} cannot be reached ({_reason(exc)})") from exc
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(settings.chroma_path), settings=chroma_settings)


def _reason(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:200]


def recorded_embedding_model(client, name: str) -> str | None:
    """The embedding model id collection ``name`` records; None when it does not exist yet."""
    from chromadb.errors import NotFoundError

    try:
        collection = client.get_collection(name)
    except (NotFoundError, ValueError):  # ValueError: what Chroma raised for a missing collection before 1.0
        return None
    return (collection.metadata or {}).get("embedding_model")


def embedder_for(settings: Settings, connect: Callable[[], Any], name: str | None = None) -> Embedder:
    """The embedder for collection ``name`` (default: the registry's): with ``embedding_backend`` "auto"
    it runs as the collection's vectors were made, and a collection not made yet gets fp32
    (:data:`embeddings.embedder.NEW_COLLECTION_BACKEND`).

    ``connect`` gives the Chroma client, called only for "auto": a fixed backend needs no look at the
    collection, so a process that only embeds or counts tokens opens no client.
    """
    built_with = None
    if settings.embedding_backend == "auto":
        built_with = recorded_embedding_model(connect(), name or ModelRegistry(settings).chroma_collection())
    return Embedder.from_settings(settings, built_with=built_with)


class ChunkStore:
    """A Chroma collection of chunks built by one embedding model.

    Example:
        >>> import tempfile, numpy as np
        >>> store = ChunkStore(Settings(data_dir=tempfile.mkdtemp()), model_id="demo@1", dim=3)
        >>> store.upsert([ChunkRecord("a", "hello", {"file": "f"}, np.ones(3, np.float32))])
        >>> store.count()
        1
    """

    def __init__(self, settings: Settings, model_id: str, dim: int, client=None, name: str | None = None):
        self.settings = settings
        self.model_id = model_id
        self.dim = dim
        self._client = client
        self._collection = None
        self._strategy: str | None = None
        self._known_to_hold_chunks = False
        #: The Chroma collection: the one the registry's active embedder fills, unless named here.
        self.name = name or ModelRegistry(settings).chroma_collection()

    @property
    def client(self):
        if self._client is None:
            self._client = open_client(self.settings)
        return self._client

    @property
    def collection(self):
        if self._collection is None:
            col = self.client.get_or_create_collection(
                self.name,
                embedding_function=None,
                metadata={"hnsw:space": "cosine", "hnsw:search_ef": self.search_breadth(0),
                          "embedding_model": self.model_id, "dim": self.dim,
                          "index_strategy": self._strategy or self.settings.index_strategy},
            )
            built_with = (col.metadata or {}).get("embedding_model")
            if built_with not in (None, self.model_id):
                raise IndexMismatch(mismatch_message(self.name, built_with, self.model_id))
            self._collection = col
        return self._collection

    @contextmanager
    def reachable(self):
        """Inside it, a Chroma server that fails or cannot be reached raises :class:`IndexUnavailable`."""
        try:
            yield
        except (IndexUnavailable, IndexMismatch):
            raise
        except Exception as exc:
            if self.settings.chroma_url is None:
                raise
            raise IndexUnavailable(f"the Chroma server at {self.settings.chroma_url} failed ({_reason(exc)})") from exc

    @property
    def index_strategy(self) -> str:
        """How the collection was chunked ("chunks" or "parent"), as recorded when it was created."""
        return (self.collection.metadata or {}).get("index_strategy", "chunks")

    @index_strategy.setter
    def index_strategy(self, value: str) -> None:
        """The strategy a collection created from now on records (used on an empty, dropped one)."""
        self._strategy = value

    def drop(self) -> None:
        """Delete the whole Chroma collection (used once its chunks live on in another) and its token vectors."""
        self.client.delete_collection(self.name)
        self._collection = None
        self._known_to_hold_chunks = False
        drop_token_store(self.settings.data_dir, self.name)

    def count(self) -> int:
        """The number of chunks. Chroma counts by a scan: 49 ms at 1,000,000 chunks, where a top-10 query takes 2.4."""
        return self.collection.count()

    def is_empty(self) -> bool:
        """Whether the collection holds no chunks, counted only until it is seen to hold some.

        The question path asks this before every search, so it must not cost a count each time.
        Chunks that another process deleted since are harmless: a query of an emptied collection
        returns nothing. This store's own deletions count again.
        """
        if not self._known_to_hold_chunks:
            self._known_to_hold_chunks = self.count() > 0
        return not self._known_to_hold_chunks

    def write_stamp(self) -> tuple[str, int | str] | None:
        """A value that changes with every write to the collection, cheap to read; None where there is none.

        Embedded Chroma numbers each write (add, upsert, update, delete) in its log, and its metadata
        segment records the number of the last one it applied, in the same transaction as the rows:
        the stamp is (collection id, that number), read from its SQLite database opened read-only in
        a fraction of a millisecond. It moves with any process's writes. A Chroma server has no such
        number to read, so this store gives the collection a new random token (:data:`WRITE_TOKEN`,
        in its metadata) after each of its writes, and the stamp is (collection id, token), one small
        request to read. Writes by programs other than arag go unseen there until
        arag's next write. Either way a read of the collection taken after reading the stamp holds
        at least what the stamp covers, so a stamp still equal later means nothing was written since.
        """
        database = self._database_file()
        if database is None:
            if not self.settings.chroma_url:
                return None
            current = self.client.get_collection(self.name)  # asked afresh: the token is another process's too
            token = (current.metadata or {}).get(WRITE_TOKEN)
            return (str(current.id), token) if token else None
        collection_id = str(self.collection.id)
        try:
            with closing(sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True, timeout=10)) as con:
                row = con.execute(
                    "SELECT m.seq_id FROM segments s JOIN max_seq_id m ON m.segment_id = s.id "
                    "WHERE s.collection = ? AND s.scope = 'METADATA'", (collection_id,)).fetchone()
        except sqlite3.Error:
            return None  # a database laid out otherwise (another Chroma version): callers read the collection
        if row is None or row[0] is None:
            return None
        number = int.from_bytes(row[0], "big") if isinstance(row[0], bytes) else int(row[0])
        return (collection_id, number)

    def _database_file(self) -> Path | None:
        """The SQLite file of an embedded, persistent Chroma; None for a server or an in-memory client."""
        try:
            conf = self.client.get_settings()
        except AttributeError:
            return None
        if not conf.is_persistent or not conf.persist_directory or self.settings.chroma_url:
            return None
        return Path(conf.persist_directory).resolve() / "chroma.sqlite3"  # absolute: a relative path has no URI

    def _note_write(self) -> None:
        """After a write to a Chroma server: a new :data:`WRITE_TOKEN` (see :meth:`write_stamp`)."""
        if not self.settings.chroma_url:
            return
        current = self.client.get_collection(self.name).metadata or {}
        # Chroma replaces the whole metadata and refuses its "hnsw:" keys here; the collection's
        # configuration keeps what they set.
        kept = {key: value for key, value in current.items() if not key.startswith("hnsw:")}
        self.collection.modify(metadata={**kept, WRITE_TOKEN: uuid.uuid4().hex})

    def _batch_size(self) -> int:
        try:
            return max(1, min(5000, self.client.get_max_batch_size()))
        except AttributeError:
            return 5000

    def search_breadth(self, count: int) -> int:
        """The HNSW search breadth (ef_search) this collection should have at ``count`` chunks."""
        fixed = self.settings.hnsw_search_ef
        return search_breadth_for(count) if fixed == "auto" else fixed

    def fit_search_breadth(self) -> int | None:
        """Give the collection the search breadth its size calls for; return it when it changed.

        Chroma applies a changed breadth in processes that open the collection afterwards, so the
        next question's process searches with it. A collection made before ``auto`` (breadth 64)
        is raised at its next ingest.
        """
        wanted = self.search_breadth(self.count())
        configuration = getattr(self.collection, "configuration_json", None) or {}
        if (configuration.get("hnsw") or {}).get("ef_search") == wanted:
            return None
        self.collection.modify(configuration={"hnsw": {"ef_search": wanted}})
        return wanted

    def upsert(self, records: list[ChunkRecord]) -> None:
        step = self._batch_size()
        for i in range(0, len(records), step):
            batch = records[i : i + step]
            self.collection.upsert(
                ids=[r.id for r in batch],
                documents=[r.text for r in batch],
                metadatas=[r.metadata for r in batch],
                embeddings=np.stack([r.embedding for r in batch]).astype(np.float32),
            )
        if records:
            self._note_write()

    def delete_ids(self, ids: list[str]) -> None:
        self._known_to_hold_chunks = False
        step = self._batch_size()
        for i in range(0, len(ids), step):
            self.collection.delete(ids=ids[i : i + step])
        if ids:
            self._note_write()

    def iter_metadata(self, page: int = 5000) -> Iterator[tuple[str, dict]]:
        """Every chunk's id and metadata, paged so memory stays flat on large collections."""
        offset = 0
        while True:
            got = self.collection.get(include=["metadatas"], limit=page, offset=offset)
            ids = got["ids"]
            if not ids:
                return
            yield from zip(ids, got["metadatas"])
            offset += len(ids)

    def read(self, where: dict | None = None, page: int = 5000) -> list[dict]:
        """Every chunk within ``where`` (all, without one), as :meth:`query` returns them with score 0,
        in ingest order: by source, then position in the document.
        """
        hits, offset = [], 0
        while True:
            got = self.collection.get(where=where, include=["documents", "metadatas"], limit=page, offset=offset)
            if not got["ids"]:
                break
            hits += [{"id": i, "text": d, "metadata": m or {}, "score": 0.0}
                     for i, d, m in zip(got["ids"], got["documents"], got["metadatas"])]
            offset += len(got["ids"])
        return sorted(hits, key=lambda h: (str(h["metadata"].get("source", "")), int(h["metadata"].get("position") or 0)))

    def embeddings_for(self, ids: list[str]) -> dict[str, np.ndarray]:
        if not ids:
            return {}
        got = self.collection.get(ids=ids, include=["embeddings"])
        return {i: np.asarray(e, dtype=np.float32) for i, e in zip(got["ids"], got["embeddings"])}

    def query(self, vector: np.ndarray, k: int, where: dict | None = None) -> list[dict]:
        """Nearest chunks to ``vector``: dicts with id, text, metadata and cosine similarity (none when empty)."""
        res = self.collection.query(
            query_embeddings=[np.asarray(vector, dtype=np.float32)],
            n_results=k,
            where=where,
            include=["documents", "metadatas", "distances"],
        )
        return [
            {"id": i, "text": d, "metadata": m, "score": 1.0 - float(dist)}
            for i, d, m, dist in zip(res["ids"][0], res["documents"][0], res["metadatas"][0], res["distances"][0])
        ]


#: Up to this many chunks the narrower breadth below found the exact top 10 (bench/scaling.py).
NARROW_BREADTH_UP_TO = 100_000


def search_breadth_for(count: int) -> int:
    """Search breadth for ``count`` chunks: 256 up to 100,000 (recall@10 against exact search 0.990 at 10,000
    and 1.000 at 100,000), 512 above (0.986 at 1,000,000, where 256 found 0.961-0.981 in three runs and 64
    0.769), for 0.4 ms more a query at 1,000,000 (p95 2.7 against 2.3 ms; exact search 60 ms).
    """
    return 256 if count <= NARROW_BREADTH_UP_TO else 512


def mismatch_message(collection: str, built_with: str, configured: str) -> str:
    """What to change when a collection's vectors come from another model, or the same weights run otherwise."""
    weights_built, int8_built = split_int8_tag(built_with)
    if weights_built == split_int8_tag(configured)[0]:
        if int8_built == "+int8":
            return (f"collection {collection!r} was built with an earlier int8 export of this embedding model "
                    "(unsigned weights), which this version no longer makes; re-ingest the documents "
                    "into a new collection (ARAG_COLLECTION)")
        backend = backend_for_vectors(built_with)
        return (f"collection {collection!r} was built with the same embedding model run as {backend!r}; set "
                f"ARAG_EMBEDDING_BACKEND=auto (or {backend}) to use it, or re-ingest into a new collection "
                "(ARAG_COLLECTION)")
    return (f"collection {collection!r} was built with embedding model {built_with}, but {configured} is "
            "configured; set ARAG_EMBEDDING_MODEL back or re-ingest into a new collection (ARAG_COLLECTION)")
