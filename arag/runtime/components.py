"""The parts a graph runs with, built lazily from settings and swappable for tests.

Nodes receive a :class:`Components` bound at build time instead of reaching for globals,
so a test can hand the graph a fake chat model or a small store.

Example:
    >>> from langchain_core.language_models import FakeListChatModel
    >>> parts = Components(Settings(), llm=FakeListChatModel(responses=["hi"]))
    >>> parts.llm.invoke("hello").content
    'hi'
"""

from __future__ import annotations

import threading
from functools import cached_property

from langchain_core.language_models import BaseChatModel

from arag.embeddings.embedder import Embedder
from arag.index.lexical import LexicalIndex
from arag.index.store import ChunkStore, IndexUnavailable, embedder_for, open_client
from arag.index.token_store import token_store_for
from arag.index.tree import traverse
from arag.llms import factory as llm_factory
from arag.model_registry import ModelRegistry
from arag.relevance.judge import make_judge
from arag.retrieval.filters import filter_schema
from arag.retrieval.retriever import DenseRetriever, HybridRetriever, as_retrieved
from arag.settings import Settings
from arag.tables.catalog import TableCatalog


class Components:
    """Lazily built LLM, embedder, store and retriever for one set of settings."""

    def __init__(
        self,
        settings: Settings,
        llm: BaseChatModel | None = None,
        embedder: Embedder | None = None,
        store: ChunkStore | None = None,
    ):
        self.settings = settings
        self._llm = llm
        self._llms: dict[tuple, BaseChatModel] = {}
        self._embedder = embedder
        self._store = store
        self._lock = threading.Lock()
        self._judges: dict[str, object] = {}
        self._schema: tuple[object, dict] | None = None

    def judge_for(self, settings: Settings):
        """The :class:`relevance.RelevanceJudge` that ``settings.scorer`` names (one per scorer)."""
        with self._lock:
            if settings.scorer not in self._judges:
                self._judges[settings.scorer] = make_judge(
                    settings.scorer, self.embedder, ModelRegistry(self.settings),
                    lexical=self.lexical if settings.scorer == "multi" else None,
                    tokens=token_store_for(self.settings, self.store))
            return self._judges[settings.scorer]

    def llm_for(self, settings: Settings) -> BaseChatModel:
        """The chat model ``settings.llm`` names (one instance per value of the settings that make it, so that an
        evaluation's configuration that changes one gets a model made with it), or the injected one.
        """
        if self._llm is not None:
            return self._llm
        key = tuple(getattr(settings, name) for name in llm_factory.CHAT_MODEL_SETTINGS)
        with self._lock:
            if key not in self._llms:
                # Looked up on the module at each call, so that a test can stand in for the factory.
                self._llms[key] = llm_factory.make_chat_model(settings)
            return self._llms[key]

    def read_scope(self, settings: Settings) -> tuple[list[dict], str | None]:
        """(every chunk of the documents in scope, in the order ``settings.sources`` names them, else ingest
        order; error): what the long-context path reads.
        """
        try:
            with self.store.reachable():
                hits = self.store.read(sources_filter(settings))
        except IndexUnavailable as exc:
            return [], str(exc)
        if settings.sources:
            rank = {source: i for i, source in enumerate(settings.sources)}
            hits.sort(key=lambda h: rank.get(h["metadata"].get("source", ""), len(rank)))  # stable: positions stay
        return [as_retrieved(h) for h in hits if h["metadata"].get("kind") != "summary"], None

    def filter_schema(self) -> dict:
        """The collection's filterable metadata fields (:func:`knowledge.filters.filter_schema`), read again
        only after a write: one the store's write stamp shows, or, where it has none, one that changed
        the number of chunks (Chroma counts by a scan: 49 ms at a million chunks).
        """
        version = self.store.write_stamp() or self.store.count()
        with self._lock:
            if self._schema is None or self._schema[0] != version:
                self._schema = (version, filter_schema(self.store))
            return self._schema[1]

    def has_tree(self) -> bool:
        """Whether the collection holds summary nodes (``arag build-tree``)."""
        return bool(self.store.collection.get(where={"kind": "summary"}, limit=1, include=[])["ids"])

    @property
    def llm(self) -> BaseChatModel:
        return self.llm_for(self.settings)

    @cached_property
    def client(self):
        """The Chroma client, opened once for the embedder's look at the collection and the store."""
        return self._store.client if self._store is not None else open_client(self.settings)

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            if self._store is not None:  # a store handed in says which vectors it holds
                self._embedder = Embedder.from_settings(self.settings, built_with=self._store.model_id)
            else:
                try:
                    self._embedder = embedder_for(self.settings, lambda: self.client)
                except IndexUnavailable:
                    # The server is down, so which vectors the collection holds is asked again at the next
                    # use; meanwhile this one counts tokens (the same for every backend).
                    return Embedder.from_settings(self.settings)
        return self._embedder

    @cached_property
    def store(self) -> ChunkStore:
        return self._store or ChunkStore(self.settings, self.embedder.model_id, self.embedder.dim, client=self.client)

    @cached_property
    def tables(self) -> TableCatalog:
        """The tables ingested into this collection (CSV and SQLite files)."""
        return TableCatalog(self.settings.data_dir, self.settings.collection)

    @cached_property
    def lexical(self) -> LexicalIndex:
        return LexicalIndex(self.store)

    def retriever_for(self, settings: Settings) -> DenseRetriever | HybridRetriever:
        """BM25 fused with the embeddings when ``settings.retrieval`` is "hybrid", else embeddings only.

        Built per call (construction is free; the BM25 index is shared), so per-run settings apply.
        """
        if settings.retrieval == "hybrid":
            return HybridRetriever(self.embedder, self.store, self.lexical, settings.candidates, settings.rrf_k)
        return DenseRetriever(self.embedder, self.store, settings.candidates, settings.rrf_k)

    @property
    def retriever(self) -> DenseRetriever | HybridRetriever:
        return self.retriever_for(self.settings)

    def search(self, settings: Settings, queries: list[str], k: int, where: dict | None = None
               ) -> tuple[list[dict], str | None, list[str]]:
        """(the ``k`` best chunks for ``queries`` within the ``where`` filter, error, notes).

        A filter that matches nothing is lifted (and said in a note). When the index cannot be
        reached the chunks are none and the error says why: the rest of the graph then answers
        from what it has (the web, or nothing).
        """
        if settings.tree_search == "leaves":
            leaves = {"kind": {"$ne": "summary"}}
            where = {"$and": [where, leaves]} if where else leaves
        scope = sources_filter(settings)
        try:
            with self.store.reachable():
                if settings.tree_search == "traversal" and not where and not scope and self.has_tree():
                    return [as_retrieved(h) for h in traverse(self.store, self.embedder, queries[0], k)], None, []
                retriever = self.retriever_for(settings)
                hits = retriever.search_many(queries, k, where=both(where, scope))
                if where and not hits:
                    # The question's own filter is lifted; the documents the caller named stay the scope.
                    return retriever.search_many(queries, k, where=scope), None, [
                        f"no document matches the filter taken from the question ({where}); searched them all"]
                return hits, None, []
        except IndexUnavailable as exc:
            return [], str(exc), [f"the document index could not be searched: {exc}"]


def sources_filter(settings: Settings) -> dict | None:
    """The Chroma filter of the documents ``settings.sources`` names (None: every document)."""
    if not settings.sources:
        return None
    return {"source": {"$in": list(settings.sources)}}


def both(first: dict | None, second: dict | None) -> dict | None:
    """Two optional Chroma filters, both to hold."""
    if first and second:
        return {"$and": [first, second]}
    return first or second
