"""Fitting the weight of link expansion (:mod:`arag.relevance.links`) on held-out two-hop pairs."""

from __future__ import annotations

from arag.evaluation.metrics import ndcg_at
from arag.relevance.links import LinkWeight, expand_links

#: Weights tried by :func:`fit_link_weight`.
WEIGHT_GRID = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0)


def fit_link_weight(cases: list[tuple[list[dict], set[str]]], grid=WEIGHT_GRID) -> LinkWeight:
    """The weight whose expansion ranks ``cases`` best by mean nDCG@10 (the smallest on ties).

    Each case is (candidates with calibrated ``relevance``, ids of the relevant ones).

    Example:
        >>> a = {"chunk_id": "a", "title": "Ada Lovelace", "text": "She worked with Charles Babbage.", "relevance": 0.9}
        >>> b = {"chunk_id": "b", "title": "Charles Babbage", "text": "An engineer.", "relevance": 0.1}
        >>> c = {"chunk_id": "c", "title": "Steam", "text": "Engines.", "relevance": 0.3}
        >>> fit_link_weight([([a, b, c], {"a", "b"})], grid=(0.0, 0.5)).weight
        0.5
    """
    if not cases:
        raise ValueError("fitting the link weight needs at least one case")
    scores = {}
    for weight in grid:
        total = 0.0
        for chunks, relevant in cases:
            ranked = sorted(expand_links(chunks, weight), key=lambda c: -c["relevance"])
            total += ndcg_at([c["chunk_id"] for c in ranked], relevant)
        scores[weight] = round(total / len(cases), 4)
    best = max(scores.values())
    chosen = min(w for w, s in scores.items() if s == best)
    return LinkWeight(chosen, len(cases), {str(w): s for w, s in scores.items()})
