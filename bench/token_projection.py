"""Token vectors cut to fewer dimensions: what late-interaction reranking keeps at each size.

Run: ``.venv/bin/python bench/token_projection.py [--data ../shared/data/hotpotqa/dev-250.jsonl]
[--specs pca:384x2,pca:256x1,weighted:256x1,pca:128x0] [--out FILE]``
Writes ``bench/results/token_projection.json`` and prints a Markdown table.

ColBERTv2 stores 20 to 40 bytes a token because its 128-dimension vectors were trained to be that
small. The app's token vectors are MiniLM's 384 dimensions, and its residual codec
(:class:`arag.index.residual_codec.ResidualCodec`) can only cut a residual to its principal axes.
This asks whether a better linear cut exists before anyone trains one. The dataset's pooled
paragraphs are ingested as ``arag ingest`` does; each question's hybrid top 20 (the app's first
retrieval) is reranked by max-sim over token vectors decoded from each code, against the
uncoded float vectors in the same run; paragraphs are judged by title (nDCG@10).

Specs are ``KIND:DIMSxBITS``, the codec fitted on 60,000 tokens drawn from the candidates'
(the collection's) own tokens, never on a question:

- ``pca``: the shipped codec, 256 k-means centroids and the residual cut to its ``DIMS``
  principal axes (all of them at 384), ``BITS`` bits a dimension; ``BITS`` 0 cuts without
  quantising, the best any quantiser could do on that cut.
- ``weighted``: the same centroids, and the cut that keeps the most of the residual's dot
  product with vectors distributed as the tokens themselves are (a query token that matches a
  passage token resembles it): with ``S`` the square root of the tokens' second moment, the top
  axes ``U`` of ``S R S`` (``R`` the residuals' second moment) give the encoding projection
  ``S U`` and the lift back ``Uᵀ S⁻¹``.

Bytes a token are the code's (2 for the centroid id, then the residual's bits; a cut that is not
quantised has no code); the store's file adds about 8 a token of SQLite rows and keys.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hotpotqa import REPO, ingest_pool, load_questions, print_table, write_report  # noqa: E402

from arag.embeddings.embedder import embedding_text, max_sim  # noqa: E402
from arag.evaluation.metrics import ndcg_at  # noqa: E402
from arag.index.kmeans import kmeans, nearest_centre  # noqa: E402
from arag.index.residual_codec import BUCKET_SAMPLE, ResidualCodec, bucket_of, fit_buckets  # noqa: E402

SPECS = ("pca:384x2", "pca:384x1", "pca:256x1", "weighted:256x1", "pca:128x2", "weighted:128x2",
         "pca:256x0", "pca:192x0", "pca:128x0", "weighted:128x0")
DEPTH = 20
FIT_SAMPLE = 60_000
CENTROIDS = 256


class WeightedCut:
    """Residual codec whose cut keeps the residual's dot product with token-like vectors (bits 0: not quantised)."""

    def __init__(self, sample: np.ndarray, dims: int, bits: int, rng: np.random.Generator):
        self.centroids = kmeans(sample, CENTROIDS, 10, rng).astype(np.float16).astype(np.float32)
        residuals = sample - self.centroids[nearest_centre(sample, self.centroids)]
        root, inverse_root = _roots(sample.T @ sample / len(sample))
        _, axes = np.linalg.eigh(root @ (residuals.T @ residuals / len(residuals)) @ root)
        top = axes[:, ::-1][:, :dims]
        self.encoding = (root @ top).astype(np.float32)
        self.lift = (top.T @ inverse_root).astype(np.float32)
        projected = residuals @ self.encoding
        self.buckets = fit_buckets(projected[rng.choice(len(projected), min(len(projected), BUCKET_SAMPLE),
                                                         replace=False)], bits) if bits else None

    def round_trip(self, vectors: np.ndarray) -> np.ndarray:
        ids = nearest_centre(vectors, self.centroids)
        projected = (vectors - self.centroids[ids]) @ self.encoding
        if self.buckets is not None:
            cutoffs, weights = self.buckets
            projected = np.take_along_axis(weights, bucket_of(projected, cutoffs).T.astype(np.intp), axis=1).T
        return _unit(self.centroids[ids] + projected @ self.lift)


def _roots(moment: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    values, vectors = np.linalg.eigh(moment.astype(np.float64))
    values = np.maximum(values, 1e-6 * values.max())
    return (vectors * values ** 0.5) @ vectors.T, (vectors * values ** -0.5) @ vectors.T


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def round_trip(spec: str, sample: np.ndarray, vectors: np.ndarray) -> tuple[np.ndarray, int]:
    """``vectors`` coded and decoded by ``spec``'s codec fitted on ``sample``; and the code's bytes a token."""
    kind, shape = spec.split(":")
    dims, bits = (int(part) for part in shape.split("x"))
    rng = np.random.default_rng(0)
    code_bytes = 2 + dims * bits // 8
    if kind == "weighted":
        return WeightedCut(sample, dims, bits, rng).round_trip(vectors), code_bytes
    if kind != "pca":
        raise SystemExit(f"unknown spec {spec!r}: pca:DIMSxBITS or weighted:DIMSxBITS")
    # The shipped codec's own fit; with 0 bits its centroids and principal axes are used unquantised.
    codec = ResidualCodec.fit(sample, dims=None if dims == sample.shape[1] else dims, bits=bits or 1,
                              centroids=CENTROIDS, seed=0)
    if bits == 0:
        ids = nearest_centre(vectors, codec.centroids)
        axes = codec.projection if codec.projection is not None else np.eye(codec.dim, dtype=np.float32)
        return _unit(codec.centroids[ids] + (vectors - codec.centroids[ids]) @ axes @ axes.T), code_bytes
    return codec.decode(codec.encode(vectors)), codec.code_bytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "hotpotqa" / "dev-250.jsonl")
    parser.add_argument("--specs", default=",".join(SPECS), help="comma-separated KIND:DIMSxBITS")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "token_projection.json")
    args = parser.parse_args()

    from arag.index.lexical import LexicalIndex
    from arag.retrieval.retriever import HybridRetriever

    questions, _ = load_questions(args.data)
    with tempfile.TemporaryDirectory() as work:
        ingestor = ingest_pool(args.data, Path(work))
        settings, embedder = ingestor.settings, ingestor.embedder
        hybrid = HybridRetriever(embedder, ingestor.store, LexicalIndex(ingestor.store), settings.candidates, settings.rrf_k)
        candidates = {}
        for q in questions:
            found = hybrid.search(q["question"], DEPTH)
            candidates[q["id"]] = [(c["title"], embedding_text(c["title"], c.get("heading", ""), c["text"])) for c in found]
    texts = sorted({text for found in candidates.values() for _, text in found})
    print(f"encoding the token vectors of {len(texts)} candidate paragraphs …", file=sys.stderr)
    floats = embedder.token_vectors(texts)
    queries = {q["id"]: embedder.token_vectors([q["question"]])[0] for q in questions}
    position = {text: i for i, text in enumerate(texts)}
    every = np.concatenate(floats)
    ends = np.cumsum([len(v) for v in floats])[:-1]
    sample = every[np.random.default_rng(0).choice(len(every), min(len(every), FIT_SAMPLE), replace=False)]

    def rerank_ndcg(vectors: list[np.ndarray]) -> float:
        scores = []
        for q in questions:
            found = candidates[q["id"]]
            sims = np.array([max_sim(queries[q["id"]], vectors[position[text]]) for _, text in found])
            order = np.argsort(-sims, kind="stable")
            scores.append(ndcg_at([found[i][0] for i in order], set(q["relevant"])))
        return round(float(np.mean(scores)), 4)

    reference = rerank_ndcg(floats)
    rows = []
    for spec in args.specs.split(","):
        started = time.perf_counter()
        decoded, code_bytes = round_trip(spec, sample, every)
        ndcg = rerank_ndcg(np.split(decoded, ends))
        rows.append({"spec": spec, "code_bytes_per_token": code_bytes, "quantised": not spec.endswith("x0"),
                     "late_interaction_rerank_ndcg@10": ndcg, "minus_float": round(ndcg - reference, 4),
                     "fit_and_code_s": round(time.perf_counter() - started, 1)})
        print(rows[-1], file=sys.stderr, flush=True)
    write_report(args.out, data=args.data.name, questions=len(questions), candidate_paragraphs=len(texts),
                 tokens=int(len(every)), float_rerank_ndcg10=reference,
                 command="python bench/token_projection.py " + " ".join(sys.argv[1:]), rows=rows)
    print(f"float token vectors: rerank nDCG@10 {reference}")
    print_table(["code", "bytes a token (code)", "quantised", "rerank nDCG@10", "− float"],
                [[r["spec"], r["code_bytes_per_token"] if r["quantised"] else "–", "yes" if r["quantised"] else "no (cut only)",
                  r["late_interaction_rerank_ndcg@10"], r["minus_float"]] for r in rows])


if __name__ == "__main__":
    main()
