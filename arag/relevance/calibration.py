"""Raw relevance scores mapped to probabilities, so one threshold means the same for every scorer.

A :class:`Calibrator` is fitted on held-out (score, label) pairs by Platt scaling (a logistic
curve; smooth, needs few points) or isotonic regression (any monotone shape; needs more).
Classes are weighted equally, so the probability reads "relevant rather than not, had both
been equally common": a grading threshold of 0.5 then sits where relevant and irrelevant
passages are equally likely to score. Both maps are monotone non-decreasing and stay in [0, 1].

A raw score alone says little across questions: one question's relevant passage scores
lower than another's distractors. Fitted with ``groups`` (which candidates were judged
together), the Platt curve also reads each score's gap to the best score of its group,
``p = sigmoid(slope·s + set_weight·(s − max s) + intercept)``, and is fitted without class
weights, so 0.5 means "more likely relevant than not" at the rate the groups hold relevant
passages. Within a group the map stays monotone.

Example:
    >>> cal = Calibrator.fit([0.1, 0.2, 0.3, 0.7, 0.8, 0.9], [0, 0, 0, 1, 1, 1])
    >>> p = cal([0.15, 0.5, 0.85])
    >>> bool(p[0] < 0.5 < p[2]) and bool((0 <= p).all() and (p <= 1).all())
    True
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))


def fit_logistic(features: np.ndarray, labels: np.ndarray, l2: float = 1e-3, iterations: int = 50,
                 balanced: bool = True) -> tuple[np.ndarray, float]:
    """Logistic regression by Newton's method: (weights, bias); ``balanced`` weighs both classes equally.

    Used for Platt scaling and for learning the weights of a combined score.
    """
    x = np.asarray(features, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    y = np.asarray(labels, dtype=np.float64)
    pos = max(1.0, y.sum())
    neg = max(1.0, len(y) - y.sum())
    sample_weight = np.where(y > 0.5, len(y) / (2 * pos), len(y) / (2 * neg)) if balanced else np.ones(len(y))
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-9
    z = np.hstack([(x - mean) / scale, np.ones((len(x), 1))])
    theta = np.zeros(z.shape[1])
    penalty = l2 * np.eye(z.shape[1])
    penalty[-1, -1] = 0.0
    for _ in range(iterations):
        p = _sigmoid(z @ theta)
        gradient = z.T @ (sample_weight * (p - y)) + penalty @ theta
        hessian = (z * (sample_weight * p * (1 - p))[:, None]).T @ z + penalty + 1e-9 * np.eye(z.shape[1])
        step = np.linalg.solve(hessian, gradient)
        theta -= step
        if np.abs(step).max() < 1e-8:
            break
    weights = theta[:-1] / scale
    bias = theta[-1] - float((theta[:-1] * mean / scale).sum())
    return weights, float(bias)


def best_in_group(scores: np.ndarray, groups) -> np.ndarray:
    """For each score, the highest score of its group."""
    groups = np.asarray(groups)
    best = np.empty_like(scores)
    for g in np.unique(groups):
        members = groups == g
        best[members] = scores[members].max()
    return best


def _isotonic(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pool-adjacent-violators: knots (x, y) of the best monotone step fit."""
    order = np.argsort(x, kind="stable")
    xs, ys, ws = x[order], y[order].astype(np.float64), w[order].astype(np.float64)
    blocks: list[list[float]] = []  # [sum w*y, sum w, x_low, x_high]
    for xi, yi, wi in zip(xs, ys, ws):
        blocks.append([wi * yi, wi, xi, xi])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] >= blocks[-1][0] / blocks[-1][1]:
            last = blocks.pop()
            blocks[-1][0] += last[0]
            blocks[-1][1] += last[1]
            blocks[-1][3] = last[3]
    knots_x, knots_y = [], []
    for total, weight, low, high in blocks:
        knots_x += [low, high]
        knots_y += [total / weight, total / weight]
    return np.asarray(knots_x), np.asarray(knots_y)


@dataclass
class Calibrator:
    """A monotone map from a scorer's raw score to a probability of relevance."""

    method: str = "platt"
    slope: float = 1.0
    intercept: float = 0.0
    knots_x: list[float] = field(default_factory=list)
    knots_y: list[float] = field(default_factory=list)
    fitted_on: int = 0
    #: Weight of a score's gap to the best score judged with it (0: each score on its own).
    set_weight: float = 0.0

    @classmethod
    def fit(cls, scores, labels, method: str = "platt", groups=None) -> "Calibrator":
        """Fit on held-out ``scores`` and 0/1 ``labels``; ``groups`` (one id per score) names the
        candidates judged together and makes a Platt fit read each score's gap to its group's best.
        """
        x = np.asarray(scores, dtype=np.float64)
        y = np.asarray(labels, dtype=np.float64)
        if len(x) < 2 or y.min() == y.max():
            raise ValueError("calibration needs both relevant and irrelevant examples")
        if groups is not None and method == "platt":
            gap = x - best_in_group(x, groups)
            (slope, set_weight), bias = fit_logistic(np.stack([x, gap], axis=1), y, balanced=False)
            # Both parts must raise relevance with the score, or a better passage could grade lower.
            return cls("platt", max(float(slope), 0.0), bias, fitted_on=len(x), set_weight=max(float(set_weight), 0.0))
        if method == "platt":
            weights, bias = fit_logistic(x, y)
            # A negative slope would mean the scorer ranks backwards; calibration must stay monotone.
            return cls("platt", max(float(weights[0]), 0.0), bias, fitted_on=len(x))
        if method == "isotonic":
            pos, neg = max(1.0, y.sum()), max(1.0, len(y) - y.sum())
            w = np.where(y > 0.5, len(y) / (2 * pos), len(y) / (2 * neg))
            kx, ky = _isotonic(x, y, w)
            return cls("isotonic", knots_x=kx.tolist(), knots_y=ky.tolist(), fitted_on=len(x))
        raise ValueError(f"unknown calibration method {method!r} (platt or isotonic)")

    def __call__(self, scores) -> np.ndarray:
        """Probabilities of ``scores``, taken as one group of candidates judged together."""
        x = np.asarray(scores, dtype=np.float64)
        if self.method == "isotonic":
            return np.clip(np.interp(x, self.knots_x, self.knots_y), 0.0, 1.0)
        gap = x - x.max() if self.set_weight and x.size else 0.0
        return _sigmoid(self.slope * x + self.set_weight * gap + self.intercept)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> "Calibrator":
        return cls(**json.loads(path.read_text()))


def threshold_metrics(probabilities, labels, threshold: float = 0.5) -> dict:
    """Accuracy, precision and recall of ``probability >= threshold`` as the relevant verdict."""
    p = np.asarray(probabilities) >= threshold
    y = np.asarray(labels) > 0.5
    tp = float((p & y).sum())
    return {
        "accuracy": round(float((p == y).mean()), 4) if len(y) else 0.0,
        "precision": round(tp / p.sum(), 4) if p.sum() else 0.0,
        "recall": round(tp / y.sum(), 4) if y.sum() else 0.0,
    }
