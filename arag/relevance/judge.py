"""Relevance: scorers that need no LLM call, and their calibration into probabilities.

:class:`RelevanceJudge` is what the graph's grade and rerank nodes use: the active scorer
(the collection's trained cross-encoder when ``arag train-reranker`` has put one in use, else
late interaction over the embedding model's token vectors) and its calibrator, so a chunk
comes out with ``relevance``, a probability, and ``relevance_raw``, the scorer's own number.

Example:
    >>> import numpy as np
    >>> class Length:
    ...     name = "length"
    ...     def score(self, query, passages):
    ...         return np.array([len(p) for p in passages], dtype=float)
    >>> judge = RelevanceJudge(Length(), Calibrator(slope=1.0, intercept=-10.0))
    >>> [c["relevance"] for c in judge.judge("q", [{"title": "T", "text": "short"}, {"title": "T", "text": "a much longer text"}])]
    [0.0474, 1.0]
"""

from __future__ import annotations

from pathlib import Path

from arag.embeddings.embedder import card_field, embedding_text
from arag.relevance.calibration import Calibrator
from arag.relevance.links import LinkWeight, expand_links
from arag.relevance.scorers import CrossEncoderScorer, LateInteractionScorer, MultiScorer, RelevanceScorer, SpladeScorer

#: Calibrations used until one is fitted for the collection (``arag train-reranker`` fits them).
#: Set-aware (each score and its gap to the best candidate judged with it), fitted by
#: ``bench/trained_retrieval.py`` on 120 held-out candidate lists of 30, built from the HotpotQA
#: pool's paragraphs (no test questions), as retrieved and without their positive (7,022
#: scores), with the packaged all-MiniLM-L6-v2 and SPLADE-tiny; see
#: ``bench/results/trained_retrieval.json``. The cross-encoder's own calibration ships with it.
DEFAULT_CALIBRATIONS = {
    "late-interaction": Calibrator("platt", slope=11.55, intercept=-8.364, set_weight=60.11),
    "splade": Calibrator("platt", slope=0.0998, intercept=-2.874, set_weight=0.9587),
    "cross-encoder": Calibrator("platt", slope=1.0, intercept=0.0),
    "multi": Calibrator("platt", slope=0.5813, intercept=-8.303, set_weight=2.653),
}
#: Weights of the ``multi`` scorer's (dense, lexical, multi-vector) scores: a logistic
#: regression on the same held-out lists.
DEFAULT_MULTI_WEIGHTS = (0.0146, 4.882, 14.32)
#: Link-expansion weights used until one is fitted for the collection (see :mod:`relevance.links`).
#: Fitted by the same benchmark on 102 two-hop pairs made from the pool's paragraphs.
DEFAULT_LINK_WEIGHTS = {"late-interaction": 0.75, "splade": 0.1, "cross-encoder": 0.3, "multi": 0.75}


class RelevanceJudge:
    """A scorer, its calibrator and its link-expansion weight, applied to retrieved chunks."""

    def __init__(self, scorer: RelevanceScorer, calibrator: Calibrator, link_weight: float = 0.0):
        self.scorer = scorer
        self.calibrator = calibrator
        self.link_weight = link_weight

    @property
    def name(self) -> str:
        return self.scorer.name

    def judge(self, question: str, chunks: list[dict], links: bool = True) -> list[dict]:
        """Copies of ``chunks`` with ``relevance`` (probability, 4 places) and ``relevance_raw``.

        With ``links``, chunks named by the question or by the most relevant ones gain relevance
        (:func:`relevance.links.expand_links`; they then carry ``relevance_own`` and ``linked_from``
        or ``named_in_question``).
        """
        if not chunks:
            return []
        # The text the encoder saw at ingest, so stored token vectors serve (knowledge.token_store).
        raw = self.scorer.score(question, [embedding_text(c["title"], c.get("heading", ""), c["text"]) for c in chunks])
        probability = self.calibrator(raw)
        judged = [{**c, "relevance": round(float(p), 4), "relevance_raw": round(float(r), 4)}
                  for c, p, r in zip(chunks, probability, raw)]
        return expand_links(judged, self.link_weight, question=question) if links else judged


def make_judge(name: str, embedder, registry, lexical=None, tokens=None) -> RelevanceJudge:
    """The judge for scorer ``name`` ("auto", "cross-encoder", "late-interaction", "multi", "splade").

    ``multi`` weighs shared terms by the collection's BM25 statistics, so it needs ``lexical``
    (a :class:`knowledge.lexical.LexicalIndex`). ``tokens``, the collection's
    :class:`knowledge.token_store.TokenVectorStore`, spares the late-interaction scorers an
    encoder pass over the candidates.
    """
    reranker_dir = registry.active_dir("reranker")
    if name == "auto":
        name = "cross-encoder" if reranker_dir else "late-interaction"
    if name == "cross-encoder":
        if reranker_dir is None:
            raise ValueError("no trained reranker is in use for this collection: run `arag train-reranker`, "
                             "or set ARAG_SCORER=late-interaction")
        scorer: RelevanceScorer = CrossEncoderScorer(reranker_dir, max_length=_card_max_length(reranker_dir))
        fitted, links = reranker_dir / "calibration.json", reranker_dir / "links.json"
    elif name in ("late-interaction", "splade", "multi"):
        if name == "multi":
            if lexical is None:
                raise ValueError("the multi scorer needs the collection's BM25 index")
            scorer = MultiScorer(embedder, lexical.idf, DEFAULT_MULTI_WEIGHTS, tokens=tokens)
        else:
            scorer = LateInteractionScorer(embedder, tokens) if name == "late-interaction" else SpladeScorer()
        scored_with = "splade-tiny" if name == "splade" else embedder.model_id
        fitted = registry.calibration_path(name, scored_with)
        links = registry.calibration_path(f"{name}-links", scored_with)
    else:
        raise ValueError(f"unknown relevance scorer {name!r}")
    calibrator = Calibrator.load(fitted) if fitted.exists() else DEFAULT_CALIBRATIONS[name]
    weight = LinkWeight.load(links).weight if links.exists() else DEFAULT_LINK_WEIGHTS[name]
    return RelevanceJudge(scorer, calibrator, weight)


def _card_max_length(model_dir: Path) -> int:
    return int(card_field(model_dir, "max_length") or 256)
