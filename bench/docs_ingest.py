"""A real documentation set ingested as a person would: ``arag ingest FOLDER`` in a new process, per token-vector codec.

Run (the Python 3.11 documentation's reST sources, 497 pages and 12 MB, from Debian's package)::

    apt-get download python3.11-doc && dpkg-deb -x python3.11-doc_*.deb /tmp/pydoc
    .venv/bin/python bench/docs_ingest.py /tmp/pydoc/usr/share/doc/python3.11/html/_sources \\
        [--codecs residual,residual-384x2,int8]

The same package's HTML pages, as a person would point the tool at a documentation site (the pages
only, without the ``_sources`` copies and ``_static`` files beside them)::

    mkdir /tmp/pyhtml && cd /tmp/pydoc/usr/share/doc/python3.11/html && \\
        find . -name '*.html' -not -path './_*' -exec cp -L --parents {} /tmp/pyhtml \\;
    .venv/bin/python bench/docs_ingest.py /tmp/pyhtml --codecs residual --questions bench/questions/python-docs.jsonl

Writes ``bench/results/docs_ingest.json`` and prints a Markdown table.

Two PDF manuals from Debian's packages (running headers, page numbers, a table of contents, outlines)::

    mkdir /tmp/pdfs && cp /usr/share/doc/libtasn1-doc/libtasn1.pdf /usr/share/doc/shared-mime-info/shared-mime-info-spec.pdf /tmp/pdfs
    .venv/bin/python bench/docs_ingest.py /tmp/pdfs --codecs residual --questions bench/questions/pdf-manuals.jsonl

With ``--questions FILE.jsonl`` (lines ``{"question", "answers", "page"}``: short answers stated on the
page of that file name, e.g. ``bench/questions/nodejs-docs.jsonl`` for the Node.js 18 API docs' Markdown
from Debian's ``nodejs-doc``), the first codec's index is then asked each question through the graph,
with the default LLM: answers holding a gold answer, answers citing the page, median seconds, and prompt
tokens a call (what a page's rendering saves every answer). ``--index DIR`` skips the ingests and
asks the questions of a data directory the folder was already ingested into, once per answer style
of ``--answer-styles`` (e.g. ``sentence,auto``), in one run::

    .venv/bin/arag --data-dir /tmp/pdf-index ingest /tmp/pdfs
    .venv/bin/python bench/docs_ingest.py /tmp/pdfs --index /tmp/pdf-index --answer-styles sentence,auto \\
        --questions bench/questions/pdf-manuals.jsonl --out bench/results/answer-styles-pdf.json

For each codec (``ARAG_TOKEN_VECTOR_CODEC``), a new data directory and a new ``arag ingest FOLDER
--json --quiet`` process, timed from its launch to its exit (imports and model loading included),
with its peak resident memory (``/usr/bin/time``); then the same command again, nothing having changed (every file
is hashed and skipped). Then the data directory's size by part (Chroma, BM25, token vectors)
against the folder's bytes of text, the token store's bytes a token, and how many chunks sit under
a heading carried from a heading above it that has no text of its own ("Part 2: Moorings › Tides").

The reference, in the same run: a bare encoder loop over the same chunk texts (the embedder's
ONNX fp32 encoder, and its bf16 one where the CPU has it, texts tokenised beforehand, nothing
stored): ``ingest ÷ bare`` says how much of the encoder's speed the whole ingest keeps (reading,
parsing, chunking, Chroma, BM25, the token store and the process's start).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ask_latency import gold_answers  # noqa: E402
from hotpotqa import REPO, machine, print_table  # noqa: E402
from ingest_speed import bare_encoder_chunks_per_s  # noqa: E402


def run_ingest(data_dir: Path, folder: Path, codec: str) -> dict:
    """One ``arag ingest`` process under ``/usr/bin/time``: its JSON report, wall seconds and peak resident MiB."""
    env = {**os.environ, "ARAG_TOKEN_VECTOR_CODEC": codec}
    command = ["/usr/bin/time", "-f", "peak-rss-kib=%M", sys.executable, "-m", "arag", "--data-dir", str(data_dir),
               "ingest", str(folder), "--json", "--quiet"]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    try:  # files that fail leave status 1 and are listed in the report
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        raise SystemExit(f"arag ingest failed ({done.returncode}): {done.stderr[-2000:]}") from None
    [peak] = [line for line in done.stderr.splitlines() if line.startswith("peak-rss-kib=")]
    return {"report": report, "seconds": seconds, "peak_rss_mib": int(peak.split("=")[1]) / 1024}


def token_count(data_dir: Path) -> int:
    """Token vectors stored: int8 rows hold ``dim`` bytes a token, codebook rows the codebook's code bytes."""
    [path] = (data_dir / "token-vectors").glob("*.sqlite")
    with sqlite3.connect(path) as db:
        code_bytes = (db.execute("SELECT subvectors FROM codebook").fetchone() or [None])[0]
        count = 0
        for dim, size, int8 in db.execute("SELECT dim, length(codes), scales IS NOT NULL FROM tokens"):
            count += size // dim if int8 else size // code_bytes
    return count


def chunk_texts(data_dir: Path) -> tuple[list[str], int]:
    """The texts the encoder read at ingest (title, heading and chunk), and how many chunks' headings
    lead with a heading above them that has no text of its own ("Part 2: Moorings › Tides").
    """
    from arag.embeddings.embedder import embedding_text
    from arag.ingestion.headings import SEPARATOR
    from arag.ingestion.ingest import Ingestor
    from arag.settings import Settings

    got = Ingestor.from_settings(Settings(data_dir=data_dir)).store.collection.get(include=["documents", "metadatas"])
    headings = [m.get("heading", "") for m in got["metadatas"]]
    texts = [embedding_text(m["title"], heading, doc) for doc, m, heading in zip(got["documents"], got["metadatas"], headings)]
    return texts, sum(SEPARATOR in heading for heading in headings)


def ask_gold(data_dir: Path, questions: list[tuple[str, list[str], str]], answer_style: str | None = None) -> dict:
    """The questions asked of the index in ``data_dir``, in one process (models loaded once, a warm-up question
    first), in ``answer_style`` (None: the setting's).
    """
    from arag.runtime.components import Components
    from arag.settings import Settings
    from graphs import build_graph

    settings = Settings(data_dir=data_dir, **({"answer_style": answer_style} if answer_style else {}))
    graph = build_graph(components=Components(settings))
    graph.invoke({"question": "warm-up: what is this documentation about?"})
    return gold_answers(graph, questions, lambda citation, page: Path(citation.get("source", "")).name == page)


def ask_only(args: argparse.Namespace, questions: list[tuple[str, list[str], str]] | None) -> None:
    """``--index``: the gold questions asked of an index built before, in each answer style, side by side."""
    if not questions:
        raise SystemExit("--index asks --questions of an index: give --questions")
    if not (args.index / "chroma").is_dir():
        raise SystemExit(f"{args.index} holds no index: run `arag --data-dir {args.index} ingest {args.folder}` first")
    styles = args.answer_styles.split(",") if args.answer_styles else [None]
    by_style = {}
    for style in styles:
        gold = ask_gold(args.index, questions, style)
        by_style[style or "setting"] = gold
        print(json.dumps({"answer_style": style or "setting", **{k: v for k, v in gold.items() if k != "rows"}}),
              file=sys.stderr)
    result = {"machine": machine(), "date": time.strftime("%Y-%m-%d"), "folder": str(args.folder.resolve()),
              "command": "python bench/docs_ingest.py " + " ".join(sys.argv[1:]), "gold_by_answer_style": by_style}
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print_table(["answer style", "questions", "answers holding the gold one", "mean F1", "citing its page", "median s",
                 "prompt tokens a call"],
                [[style, g["questions"], g["answers_holding_gold"], g["mean_f1"], g["citing_the_page"], g["ask_median_s"],
                  g["prompt_tokens_per_call"]] for style, g in by_style.items()])


def main() -> None:
    from arag.embeddings.embedder import Embedder, bf16_pays
    from arag.index.catalog import directory_bytes
    from arag.index.token_store import codec_options
    from arag.settings import Settings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a folder of documents, e.g. the python3.11-doc package's html/_sources")
    parser.add_argument("--codecs", default=Settings().token_vector_codec, help="comma-separated token-vector codecs")
    parser.add_argument("--questions", type=Path, default=None,
                        help="JSONL of {question, answers, page}: asked of the first codec's index afterwards")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "docs_ingest.json")
    parser.add_argument("--index", type=Path, default=None,
                        help="a data directory FOLDER was already ingested into: only ask --questions of it, once per "
                        "--answer-styles")
    parser.add_argument("--answer-styles", default=None,
                        help="with --index: comma-separated answer styles to ask the questions in (default: the setting's)")
    args = parser.parse_args()
    questions = None
    if args.questions:
        questions = [(q["question"], q["answers"], q["page"])
                     for q in map(json.loads, filter(str.strip, args.questions.read_text().splitlines()))]
    if args.index:
        ask_only(args, questions)
        return
    codecs = args.codecs.split(",")
    for codec in codecs:  # a typo fails now, not after the first ingest
        codec_options(codec)
    folder = args.folder.resolve()
    if not folder.is_dir():
        raise SystemExit(f"{folder} is not a folder")
    if not Path("/usr/bin/time").exists():
        raise SystemExit("/usr/bin/time measures each ingest's peak memory: apt-get install time")
    files = [f for f in folder.rglob("*") if f.is_file()]
    text_bytes = sum(f.stat().st_size for f in files)
    work = Path(tempfile.mkdtemp(prefix="arag-docs-ingest-"))
    rows, texts, carried, gold = [], None, 0, None
    try:
        for codec in codecs:
            data_dir = work / codec
            first = run_ingest(data_dir, folder, codec)
            again = run_ingest(data_dir, folder, codec)
            report = first["report"]
            if report["failures"]:
                print(f"{len(report['failures'])} files failed, e.g. {report['failures'][0]}", file=sys.stderr)
            if again["report"]["unchanged"] != report["added"] or again["report"]["chunks_embedded"]:
                raise SystemExit(f"the second ingest redid work: {again['report']}")
            parts = {name: directory_bytes(data_dir / name) for name in ("chroma", "lexical", "token-vectors")}
            tokens = token_count(data_dir)
            if texts is None:
                texts, carried = chunk_texts(data_dir)
            row = {"codec": codec, "files": report["added"], "failures": len(report["failures"]),
                   "chunks": report["chunks_written"], "ingest_s": round(first["seconds"], 1),
                   "chunks_per_s": round(report["chunks_written"] / first["seconds"], 1),
                   "reingest_unchanged_s": round(again["seconds"], 1), "peak_rss_mib": round(first["peak_rss_mib"]),
                   **{f"{name}_mib": round(size / 2**20, 1) for name, size in parts.items()},
                   "token_vectors": tokens, "token_store_bytes_per_token": round(parts["token-vectors"] / max(1, tokens), 1),
                   "index_bytes_per_text_byte": round(sum(parts.values()) / text_bytes, 1)}
            rows.append(row)
            print(json.dumps(row), file=sys.stderr)
            if questions and gold is None:
                gold = ask_gold(data_dir, questions)
                print(json.dumps({k: v for k, v in gold.items() if k != "rows"}), file=sys.stderr)
        # bf16 only where it is faster than fp32 (AMX): elsewhere it is slower than the
        # fp32 the ingest itself then uses, and would only lengthen the run.
        reference = Embedder(Embedder.from_settings(Settings(data_dir=work / "ref")).model_dir, backend="onnx",
                             bulk_precision="bf16" if bf16_pays() else "fp32")
        reference.embed_documents(["warm up"])
        bare = bare_encoder_chunks_per_s(reference, texts)
        bare_bf16 = bare_encoder_chunks_per_s(reference, texts, bf16=True) if reference._bulk_encoder() is not None else None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for row in rows:
        row["ingest_over_bare_fp32"] = round(row["chunks_per_s"] / bare, 3)
        if bare_bf16:
            row["ingest_over_bare_bf16"] = round(row["chunks_per_s"] / bare_bf16, 3)
    result = {"machine": machine(), "date": time.strftime("%Y-%m-%d"), "folder": str(folder), "files": len(files),
              "text_mib": round(text_bytes / 2**20, 1), "command": "python bench/docs_ingest.py " + " ".join(sys.argv[1:]),
              "bare_onnx_fp32_chunks_per_s": round(bare, 1), "bare_bf16_chunks_per_s": round(bare_bf16, 1) if bare_bf16 else None,
              "chunks_under_a_carried_heading": carried, "rows": rows, **({"gold": gold} if gold else {})}
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"{len(files)} files, {text_bytes / 2**20:.1f} MiB of text; bare ONNX fp32 encoder loop {bare:.1f} chunks/s"
          + (f", bare bf16 {bare_bf16:.1f}" if bare_bf16 else "")
          + f"; {carried} of {len(texts)} chunks under a heading carried from above\n")
    print_table(["token vectors", "chunks", "ingest s", "chunks/s", "÷ bare fp32", "÷ bare bf16", "again, unchanged, s",
                 "peak RSS MiB", "Chroma MiB", "BM25 MiB", "token vectors MiB", "bytes/token", "index bytes / text byte"],
                [[r["codec"], r["chunks"], r["ingest_s"], r["chunks_per_s"], r["ingest_over_bare_fp32"],
                  r.get("ingest_over_bare_bf16", "—"),
                  r["reingest_unchanged_s"], r["peak_rss_mib"], r["chroma_mib"], r["lexical_mib"], r["token-vectors_mib"],
                  r["token_store_bytes_per_token"], r["index_bytes_per_text_byte"]] for r in rows])
    if gold:
        print(f"\n{gold['questions']} questions ({args.questions.name}) asked of the {rows[0]['codec']} index: "
              f"{gold['answers_holding_gold']} answers hold a gold answer, {gold['citing_the_page']} cite its page; "
              f"median {gold['ask_median_s']} s, {gold['prompt_tokens_per_call']} prompt tokens a call")


if __name__ == "__main__":
    main()
