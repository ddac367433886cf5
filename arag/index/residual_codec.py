"""ColBERTv2-style residual compression of token vectors: a centroid id and a few bits a dimension.

Each token vector is stored as the id of its nearest of ``centroids`` k-means centroids (uint16)
and its residual, the vector minus that centroid, quantised to ``bits`` bits in each of ``dims``
dimensions (Santhanam et al., 2022, "ColBERTv2: Effective and Efficient Retrieval via
Lightweight Late Interaction"). A token takes ``2 + dims * bits / 8`` bytes:

===========  =============
dims × bits  bytes a token
===========  =============
128 × 1      18
128 × 2      34
192 × 2      50
384 × 1      50
384 × 2      98
384 × 4      194 (the default for MiniLM: all of its dimensions, 4 bits each)
===========  =============

With fewer dimensions than the model's (MiniLM: 384) the residual is cut to its ``dims``
principal axes (PCA of the fitting sample's residuals) and the rest is dropped. The projection
is fitted to the residuals, not to the vectors, so the centroid keeps every dimension and only
what it leaves unexplained is cut. Each coded dimension has its own ``2 ** bits`` buckets: the
cutoffs start at the residual's quantiles, as ColBERTv2's do, then a few Lloyd–Max steps move
them (a cutoff halfway between its two buckets' weights, a weight the mean of its bucket), which
lowers the squared error for the same bytes; principal axes differ widely in spread, hence one
set of buckets per dimension rather than ColBERTv2's one for all.

Decoding lifts a token back into the model's space, centroid + projection · bucket weights, so
a query's token vector ``q`` scores it as ``q · centroid + (projectionᵀ q) · weights``: max-sim in
the projected space for the residual, the query side unchanged, and int8 rows written before the
codebook existed score alike. When the fitting sample is unit length (the embedder's token
vectors are), decoded vectors are scaled back to unit length: the cut and the buckets shorten
tokens unevenly, and max-sim's max would otherwise favour the tokens that lost least over those
that match best. Decoding is two table look-ups and one (tokens × dims) by (dims × dim) product,
for all of a rerank's candidates at once: about 5 ms on one core for the 3,400 tokens of 30
HotpotQA paragraphs at 128 dimensions; with ``dims`` equal to the model's there is no
projection and no product.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(3000, 32)).astype(np.float32)
    >>> codec = ResidualCodec.fit(x, dims=16, bits=2, centroids=64, seed=0)
    >>> codes = codec.encode(x)
    >>> codes.shape, codes.dtype.name, codec.code_bytes
    ((3000, 6), 'uint8', 6)
    >>> back = codec.decode(codes)
    >>> back.shape, bool(np.mean((back - x) ** 2) < np.mean(x ** 2))
    ((3000, 32), True)
"""

from __future__ import annotations

import io

import numpy as np

from arag.index.kmeans import kmeans, nearest_centre

#: Bytes of a token's centroid id (uint16, little-endian), before its residual's bytes.
ID_BYTES = 2
MAX_CENTROIDS = 2 ** (8 * ID_BYTES)
#: Bits a dimension: whole buckets to a byte. 4 bits (16 buckets) keep late-interaction scores
#: closest to int8's (MiniLM token vectors: mean max-sim error 0.0019 against 2 bits' 0.0063); 2 bits
#: rank as well but reorder enough near-ties to cost answers (see the store's default).
BITS = (1, 2, 4)
#: Lloyd–Max steps that move the quantile buckets towards the least squared error.
BUCKET_REFINEMENTS = 50
#: Residuals the buckets are fitted on (a random subset of the k-means sample): about a thousand values a
#: bucket even at 4 bits, and sorting them is most of the fit's bucket time.
BUCKET_SAMPLE = 16_384
#: Tokens encoded together; the block's residuals and buckets then stay in the CPU's cache.
ENCODE_BLOCK = 4096


class ResidualCodec:
    """Centroids, per-dimension residual buckets and, when it cuts dimensions, the residual's projection."""

    def __init__(self, centroids: np.ndarray, cutoffs: np.ndarray, weights: np.ndarray,
                 projection: np.ndarray | None = None, unit_length: bool = False):
        self.centroids = np.ascontiguousarray(centroids, dtype=np.float32)  # (centroids, dim)
        self.cutoffs = np.ascontiguousarray(cutoffs, dtype=np.float32)  # (dims, 2**bits - 1), ascending
        self.weights = np.ascontiguousarray(weights, dtype=np.float32)  # (dims, 2**bits)
        self.projection = None if projection is None else np.ascontiguousarray(projection, dtype=np.float32)  # (dim, dims)
        self.unit_length = bool(unit_length)
        self.dim = self.centroids.shape[1]
        self.dims, buckets = self.weights.shape
        self.bits = buckets.bit_length() - 1
        self.code_bytes = ID_BYTES + self.dims * self.bits // 8
        self._norms = (self.centroids ** 2).sum(axis=1)
        self._lift = None if self.projection is None else np.ascontiguousarray(self.projection.T)
        self._byte_weights, self._byte_offsets = self._byte_table()

    @classmethod
    def fit(cls, vectors: np.ndarray, dims: int | None = None, bits: int = 4, centroids: int = 256, iterations: int = 10,
            sample: int = 60_000, seed: int = 0) -> "ResidualCodec":
        """k-means (``iterations`` Lloyd steps), residual projection and buckets, on up to ``sample`` of ``vectors``.

        ``dims`` None keeps every dimension of the vectors (no projection).

        256 centroids by default, where ColBERTv2 takes thousands: on MiniLM's token vectors more
        centroids fit the sample better but not the tokens that come after it, and each costs
        every later token a distance at ingest.
        """
        vectors = np.asarray(vectors, dtype=np.float32)
        n, dim = vectors.shape
        dims = dim if dims is None else dims
        if bits not in BITS:
            raise ValueError(f"residual bits must be one of {', '.join(map(str, BITS))}, not {bits}")
        if not 0 < dims <= dim or dims * bits % 8:
            raise ValueError(f"{dims} residual dimensions of {bits} bits must fill whole bytes and be at most {dim}")
        if not 0 < centroids <= MAX_CENTROIDS:
            raise ValueError(f"between 1 and {MAX_CENTROIDS} centroids, not {centroids}")
        rng = np.random.default_rng(seed)
        if n > sample:
            vectors = vectors[rng.choice(n, sample, replace=False)]
        # Stored as float16 (half the codebook's bytes): residuals are taken from what decoding reads.
        centres = kmeans(vectors, centroids, iterations, rng).astype(np.float16).astype(np.float32)
        residuals = vectors - centres[nearest_centre(vectors, centres)]
        projection = None
        if dims < dim:
            _, axes = np.linalg.eigh((residuals.T @ residuals).astype(np.float64))  # ascending variance
            projection = np.ascontiguousarray(axes[:, ::-1][:, :dims], dtype=np.float32)
            residuals = residuals @ projection
        if len(residuals) > BUCKET_SAMPLE:
            residuals = residuals[rng.choice(len(residuals), BUCKET_SAMPLE, replace=False)]
        cutoffs, weights = fit_buckets(residuals, bits)
        unit_length = bool(np.all(np.abs(np.linalg.norm(vectors, axis=1) - 1.0) < 1e-3))
        return cls(centres, cutoffs, weights, projection, unit_length)

    def encode(self, vectors: np.ndarray) -> np.ndarray:
        """(n, code_bytes) uint8 codes: centroid id, then the residual's buckets, ``8 // bits`` to a byte."""
        vectors = np.asarray(vectors, dtype=np.float32)
        per_byte = 8 // self.bits
        codes = np.empty((len(vectors), self.code_bytes), dtype=np.uint8)
        # A block at a time, so the residuals and their buckets stay in the CPU's cache.
        for start in range(0, len(vectors), ENCODE_BLOCK):
            block = vectors[start : start + ENCODE_BLOCK]
            ids = nearest_centre(block, self.centroids, self._norms)
            residuals = block - self.centroids[ids]
            if self.projection is not None:
                residuals = residuals @ self.projection
            buckets = bucket_of(residuals, self.cutoffs).reshape(len(block), -1, per_byte)
            # The first dimension of a byte in its highest bits; the buckets of one byte never overlap.
            packed = buckets[:, :, 0].copy()
            for slot in range(1, per_byte):
                packed <<= self.bits
                packed |= buckets[:, :, slot]
            codes[start : start + len(block), :ID_BYTES] = ids.astype("<u2").view(np.uint8).reshape(-1, ID_BYTES)
            codes[start : start + len(block), ID_BYTES:] = packed
        return codes

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """(n, dim) float32 vectors rebuilt from their codes, in the model's space."""
        codes = np.asarray(codes, dtype=np.uint8).reshape(-1, self.code_bytes)
        ids = codes[:, 0].astype(np.intp) | (codes[:, 1].astype(np.intp) << 8)
        residuals = np.take(self._byte_weights, codes[:, ID_BYTES:] + self._byte_offsets, axis=0).reshape(len(codes), self.dims)
        vectors = np.take(self.centroids, ids, axis=0)
        vectors += residuals if self._lift is None else residuals @ self._lift
        if self.unit_length:
            vectors /= np.maximum(np.sqrt(np.einsum("ij,ij->i", vectors, vectors)), 1e-12)[:, None]
        return vectors

    def _byte_table(self) -> tuple[np.ndarray, np.ndarray]:
        """The weights each of a residual byte's 256 values stands for, so decoding is one look-up a byte.

        Row ``256 * j + v`` holds the ``8 // bits`` weights of byte ``j`` holding ``v``; the offsets
        ``256 * j`` turn a code's bytes into its rows.
        """
        per_byte = 8 // self.bits
        residual_bytes = self.dims // per_byte
        shifts = self.bits * np.arange(per_byte - 1, -1, -1)
        buckets = (np.arange(256)[:, None] >> shifts[None, :]) & (2 ** self.bits - 1)  # (256, per_byte)
        weights = self.weights.reshape(residual_bytes, per_byte, 2 ** self.bits)
        table = weights[:, np.arange(per_byte)[None, :], buckets]  # (residual_bytes, 256, per_byte)
        return table.reshape(residual_bytes * 256, per_byte), 256 * np.arange(residual_bytes)

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        np.savez(buffer, centroids=self.centroids.astype(np.float16), cutoffs=self.cutoffs, weights=self.weights,
                 projection=np.zeros((0, 0), np.float32) if self.projection is None else self.projection,
                 unit_length=np.array(self.unit_length))
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, code_bytes: int, dim: int) -> "ResidualCodec":
        """The codec :meth:`to_bytes` wrote; ``code_bytes`` and ``dim`` (as stored beside it) must match it."""
        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            projection = arrays["projection"]
            codec = cls(arrays["centroids"], arrays["cutoffs"], arrays["weights"], projection if projection.size else None,
                        bool(arrays["unit_length"]))
        if (codec.code_bytes, codec.dim) != (code_bytes, dim):
            raise ValueError(f"stored residual codebook is {codec.code_bytes} bytes a token of {codec.dim} dimensions, "
                             f"its record says {code_bytes} of {dim}")
        return codec


def bucket_of(values: np.ndarray, cutoffs: np.ndarray) -> np.ndarray:
    """(n, dims) uint8 bucket of each value: how many of its dimension's cutoffs lie below it.

    One comparison of the whole array a cutoff (1, 3 or 15 of them), not a search a dimension: a
    column of a row-major array is strided, and searching it took 6 times as long at 2 bits.
    """
    buckets = np.zeros(values.shape, dtype=np.uint8)
    for cutoff in cutoffs.T:
        buckets += values > cutoff
    return buckets


def fit_buckets(values: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension cutoffs (dims, 2**bits - 1) and weights (dims, 2**bits) for ``values`` (n, dims).

    Quantile buckets (each holds as many values) refined by Lloyd–Max steps. Each dimension's
    values are sorted once, with their running sums: a step then finds its buckets' edges by
    binary search and their sums by subtraction, whatever the number of values, so 16 buckets
    get the many steps they need to settle.

    Example:
        >>> values = np.array([[0.0], [1.0], [9.0], [10.0]], np.float32)
        >>> cutoffs, weights = fit_buckets(values, bits=1)
        >>> cutoffs.tolist(), weights.tolist()
        ([[5.0]], [[0.5, 9.5]])
    """
    count = 2 ** bits
    ordered = np.ascontiguousarray(np.sort(values, axis=0).T)  # (dims, n), ascending
    dims, n = ordered.shape
    running = np.zeros((dims, n + 1))
    np.cumsum(ordered, axis=1, out=running[:, 1:])
    cutoffs = _quantiles(ordered, np.arange(1, count) / count)
    weights = _quantiles(ordered, (np.arange(count) + 0.5) / count)
    rows = np.arange(dims)[:, None]
    for step in range(BUCKET_REFINEMENTS + 1):
        # A value equal to a cutoff belongs to the bucket below it, as in bucket_of.
        inner = np.stack([np.searchsorted(ordered[d], cutoffs[d], side="right") for d in range(dims)])
        edges = np.concatenate([np.zeros((dims, 1), np.intp), inner, np.full((dims, 1), n)], axis=1)
        counts = np.diff(edges, axis=1)
        sums = running[rows, edges[:, 1:]] - running[rows, edges[:, :-1]]
        # An empty bucket keeps its weight, which could leave the weights out of order: sort them.
        weights = np.sort(np.where(counts > 0, sums / np.maximum(counts, 1), weights), axis=1).astype(np.float32)
        if step < BUCKET_REFINEMENTS:
            cutoffs = (weights[:, 1:] + weights[:, :-1]) / 2
    return cutoffs, weights


def _quantiles(ordered: np.ndarray, shares: np.ndarray) -> np.ndarray:
    """(dims, len(shares)) quantiles of each row of ``ordered`` (sorted ascending), as np.quantile's default
    (linear between the two nearest values) finds them, without sorting again.
    """
    position = shares * (ordered.shape[1] - 1)
    below = np.floor(position).astype(np.intp)
    above = np.minimum(below + 1, ordered.shape[1] - 1)
    fraction = (position - below).astype(np.float32)
    return (ordered[:, below] * (1 - fraction) + ordered[:, above] * fraction).astype(np.float32)
