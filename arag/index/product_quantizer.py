"""Product quantisation of token vectors: one byte per sub-vector instead of one per dimension.

A 384-d token vector is cut into ``m`` sub-vectors; each is replaced by the index of its nearest
of 256 centroids, learnt by k-means on the collection's own token vectors (no labels: like an
index, not like training). With ``m`` = 48 a token takes 48 bytes against int8's 386; a stored
vector is read back as the concatenation of its centroids, and late interaction scores that.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(3000, 16)).astype(np.float32)
    >>> pq = ProductQuantizer.fit(x, subvectors=4, seed=0)
    >>> codes = pq.encode(x)
    >>> codes.shape, codes.dtype.name
    ((3000, 4), 'uint8')
    >>> bool(np.mean((pq.decode(codes) - x) ** 2) < np.mean(x ** 2))
    True
"""

from __future__ import annotations

import numpy as np

from arag.index.kmeans import kmeans, nearest_centre

CENTROIDS = 256


class ProductQuantizer:
    """``subvectors`` codebooks of 256 centroids, one per slice of the vector's dimensions."""

    def __init__(self, centroids: np.ndarray):
        self.centroids = np.ascontiguousarray(centroids, dtype=np.float32)  # (m, 256, dim / m)
        self.subvectors, _, self.width = self.centroids.shape
        self.dim = self.subvectors * self.width
        self.code_bytes = self.subvectors  # one byte, one centroid index, a sub-vector
        self._norms = (self.centroids ** 2).sum(axis=2)  # (m, 256)

    @classmethod
    def fit(cls, vectors: np.ndarray, subvectors: int, iterations: int = 12, sample: int = 60_000,
            seed: int = 0) -> "ProductQuantizer":
        """k-means (``iterations`` Lloyd steps) in each slice, on up to ``sample`` of ``vectors``."""
        vectors = np.asarray(vectors, dtype=np.float32)
        n, dim = vectors.shape
        if dim % subvectors:
            raise ValueError(f"{dim} dimensions do not split into {subvectors} equal sub-vectors")
        rng = np.random.default_rng(seed)
        if n > sample:
            vectors = vectors[rng.choice(n, sample, replace=False)]
        width = dim // subvectors
        slices = vectors.reshape(len(vectors), subvectors, width).transpose(1, 0, 2)  # (m, n, width)
        centroids = np.empty((subvectors, CENTROIDS, width), dtype=np.float32)
        for s, points in enumerate(slices):
            centroids[s] = kmeans(points, CENTROIDS, iterations, rng)
        return cls(centroids)

    def encode(self, vectors: np.ndarray) -> np.ndarray:
        """(n, m) uint8 codes: the nearest centroid of each slice."""
        vectors = np.asarray(vectors, dtype=np.float32)
        slices = vectors.reshape(len(vectors), self.subvectors, self.width)
        codes = np.empty((len(vectors), self.subvectors), dtype=np.uint8)
        for s in range(self.subvectors):
            codes[:, s] = nearest_centre(slices[:, s], self.centroids[s], self._norms[s])
        return codes

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """(n, dim) float32 vectors rebuilt from their codes."""
        codes = np.asarray(codes, dtype=np.intp).reshape(-1, self.subvectors)
        parts = self.centroids[np.arange(self.subvectors), codes]  # (n, m, width)
        return parts.reshape(len(codes), self.dim)

    def to_bytes(self) -> bytes:
        return self.centroids.tobytes()

    @classmethod
    def from_bytes(cls, data: bytes, subvectors: int, dim: int) -> "ProductQuantizer":
        return cls(np.frombuffer(data, dtype=np.float32).reshape(subvectors, CENTROIDS, dim // subvectors))
