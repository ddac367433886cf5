"""Answer and retrieval metrics, as in SQuAD and BEIR.

Example:
    >>> exact_match("The Eiffel Tower!", ["eiffel tower"])
    1.0
    >>> round(token_f1("Paris, France", ["Paris"]), 3)
    0.667
    >>> recall_at(["a", "b", "a", "c"], {"a", "c"}, 2)
    0.5
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """Lower case, no punctuation, no articles, single spaces (SQuAD's normalisation)."""
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCT)).split())


def exact_match(prediction: str, golds: list[str]) -> float:
    pred = normalize_answer(prediction)
    return float(any(pred == normalize_answer(g) for g in golds))


def token_f1(prediction: str, golds: list[str]) -> float:
    """Best token-overlap F1 of the prediction against any gold answer."""
    pred = normalize_answer(prediction).split()
    best = 0.0
    for gold in golds:
        ref = normalize_answer(gold).split()
        if not pred or not ref:
            best = max(best, float(pred == ref))
            continue
        common = sum((Counter(pred) & Counter(ref)).values())
        if common:
            precision, recall = common / len(pred), common / len(ref)
            best = max(best, 2 * precision * recall / (precision + recall))
    return best


def contains_answer(prediction: str, golds: list[str]) -> float:
    """Whether a (normalised) gold answer appears inside the prediction: fair to long answers."""
    pred = f" {normalize_answer(prediction)} "
    return float(any(f" {normalize_answer(g)} " in pred for g in golds if normalize_answer(g)))


def _distinct(ranked: list[str]) -> list[str]:
    return list(dict.fromkeys(ranked))


def recall_at(ranked: list[str], relevant: set[str], k: int) -> float:
    """Share of the relevant items among the first k distinct ones (repeats count once)."""
    if not relevant:
        return 0.0
    return len(relevant.intersection(_distinct(ranked)[:k])) / len(relevant)


def ndcg_at(ranked: list[str], relevant: set[str], k: int = 10) -> float:
    """Binary-gain nDCG@k over distinct items."""
    if not relevant:
        return 0.0
    dcg = sum(1 / math.log2(i + 2) for i, item in enumerate(_distinct(ranked)[:k]) if item in relevant)
    ideal = sum(1 / math.log2(i + 2) for i in range(min(len(relevant), k)))
    return dcg / ideal


def ndcg_from_scores(scores: list[float], ids: list[str], relevant: set[str], k: int = 10) -> float:
    """Binary-gain nDCG@k of items ranked by ``scores``, fair to ties.

    Items with equal scores could come in any order, so each gets the mean discount of the
    positions its tie group spans (McSherry and Najork, ECIR 2008): a scorer that cannot tell
    items apart gets the expected value, not the luck of the input order.

    Example:
        >>> round(ndcg_from_scores([1.0, 1.0, 0.5], ["a", "b", "c"], {"b"}), 4)
        0.8155
    """
    if not relevant:
        return 0.0
    order = sorted(range(len(ids)), key=lambda i: -scores[i])
    discounts = [1 / math.log2(i + 2) if i < k else 0.0 for i in range(len(order))]
    dcg, start = 0.0, 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and scores[order[end + 1]] == scores[order[start]]:
            end += 1
        group = order[start : end + 1]
        mean_discount = sum(discounts[start : end + 1]) / len(group)
        dcg += mean_discount * sum(ids[i] in relevant for i in group)
        start = end + 1
    ideal = sum(1 / math.log2(i + 2) for i in range(min(len(relevant), k)))
    return dcg / ideal


def mrr_at(ranked: list[str], relevant: set[str], k: int = 10) -> float:
    """Reciprocal rank of the first relevant item among the first k distinct ones (0 if none)."""
    for i, item in enumerate(_distinct(ranked)[:k]):
        if item in relevant:
            return 1 / (i + 1)
    return 0.0


def ranking_metrics(rankings: list[list[str]], relevant: list[set[str]], cutoffs: tuple[int, ...] = (1, 2, 10)) -> dict:
    """Mean recall@k for each cut-off, nDCG@10 and MRR@10 over queries.

    Example:
        >>> ranking_metrics([["a", "b"], ["c", "d"]], [{"a"}, {"d"}], cutoffs=(1,))
        {'recall@1': 0.5, 'ndcg@10': 0.8155, 'mrr@10': 0.75}
    """
    n = max(1, len(rankings))
    out = {f"recall@{k}": sum(recall_at(r, g, k) for r, g in zip(rankings, relevant)) / n for k in cutoffs}
    out["ndcg@10"] = sum(ndcg_at(r, g) for r, g in zip(rankings, relevant)) / n
    out["mrr@10"] = sum(mrr_at(r, g) for r, g in zip(rankings, relevant)) / n
    return {key: round(value, 4) for key, value in out.items()}
