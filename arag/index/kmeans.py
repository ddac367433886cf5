"""k-means (Lloyd's algorithm) for the learnt token-vector codecs: product and residual quantisation.

Both codecs learn their centroids from the collection's own token vectors, so this is run
once per collection, at ingest, on a sample of tens of thousands of vectors. Distances are
computed a block of points at a time, so 60,000 points against 1,024 centroids need a few
tens of megabytes, not a quarter of a gigabyte.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> points = np.concatenate([rng.normal(size=(50, 2)) + 10, rng.normal(size=(50, 2)) - 10]).astype(np.float32)
    >>> centres = kmeans(points, 2, iterations=5, rng=rng)
    >>> sorted(np.round(centres.mean(axis=1)).tolist())
    [-10.0, 10.0]
    >>> nearest_centre(np.array([[9.0, 9.0]], np.float32), centres).tolist() == [int(np.argmax(centres[:, 0]))]
    True
"""

from __future__ import annotations

import numpy as np

#: Points whose distances to every centre are computed at once.
BLOCK = 4096


def kmeans(points: np.ndarray, count: int, iterations: int, rng: np.random.Generator) -> np.ndarray:
    """(count, dim) centres after ``iterations`` Lloyd steps, started from ``count`` distinct points."""
    if len(points) < count:
        raise ValueError(f"need at least {count} vectors to fit {count} centroids, got {len(points)}")
    centres = points[rng.choice(len(points), count, replace=False)].copy()
    for _ in range(iterations):
        nearest = nearest_centre(points, centres)
        counts = np.bincount(nearest, minlength=count)
        filled = counts > 0
        # Sums by cluster from the points sorted by cluster: many times faster than np.add.at.
        order = np.argsort(nearest)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])[filled]
        centres[filled] = np.add.reduceat(points[order], starts, axis=0) / counts[filled, None]
        # An empty cluster restarts at a random point, so every code stays in use.
        empty = np.flatnonzero(~filled)
        if len(empty):
            centres[empty] = points[rng.choice(len(points), len(empty), replace=False)]
    return centres


def nearest_centre(points: np.ndarray, centres: np.ndarray, centre_norms: np.ndarray | None = None) -> np.ndarray:
    """Index of each point's nearest centre (squared Euclidean distance)."""
    if centre_norms is None:
        centre_norms = (centres ** 2).sum(axis=1)
    nearest = np.empty(len(points), dtype=np.intp)
    for start in range(0, len(points), BLOCK):
        block = points[start : start + BLOCK]
        # |p - c|^2 = |p|^2 - 2 p.c + |c|^2; |p|^2 is the same for every centre of one point.
        nearest[start : start + len(block)] = np.argmin(centre_norms[None, :] - 2.0 * (block @ centres.T), axis=1)
    return nearest
