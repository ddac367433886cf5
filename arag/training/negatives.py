"""Hard negatives: passages that BM25 or the current embedding model rank high for a query
but that are not its positive.

The very top ranks are skipped (``skip``): on a real corpus they often hold passages that
answer the query as well as the positive does, and training against those false negatives
hurts. Passages of the positive's own document are never negatives, for the same reason.
Where the mined pool runs short, random passages fill it up.

Example:
    >>> import random
    >>> from arag.training.pairs import Passage, TrainingPair
    >>> ps = [Passage(f"c{i}", f"d{i}", f"T{i}", f"text {i}") for i in range(6)]
    >>> pair = TrainingPair("q", "c0", "T0\\ntext 0", "d0", "title")
    >>> ranked = [["c0", "c1", "c2", "c3", "c4", "c5"]]
    >>> mined = attach_negatives([pair], ps, ranked, skip=2, count=2, rng=random.Random(0))
    >>> sorted(mined[0].negative_ids) < ["c2"] or set(mined[0].negative_ids) <= {"c2", "c3", "c4", "c5"}
    True
"""

from __future__ import annotations

import random
from collections.abc import Callable

import numpy as np
from tqdm import tqdm

from arag.training.pairs import Passage, TrainingPair, passage_text


def dense_matrix(store, ids: list[str]) -> np.ndarray:
    """The stored vectors of ``ids`` as one matrix (nothing is embedded again)."""
    vectors = np.zeros((len(ids), store.dim), dtype=np.float32)
    position = {cid: i for i, cid in enumerate(ids)}
    step = 2000
    for start in range(0, len(ids), step):
        for cid, vec in store.embeddings_for(ids[start : start + step]).items():
            vectors[position[cid]] = vec
    return vectors


def dense_ranked(embedder, matrix: np.ndarray, ids: list[str], queries: list[str], depth: int) -> list[list[str]]:
    """Ids by cosine similarity to each query, best first (exact search over the stored vectors)."""
    out: list[list[str]] = []
    step = 64
    for start in range(0, len(queries), step):
        q = embedder.embed_queries(queries[start : start + step])
        scores = q @ matrix.T
        top = np.argsort(-scores, axis=1)[:, :depth]
        out.extend([[ids[j] for j in row] for row in top])
    return out


def lexical_ranked(lexical, queries: list[str], depth: int) -> list[list[str]]:
    return [[cid for cid, _ in hits] for hits in lexical.search_many(queries, depth)]


def attach_negatives(
    pairs: list[TrainingPair],
    passages: list[Passage],
    *rankings: list[list[str]],
    skip: int = 3,
    count: int = 7,
    rng: random.Random,
    text: Callable[[Passage], str] = passage_text,
) -> list[TrainingPair]:
    """Give each pair up to ``count`` negatives drawn from its rankings below rank ``skip``.

    ``text`` is how a negative reads; by default as the index embeds it (title and text).
    """
    by_id = {p.id: p for p in passages}
    out: list[TrainingPair] = []
    for n, pair in enumerate(pairs):
        pool: list[str] = []
        for ranking in rankings:
            for cid in ranking[n][skip:]:
                p = by_id.get(cid)
                if p is None or cid == pair.positive_id or p.source == pair.source or cid in pool:
                    continue
                pool.append(cid)
        chosen = rng.sample(pool, min(count, len(pool)))
        tries = 0
        while len(chosen) < count and tries < 10 * count and len(passages) > 1:
            tries += 1
            p = passages[rng.randrange(len(passages))]
            if p.source != pair.source and p.id not in chosen:
                chosen.append(p.id)
        out.append(TrainingPair(pair.query, pair.positive_id, pair.positive, pair.source, pair.kind,
                                chosen, [text(by_id[c]) for c in chosen]))
    return out


def mine_hard_negatives(
    pairs: list[TrainingPair],
    passages: list[Passage],
    embedder,
    store,
    lexical,
    *,
    skip: int = 3,
    depth: int = 30,
    count: int = 7,
    rng: random.Random,
    progress: bool = True,
    text: Callable[[Passage], str] = passage_text,
) -> list[TrainingPair]:
    """Mine negatives for ``pairs`` with BM25 and the current dense model, over the indexed passages
    (``text``: how a negative reads, see :func:`attach_negatives`).
    """
    queries = [p.query for p in pairs]
    ids = [p.id for p in passages]
    with tqdm(total=3, desc="mine negatives", disable=not progress) as bar:
        matrix = dense_matrix(store, ids)
        bar.update()
        dense = dense_ranked(embedder, matrix, ids, queries, depth)
        bar.update()
        lexical_ranks = lexical_ranked(lexical, queries, depth)
        bar.update()
    return attach_negatives(pairs, passages, lexical_ranks, dense, skip=skip, count=count, rng=rng, text=text)
