"""Ingestion speed per embedding backend, against a bare encoder loop, with retrieval quality kept.

Run: ``.venv/bin/python bench/ingest_speed.py [--data ../shared/data/hotpotqa/dev-250.jsonl]
[--variants onnx/int8,onnx/residual-128x2] [--questions N]``
Writes ``bench/results/ingest_speed.json`` and prints a Markdown table.

For each variant, ``backend/codec`` (embedding backend ``torch``, ``onnx`` or ``onnx-int8``,
optionally ``@fp32`` or ``@bf16`` for how large batches of documents are encoded, default
``auto``: ``Settings.embedding_bulk_precision``; token vectors stored as int8, product-quantised to ``pq-BYTES`` or residual-compressed to
``residual-DIMSxBITS[-kCENTROIDS]``, :func:`arag.index.token_store.codec_options`) the pooled
paragraphs of the dataset (2,495 for dev-250) are ingested from scratch by the ordinary
:class:`Ingestor` into a data directory of their own, token vectors kept, as ``arag ingest``
does: chunks a second over the whole ingest (chunking, encoding, Chroma, token store). Then, on
that index, every question is searched: first-retrieval nDCG@10 (dense top 20) and nDCG@10
after late-interaction reranking of the hybrid top 20 (the app's first retrieval and scorer),
paragraphs judged by title, with the rerank's median milliseconds (question encoded, stored
vectors read and decoded, max-sim). ``--questions N`` keeps the first N questions and only
their paragraphs: a quick check that the script runs, not a measurement.

The reference is a bare encoder loop over the same chunk texts in the same run: ONNX Runtime
fp32 with the texts tokenised beforehand, the embedder's own length-sorted batches (8 texts by
default), nothing stored; the ratio ``ingest / bare`` says how much of the encoder's speed the
whole ingest keeps. A variant that encoded its documents in bf16 is also set against a bare loop of
the bf16 encoder (32 texts a pass) in the same run. The ONNX export happens before the clock starts (it is done once per model
and cached).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hotpotqa import REPO, load_questions, machine, print_table  # noqa: E402

from arag.evaluation.metrics import ndcg_at  # noqa: E402

#: Embedding backend / token-vector codec spec, one ingest each.
VARIANTS = ("torch/int8", "onnx/int8", "onnx-int8/int8", "onnx/pq-96", "onnx/pq-48", "onnx/pq-32",
            "onnx/residual-384x2", "onnx/residual-192x2", "onnx/residual-128x2", "onnx/residual-128x1")
DEPTH = 20


def bare_encoder_chunks_per_s(embedder, texts: list[str], bf16: bool = False) -> float:
    """Chunks/s of the encoder alone: tokenised beforehand, the embedder's own batches, nothing kept.

    fp32 is the ONNX Runtime encoder; ``bf16`` the OpenVINO encoder an ingest uses for large batches
    (loaded and checked before the clock starts), in its own batch size.
    """
    from arag.embeddings.embedder import BULK_BATCH

    encodings = embedder._tokenise(texts, embedder.max_length)
    run, size = (embedder._bulk_encoder(), BULK_BATCH) if bf16 else (embedder._encoder(), None)
    if run is None:
        raise SystemExit("the bf16 encoder is not available on this machine (see the log)")
    started = time.perf_counter()
    for _, ids, mask, _ in embedder.batches(encodings, size):
        run(ids, mask)
    return len(texts) / (time.perf_counter() - started)


def quality(ingestor, questions: list[dict]) -> dict:
    from arag.embeddings.embedder import embedding_text
    from arag.index.lexical import LexicalIndex
    from arag.relevance.scorers import LateInteractionScorer
    from arag.retrieval.retriever import DenseRetriever, HybridRetriever

    settings, store, embedder = ingestor.settings, ingestor.store, ingestor.embedder
    dense = DenseRetriever(embedder, store, settings.candidates, settings.rrf_k)
    hybrid = HybridRetriever(embedder, store, LexicalIndex(store), settings.candidates, settings.rrf_k)
    scorer = LateInteractionScorer(embedder, ingestor.tokens)
    first, reranked, seconds = [], [], []
    for q in questions:
        relevant = set(q["relevant"])
        first.append(ndcg_at([c["title"] for c in dense.search(q["question"], DEPTH)], relevant))
        candidates = hybrid.search(q["question"], DEPTH)
        texts = [embedding_text(c["title"], c.get("heading", ""), c["text"]) for c in candidates]
        started = time.perf_counter()
        scores = scorer.score(q["question"], texts)
        seconds.append(time.perf_counter() - started)
        order = np.argsort(-np.asarray(scores), kind="stable")
        reranked.append(ndcg_at([candidates[i]["title"] for i in order], relevant))
    return {"first_ndcg@10": round(float(np.mean(first)), 4), "late_interaction_rerank_ndcg@10": round(float(np.mean(reranked)), 4),
            "rerank_median_ms": round(1000 * float(np.median(seconds)), 1)}


def first_questions(data: Path, count: int, work: Path) -> Path:
    """A copy of ``data`` with its first ``count`` questions only (their paragraphs come with them)."""
    lines = [line for line in data.read_text(encoding="utf-8").splitlines() if line.strip()][:count]
    path = work / f"first-{count}-{data.name}"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def main() -> None:
    from arag.embeddings.embedder import Embedder, embedding_text
    from arag.index.token_store import TokenVectorStore, codec_options
    from arag.ingestion.ingest import Ingestor
    from arag.settings import Settings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "hotpotqa" / "dev-250.jsonl")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help="comma-separated backend/codec pairs, e.g. onnx/int8,onnx/pq-48,onnx/residual-128x2")
    parser.add_argument("--questions", type=int, help="only the first N questions and their paragraphs (a smoke run)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "ingest_speed.json")
    args = parser.parse_args()
    variants = [variant.split("/") for variant in args.variants.split(",")]
    for variant in variants:  # a typo fails now, not after an hour of ingests
        if len(variant) != 2:
            raise SystemExit(f"a variant is backend/codec, e.g. onnx/residual-128x2, not {'/'.join(variant)!r}")
        codec_options(variant[1])
    work = Path(tempfile.mkdtemp(prefix="arag-ingest-speed-"))
    data = first_questions(args.data, args.questions, work) if args.questions else args.data
    questions, paragraphs = load_questions(data)
    corpus = work / "pool.jsonl"
    corpus.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in paragraphs), encoding="utf-8")
    rows, chunk_texts = [], None
    try:
        for spec, codec in variants:
            backend, _, bulk = spec.partition("@")
            options = codec_options(codec)
            settings = Settings(data_dir=work / f"{backend}_{bulk}_{codec}", collection="pool", embedding_backend=backend,
                                embedding_bulk_precision=bulk or "auto",
                                token_vector_codec=options["codec"], token_vector_bytes=options.get("subvectors", 48))
            ingestor = Ingestor.from_settings(settings)
            # The spec's own store: it names shapes (residual dimensions, bits, centroids) settings do not.
            ingestor.tokens.close()
            ingestor.tokens = TokenVectorStore.for_collection(settings.data_dir, ingestor.store.name,
                                                              ingestor.store.model_id, **options)
            ingestor.embedder.embed_documents(["warm up (and export) the encoder"])
            started = time.perf_counter()
            report = ingestor.ingest([corpus], progress=False)
            seconds = time.perf_counter() - started
            if report.failures:
                raise SystemExit(f"ingestion failed: {report.failures[0]}")
            tokens = ingestor.tokens
            token_count = sum(len(v) for v in tokens.get({m["text_hash"] for _, m in ingestor.store.iter_metadata()}).values())
            row = {"variant": f"{spec}/{codec}", "backend": backend, "codec": codec, "codebook": tokens.fitted_codec,
                   "model_id": ingestor.embedder.model_id, "chunks": report.chunks_embedded, "chunks_in_bf16": report.chunks_in_bf16,
                   "seconds": round(seconds, 1), "chunks_per_s": round(report.chunks_embedded / seconds, 1),
                   "token_store_bytes_per_token": round(tokens.disk_bytes() / max(1, token_count), 1),
                   **quality(ingestor, questions)}
            if chunk_texts is None:
                got = ingestor.store.collection.get(include=["documents", "metadatas"])
                chunk_texts = [embedding_text(m["title"], m.get("heading", ""), doc)
                               for doc, m in zip(got["documents"], got["metadatas"])]
            rows.append(row)
            print(json.dumps(row), file=sys.stderr)
        reference = Embedder(Embedder.from_settings(Settings(data_dir=work / "ref")).model_dir, backend="onnx", bulk_precision="bf16")
        reference.embed_documents(["warm up"])
        bare = bare_encoder_chunks_per_s(reference, chunk_texts)
        bare_bf16 = bare_encoder_chunks_per_s(reference, chunk_texts, bf16=True) if any(r["chunks_in_bf16"] for r in rows) else None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for row in rows:
        row["ingest_over_bare_onnx_fp32"] = round(row["chunks_per_s"] / bare, 3)
        if row["chunks_in_bf16"]:
            row["ingest_over_bare_bf16"] = round(row["chunks_per_s"] / bare_bf16, 3)
    report = {"machine": machine(), "date": time.strftime("%Y-%m-%d"), "data": data.name,
              "paragraphs": len(paragraphs), "questions": len(questions),
              "command": "python bench/ingest_speed.py " + " ".join(sys.argv[1:]),
              "bare_onnx_fp32_chunks_per_s": round(bare, 1),
              "bare_bf16_chunks_per_s": round(bare_bf16, 1) if bare_bf16 else None, "rows": rows}
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"bare ONNX fp32 encoder loop: {bare:.1f} chunks/s" +
          (f"; bare OpenVINO bf16 encoder loop: {bare_bf16:.1f} chunks/s" if bare_bf16 else "") + "\n")
    print_table(["backend", "token vectors", "codebook", "chunks", "in bf16", "ingest s", "chunks/s", "÷ bare fp32 encoder",
                 "÷ bare bf16 encoder", "first nDCG@10", "late-interaction rerank nDCG@10", "rerank median ms", "token store bytes/token"],
                [[r["variant"].split("/")[0], r["codec"], r["codebook"] or "none (int8 rows)", r["chunks"], r["chunks_in_bf16"],
                  r["seconds"], r["chunks_per_s"], r["ingest_over_bare_onnx_fp32"], r.get("ingest_over_bare_bf16", "–"),
                  r["first_ndcg@10"], r["late_interaction_rerank_ndcg@10"],
                  r["rerank_median_ms"], r["token_store_bytes_per_token"]] for r in rows])

if __name__ == "__main__":
    main()
