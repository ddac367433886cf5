"""Retrievers: from a question to ranked chunks of the collection."""

from __future__ import annotations

from embeddings import Embedder
from knowledge.store import ChunkStore


def as_retrieved(hit: dict) -> dict:
    """The chunk fields the graph carries, citations show and ``--json`` prints."""
    meta = hit["metadata"] or {}
    return {
        "chunk_id": hit["id"],
        "source": meta.get("source", ""),
        "title": meta.get("title", ""),
        "heading": meta.get("heading", ""),
        "text": hit["text"],
        "score": round(float(hit["score"]), 4),
    }


class DenseRetriever:
    """Cosine nearest neighbours of the question's embedding in the chunk store.

    Example:
        >>> retriever = DenseRetriever(embedder, store)  # doctest: +SKIP
        >>> [c["title"] for c in retriever.search("who wrote it?", k=2)]  # doctest: +SKIP
    """

    def __init__(self, embedder: Embedder, store: ChunkStore):
        self.embedder = embedder
        self.store = store

    def search(self, query: str, k: int, where: dict | None = None) -> list[dict]:
        if self.store.count() == 0:
            return []
        vector = self.embedder.embed_queries([query])[0]
        return [as_retrieved(hit) for hit in self.store.query(vector, k, where=where)]
