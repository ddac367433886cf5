"""Retrievers: from a question to ranked chunks of the collection.

:class:`DenseRetriever` ranks by the embedding's cosine similarity; :class:`HybridRetriever`
fuses that ranking with BM25's (:mod:`knowledge.lexical`) by reciprocal rank, which needs
no score calibration between the two and lets an exact rare term (a code identifier, a
name) that the encoder blurs still reach the top. Both answer ``search`` (one question)
and ``search_many`` (several phrasings of it, fused by reciprocal rank as in RAG-Fusion).
"""

from __future__ import annotations

import math

from arag.embeddings.embedder import Embedder
from arag.index.lexical import LexicalIndex
from arag.index.store import ChunkStore

#: With a ``where`` filter the lexical side ranks this many times its candidates, because BM25
#: ranks the whole collection and hits outside the filter are dropped afterwards.
LEXICAL_OVERFETCH = 5


def as_retrieved(hit: dict) -> dict:
    """The chunk fields the graph carries, citations show and ``--json`` prints (and its parent, if indexed so)."""
    meta = hit["metadata"] or {}
    chunk = {
        "chunk_id": hit["id"],
        "source": meta.get("source", ""),
        "title": meta.get("title", ""),
        "heading": meta.get("heading", ""),
        "text": hit["text"],
        "score": round(float(hit["score"]), 4),
    }
    if meta.get("parent_id"):
        chunk["parent_id"], chunk["parent_text"] = meta["parent_id"], meta.get("parent_text", "")
    return chunk


def as_parents(chunks: list[dict]) -> list[dict]:
    """Matched chunks replaced by their parent sections, in order, each parent once.

    A chunk without a parent passes unchanged. The parent takes the place (and scores) of its
    best-ranked chunk; ``matched`` keeps the chunk's own text.

    Example:
        >>> a = {"chunk_id": "a", "text": "x", "parent_id": "p", "parent_text": "x y"}
        >>> b = {"chunk_id": "b", "text": "y", "parent_id": "p", "parent_text": "x y"}
        >>> [(c["chunk_id"], c["text"]) for c in as_parents([a, {"chunk_id": "c", "text": "z"}, b])]
        [('a', 'x y'), ('c', 'z')]
    """
    seen: set[str] = set()
    out = []
    for chunk in chunks:
        parent = chunk.get("parent_id")
        if not parent:
            out.append(chunk)
        elif parent not in seen:
            seen.add(parent)
            out.append({k: v for k, v in chunk.items() if k != "parent_text"} | {"text": chunk["parent_text"], "matched": chunk["text"]})
    return out


def reciprocal_rank_fusion(rankings: list[list[str]], k: int = 60) -> list[tuple[str, float]]:
    """Fuse rankings into one: an id scores the sum of ``1 / (k + rank)`` over the lists holding it.

    Ranks are positions counted from 1; a list that lacks an id adds nothing for it, and a
    repeat of an id in one list is ignored. Equal scores are ordered by the better best rank,
    then by the earlier list reaching it (put the more trusted ranking first); no two ids share
    both, so the order is total and never depends on hashing or on summation order.

    Example:
        >>> fused = reciprocal_rank_fusion([["a", "b", "c"], ["b", "d"]], k=60)
        >>> [(doc, round(score, 5)) for doc, score in fused]
        [('b', 0.03252), ('a', 0.01639), ('d', 0.01613), ('c', 0.01587)]
        >>> [doc for doc, _ in reciprocal_rank_fusion([["x", "y"], ["y", "x"]], k=60)]
        ['x', 'y']
    """
    if k < 0:
        raise ValueError(f"k must be 0 or more, not {k}")
    ranks: dict[str, list[int]] = {}
    best: dict[str, tuple[int, int]] = {}
    for position, ranking in enumerate(rankings):
        seen: set[str] = set()
        for rank, doc in enumerate(ranking, start=1):
            if doc in seen:
                continue
            seen.add(doc)
            ranks.setdefault(doc, []).append(rank)
            if doc not in best or rank < best[doc][0]:
                best[doc] = (rank, position)
    # fsum is exactly rounded, so equal rank multisets give bit-equal scores in any order.
    scored = [(doc, math.fsum(1.0 / (k + r) for r in rs)) for doc, rs in ranks.items()]
    scored.sort(key=lambda item: (-item[1], *best[item[0]]))
    return scored


def _best_ranks(rankings: list[list[str]]) -> dict[str, int]:
    """Each id's best 1-based rank over the rankings."""
    out: dict[str, int] = {}
    for ranking in rankings:
        for rank, doc in enumerate(ranking, start=1):
            if rank < out.get(doc, rank + 1):
                out[doc] = rank
    return out


def dense_rankings(
    embedder: Embedder, store: ChunkStore, queries: list[str], depth: int, where: dict | None
) -> tuple[list[list[str]], dict[str, dict]]:
    """Per query, the ids of its ``depth`` nearest chunks (queries embedded in one batch), and the hits by id."""
    pool: dict[str, dict] = {}
    rankings: list[list[str]] = []
    for vector in embedder.embed_queries(queries):
        hits = store.query(vector, depth, where=where)
        rankings.append([hit["id"] for hit in hits])
        for hit in hits:
            pool.setdefault(hit["id"], hit)
    return rankings, pool


class DenseRetriever:
    """Cosine nearest neighbours of the question's embedding in the chunk store.

    ``search`` scores by cosine similarity; ``search_many`` fuses the neighbours of several
    queries by reciprocal rank, each query contributing ``max(k, candidates)`` of them.

    Example, with the collection's embedder and store (``Components`` builds both)::

        retriever = DenseRetriever(embedder, store)
        [c["title"] for c in retriever.search("who wrote it?", k=2)]
    """

    def __init__(self, embedder: Embedder, store: ChunkStore, candidates: int = 20, rrf_k: int = 60):
        self.embedder = embedder
        self.store = store
        self.candidates = candidates
        self.rrf_k = rrf_k

    def search(self, query: str, k: int, where: dict | None = None) -> list[dict]:
        if self.store.is_empty():
            return []
        vector = self.embedder.embed_queries([query])[0]
        return [as_retrieved(hit) for hit in self.store.query(vector, k, where=where)]

    def search_many(self, queries: list[str], k: int, where: dict | None = None) -> list[dict]:
        """The ``k`` best chunks over all ``queries`` (embedded in one batch), fused by RRF.

        ``score`` is the fused score; ``dense_rank`` is the chunk's best rank for any query.
        """
        if not queries or self.store.is_empty():
            return []
        rankings, pool = dense_rankings(self.embedder, self.store, queries, max(k, self.candidates), where)
        ranks = _best_ranks(rankings)
        return [
            {**as_retrieved(pool[cid]), "score": round(score, 6), "dense_rank": ranks[cid]}
            for cid, score in reciprocal_rank_fusion(rankings, self.rrf_k)[:k]
        ]


class HybridRetriever:
    """Dense and BM25 rankings fused by reciprocal rank.

    Each side contributes its ``max(k, candidates)`` best chunks for each query. A result has
    :func:`as_retrieved`'s fields, with ``score`` the fused RRF score, plus ``dense_rank`` and
    ``lexical_rank``: the chunk's best 1-based rank on that side over the queries, or None
    where that side did not bring it, so a trace shows why it was chosen.

    Filters: ``where`` goes to Chroma on the dense side. BM25 ranks the whole collection, so
    its hits are checked against ``where`` afterwards (by Chroma, on those ids) and the ones
    outside are dropped; it ranks ``LEXICAL_OVERFETCH`` times as many first, but a filter
    that admits only a small share of the collection can still leave the lexical side short
    of candidates, or without any.

    Example, on a collection of two biographies (the embedder and store as for :class:`DenseRetriever`)::

        hybrid = HybridRetriever(embedder, store, LexicalIndex(store))
        [(c["title"], c["dense_rank"], c["lexical_rank"]) for c in hybrid.search("COBOL", k=2)]
        # [('Grace Hopper', 1, 1), ('Ada Lovelace', 2, None)]: only Hopper's chunk has the word
    """

    def __init__(self, embedder: Embedder, store: ChunkStore, lexical: LexicalIndex, candidates: int = 20, rrf_k: int = 60):
        self.embedder = embedder
        self.store = store
        self.lexical = lexical
        self.candidates = candidates
        self.rrf_k = rrf_k

    def search(self, query: str, k: int, where: dict | None = None) -> list[dict]:
        return self.search_many([query], k, where=where)

    def search_many(self, queries: list[str], k: int, where: dict | None = None) -> list[dict]:
        """The ``k`` best chunks over all ``queries``: 2 rankings a query, fused by RRF."""
        if not queries or self.store.is_empty():
            return []
        depth = max(k, self.candidates)
        dense, pool = dense_rankings(self.embedder, self.store, queries, depth, where)

        found = self.lexical.search_many(queries, depth * (LEXICAL_OVERFETCH if where else 1))
        # Dense hits already passed the filter; the rest are fetched, through the filter.
        missing = sorted({cid for hits in found for cid, _ in hits if cid not in pool})
        if missing:
            got = self.store.collection.get(ids=missing, where=where or None, include=["documents", "metadatas"])
            for cid, text, meta in zip(got["ids"], got["documents"], got["metadatas"]):
                pool[cid] = {"id": cid, "text": text, "metadata": meta, "score": 0.0}
        lexical = [[cid for cid, _ in hits if cid in pool][:depth] for hits in found]

        # Per query the dense ranking first: ties then favour the embedding, and the first query.
        rankings = [ranking for pair in zip(dense, lexical) for ranking in pair]
        dense_ranks, lexical_ranks = _best_ranks(dense), _best_ranks(lexical)
        return [
            {
                **as_retrieved(pool[cid]),
                "score": round(score, 6),  # RRF scores are small: 4 places would merge neighbours
                "dense_rank": dense_ranks.get(cid),
                "lexical_rank": lexical_ranks.get(cid),
            }
            for cid, score in reciprocal_rank_fusion(rankings, self.rrf_k)[:k]
        ]
