"""The ``arag`` command line: ingest documents, ask questions, run the demo.

Exit codes: 0 success; 1 the work could not be (fully) done, e.g. a file failed to ingest
or a model could not be loaded; 2 the command line or input is invalid.

Each command imports what it needs inside its function: ``arag --help`` or ``arag models``
should not pay seconds of torch, Chroma and LangGraph imports that only ``ask`` and ``ingest`` use.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import sys
from pathlib import Path

from arag.environment import apply_offline_environment

SAMPLES = Path(__file__).resolve().parent / "samples" / "python-tutorial"
DEMO_QUESTION = "How do I create a virtual environment?"


class UsageError(Exception):
    """Bad input from the user: exit code 2."""


def _settings(args: argparse.Namespace, **extra):
    from pydantic import ValidationError

    from arag.settings import Settings

    overrides = {k: v for k, v in extra.items() if v is not None}
    for name in ("data_dir", "collection", "llm", "top_k"):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise UsageError(f"invalid setting {'.'.join(map(str, first['loc']))}: {first['msg']}") from None


def cmd_ingest(args: argparse.Namespace) -> int:
    from arag.ingestion.ingest import ExcludePatterns, Ingestor, check_tags

    settings = _settings(args)
    tags = {}
    for item in args.tag or []:
        name, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--tag {item!r}: write NAME=VALUE, e.g. --tag team=hr")
        tags[name.strip()] = value.strip()
    exclude = args.exclude or []
    try:
        check_tags(tags)
        ExcludePatterns(exclude)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    report = Ingestor.from_settings(settings).ingest(args.paths, prune=args.prune, progress=not args.quiet, tags=tags,
                                                     exclude=exclude)
    for failure in report.failures:
        print(f"arag: error: {failure}", file=sys.stderr)
    if args.json:
        print(json.dumps({
            "added": report.added, "updated": report.updated, "unchanged": report.unchanged,
            "removed": report.removed, "chunks_written": report.chunks_written,
            "chunks_embedded": report.chunks_embedded, "chunks_reused": report.chunks_reused,
            "chunks_removed": report.chunks_removed, "seconds": round(report.seconds, 2),
            "failures": [{"path": f.path, "reason": f.reason} for f in report.failures],
            "skipped": report.skipped,
            "excluded": report.excluded,
            "unmatched_patterns": report.unmatched_patterns,
        }))
    else:
        print(report.summary())
    return 1 if report.failures else 0


def _print_progress(node: str, event: dict) -> None:
    keys = ("route", "found", "kept", "verdict", "reason", "skipped", "llm_calls", "prompt_tokens")
    extras = {k: event[k] for k in keys if k in event}
    detail = ", ".join(f"{k}={v}" for k, v in extras.items())
    print(f"  · {node} {event['ms']:.0f} ms{(' (' + detail + ')') if detail else ''}", file=sys.stderr, flush=True)


def run_question(settings, question: str, thread: str | None, stream_tokens: bool, show_progress: bool,
                 profile: str | None = None) -> dict:
    """Run one question through the graph, streaming progress and tokens; return the result."""
    from arag.runtime.components import Components
    from arag.sessions.conversations import stream_turn
    from graphs import build_graph, warm_up_in_background

    if not question.strip():
        raise UsageError("the question is empty")
    components = Components(settings)
    warm_up_in_background(components)  # the local model loads while the question is retrieved
    checkpointer = None
    config: dict = {}
    if thread:
        from arag.sessions.checkpoints import open_checkpointer

        checkpointer = open_checkpointer(settings)
        config = {"configurable": {"thread_id": thread}}
    if profile:
        config.setdefault("configurable", {})["profile"] = profile
    graph = build_graph(components=components, checkpointer=checkpointer)
    result: dict = {}
    for kind, payload in stream_turn(graph, question, config, stream_tokens=stream_tokens):
        if kind == "node" and show_progress:
            _print_progress(*payload)
        elif kind == "token":
            print(payload, end="", flush=True)
        elif kind == "result":
            result = payload
    if thread:
        # The web app lists the same threads, so a conversation started here continues there.
        from arag.sessions.checkpoints import open_thread_store

        open_thread_store(settings).add_turn(thread, result)
    return result


def _print_answer(result: dict, streamed: bool) -> None:
    if streamed:
        print()
    else:
        print(result["answer"])
    if result.get("sql"):
        print(f"SQL: {result['sql']}")
    for note in result.get("notes", []):
        print(f"Note: {note}")
    if result["citations"]:
        from arag.text import citation_name

        print("\nSources:")
        for c in result["citations"]:
            print(f"  [{c['n']}] {citation_name(c)} — {c['source']}")
    print(f"\n({result['llm_calls']} LLM call(s), {result['seconds']:.1f} s)", file=sys.stderr)


def cmd_ask(args: argparse.Namespace) -> int:
    sources = [s if "://" in s else str(Path(s).resolve()) for s in args.source or []]
    settings = _settings(args, sources=sources or None, long_context=args.long_context or None)
    if sources:
        _check_sources_indexed(settings, sources)
    stream = not args.json and sys.stdout.isatty()
    result = run_question(settings, args.question, args.thread, stream_tokens=stream,
                          show_progress=not args.json and not args.quiet, profile=args.profile)
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        _print_answer(result, streamed=stream)
    return 0


def _check_sources_indexed(settings, sources: list[str]) -> None:
    from arag.runtime.components import Components

    store = Components(settings).store
    missing = [s for s in sources if not store.collection.get(where={"source": s}, limit=1, include=[])["ids"]]
    if missing:
        raise UsageError(f"not in the index: {', '.join(missing)} (name ingested files, or run `arag ingest` first)")


def cmd_demo(args: argparse.Namespace) -> int:
    from arag.ingestion.ingest import Ingestor

    settings = _settings(args, collection=args.collection or "demo")
    print(f"Ingesting the sample corpus {SAMPLES} (Python tutorial, PSF License) …", file=sys.stderr)
    report = Ingestor.from_settings(settings).ingest([SAMPLES], prune=True, progress=True)
    print(report.summary(), file=sys.stderr)
    if report.failures:
        for failure in report.failures:
            print(f"arag: error: {failure}", file=sys.stderr)
        return 1
    question = args.question or DEMO_QUESTION
    print(f"\nQ: {question}\n", file=sys.stderr)
    stream = sys.stdout.isatty()
    result = run_question(settings, question, None, stream_tokens=stream, show_progress=True)
    _print_answer(result, streamed=stream)
    return 0


def cmd_graph(args: argparse.Namespace) -> int:
    from arag.drawing import DrawingError, render, to_dot, to_mermaid
    from graphs import build_graph

    settings = _settings(args)
    graph = build_graph(settings)
    visited = None
    if args.trace:
        try:
            record = json.loads(Path(args.trace).read_text())
            visited = [e["node"] for e in record["trace"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UsageError(f"{args.trace}: not an `arag ask --json` output ({exc})") from None
    if args.format == "mermaid":
        text = to_mermaid(graph)
        if args.out:
            Path(args.out).write_text(text)
        else:
            print(text)
        return 0
    if args.format == "dot" and not args.out:
        print(to_dot(graph, visited))
        return 0
    if not args.out:
        raise UsageError(f"--format {args.format} needs --out FILE")
    try:
        if args.format == "dot":
            Path(args.out).write_text(to_dot(graph, visited))
        else:
            render(to_dot(graph, visited), Path(args.out), args.format)
    except DrawingError as exc:
        print(f"arag: error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from arag.llms.factory import PRESETS, local_model_file

    settings = _settings(args)
    # The per-user cache is not where a user would look first, so say where the files are.
    print(f"models directory: {settings.models_path}", file=sys.stderr)
    for name, preset in PRESETS.items():
        path = settings.models_path / preset.filename
        status = "assembled" if path.exists() else "not assembled"
        if args.prepare and name in args.prepare:
            local_model_file(name, settings)
            status = "verified"
        print(f"{name:<11} {status:<14} {preset.description} [{preset.licence}]")
    from arag.embeddings.presets import EMBEDDER_PRESETS, prepare_embedder, prepared_dir

    unknown = sorted(set(args.prepare or []) - set(PRESETS) - set(EMBEDDER_PRESETS))
    if unknown:
        raise UsageError(f"unknown preset {', '.join(unknown)}; use one of {', '.join([*PRESETS, *EMBEDDER_PRESETS])}")
    print("embedding models (ARAG_EMBEDDING_MODEL=NAME; 'minilm', the packaged default, needs no preparing):")
    for name, preset in EMBEDDER_PRESETS.items():
        status = "prepared" if prepared_dir(settings.models_path, name) else "not prepared"
        if args.prepare and name in args.prepare:
            prepare_embedder(name, settings.models_path)
            status = "verified"
        print(f"{name:<14} {status:<14} {preset.description} [{preset.licence}]")
    return 0


def _training_options(args: argparse.Namespace):
    from arag.training.finetune import FineTuneConfig
    from arag.training.trainer import PairOptions

    if args.steps is not None and args.steps < 1:
        raise UsageError("--steps must be at least 1")
    if args.max_pairs < 10 or args.synthetic < 0:
        raise UsageError("--max-pairs must be at least 10 and --synthetic at least 0")
    if not 0 <= args.held_out < 0.5:
        raise UsageError("--held-out must be in [0, 0.5)")
    if getattr(args, "temperature", 0.05) <= 0:
        raise UsageError("--temperature must be above 0")
    pooling = getattr(args, "pooling", "mean")
    latents, heads = getattr(args, "latents", None), getattr(args, "heads", None)
    if (latents is not None or heads is not None) and pooling != "latent-attention":
        raise UsageError("--latents and --heads shape the latent-attention head: add --pooling latent-attention")
    if (latents is not None and latents < 1) or (heads is not None and heads < 1):
        raise UsageError("--latents and --heads must be at least 1")
    if getattr(args, "stages", 1) == 2 and args.negatives_per_step < 1:
        raise UsageError("--stages 2 learns from hard negatives only: --negatives-per-step must be at least 1")
    options = PairOptions(mode=args.pairs, synthetic=args.synthetic, max_pairs=args.max_pairs, held_out=args.held_out,
                          negatives=args.negatives,
                          skip=args.skip, seed=args.seed)
    cfg = FineTuneConfig(epochs=args.epochs, max_steps=args.steps or -1, batch_size=args.batch_size,
                         group_size=args.negatives_per_step + 1, learning_rate=args.learning_rate,
                         temperature=getattr(args, "temperature", 0.05),
                         query_instruction=getattr(args, "query_instruction", None), seed=args.seed,
                         query_max_len=args.query_max_len, passage_max_len=args.passage_max_len,
                         pooling=pooling, stages=getattr(args, "stages", 1), latents=latents, heads=heads)
    return options, cfg


def _train(args: argparse.Namespace, kind: str) -> int:
    from arag.runtime.components import Components
    from arag.training.finetune import FineTuneError
    from arag.training.trainer import load_qrels, train_embedder, train_reranker

    settings = _settings(args)
    options, cfg = _training_options(args)
    if args.base is not None and not (Path(args.base) / "config.json").is_file():
        raise UsageError(f"--base {args.base}: not a model directory (no config.json)")
    components = Components(settings)
    if components.store.is_empty():
        raise UsageError(f"collection {settings.collection!r} is empty: run `arag ingest` first")
    try:
        if kind == "embedder":
            qrels = load_qrels(Path(args.qrels)) if args.qrels else None
            result = train_embedder(components, options, cfg, base=args.base, qrels=qrels,
                                    progress=not args.quiet, activate=not args.no_activate)
        else:
            result = train_reranker(components, options, cfg, base=args.base, eval_queries=args.eval_queries,
                                    progress=not args.quiet, activate=not args.no_activate)
    except (ValueError, FileNotFoundError) as exc:
        raise UsageError(str(exc)) from None
    except FineTuneError as exc:
        print(f"arag: error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"kind": kind, "model_dir": str(result.model_dir), "in_use": result.won,
                          "metrics": result.metrics, "seconds": result.seconds}, default=str))
    else:
        print(result.summary())
        print(f"model card: {result.model_dir / 'CARD.md'}")
    return 0


def cmd_train_embedder(args: argparse.Namespace) -> int:
    return _train(args, "embedder")


def cmd_train_reranker(args: argparse.Namespace) -> int:
    return _train(args, "reranker")


def cmd_eval(args: argparse.Namespace) -> int:
    from arag.evaluation.configs import ConfigError, load_configs, select
    from arag.evaluation.datasets import DatasetError, load_dataset
    from arag.evaluation.runner import EvalIndexes, EvalRun, RunExists, markdown_table, run_eval
    from arag.runtime.components import Components
    from graphs import build_graph

    if args.limit is not None and args.limit < 1:
        raise UsageError("--limit must be 1 or more")
    try:
        dataset = load_dataset(Path(args.dataset), split=args.split)
        configs = select(load_configs(Path(args.config_file) if args.config_file else None), args.configs)
    except (DatasetError, ConfigError) as exc:
        raise UsageError(str(exc)) from None
    settings = _settings(args)
    out_dir = Path(args.out) if args.out else Path("arag-eval") / dataset.name
    if dataset.corpus is not None:
        print(f"Indexing the {len(dataset.corpus)} documents of {dataset.name} into a collection of their own …",
              file=sys.stderr)
        indexes = EvalIndexes(settings, dataset, progress=not args.quiet)
    else:
        parts = Components(settings)
        if parts.store.is_empty():
            raise UsageError(f"{dataset.name} has no documents of its own and collection {settings.collection!r} is empty: "
                             "ingest the documents its questions are about first")
        indexes = EvalIndexes(settings, dataset, components=parts)
    run = EvalRun(out_dir, dataset, configs, args.limit, llm=settings.llm)
    try:
        summary = run_eval(run, indexes, build_graph, resume=args.resume, overwrite=args.overwrite, progress=not args.quiet,
                           answer_style=args.answer_style, retrieval_only=args.retrieval_only)
    except RunExists as exc:
        raise UsageError(str(exc)) from None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    failed = sum(r["failed"] for r in summary)
    print(f"\n{dataset.name} ({dataset.format}), {len(run.questions)} questions\n")
    print(markdown_table(summary))
    print(f"records: {out_dir / 'results.json'}\ntable:   {out_dir / 'summary.md'}\nplot:    {out_dir / 'quality_vs_cost.png'}",
          file=sys.stderr)
    if failed:
        print(f"arag: {failed} question(s) failed; their reasons are in the records", file=sys.stderr)
    return 0


def cmd_build_tree(args: argparse.Namespace) -> int:
    from arag.index.tree import build_tree
    from arag.runtime.components import Components

    settings = _settings(args)
    parts = Components(settings)
    if parts.store.is_empty():
        raise UsageError(f"collection {settings.collection!r} is empty: ingest documents first")
    report = build_tree(parts.store, parts.embedder, parts.llm, cluster_size=args.cluster_size, max_levels=args.levels,
                        progress=not args.quiet)
    print(json.dumps(report.__dict__) if args.json else report.summary())
    return 0


def _ui_script() -> Path:
    """The web app's script, wherever the ``ui`` package is installed (checkout or site-packages)."""
    import importlib.util

    # find_spec imports the light ui/__init__.py only; importing ui.app would start Streamlit.
    spec = importlib.util.find_spec("ui.app")
    if spec is None or spec.origin is None:
        raise UsageError("the web app (package 'ui') is not installed")
    return Path(spec.origin)


LOOPBACK = ("127.0.0.1", "::1", "localhost")


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from arag.runtime.components import Components
    from arag.serving.openai_api import create_app
    from arag.sessions.checkpoints import open_checkpointer, open_thread_store
    from graphs import warm_up_in_background

    api_key = args.api_key or os.environ.get("ARAG_API_KEY") or None
    if args.host not in LOOPBACK and not api_key:
        raise UsageError(f"listening on {args.host} lets other machines in: set an API key (--api-key or ARAG_API_KEY)")
    if args.queue < 0:
        raise UsageError("--queue must be 0 or more")
    settings = _settings(args)
    components = Components(settings)
    warm_up_in_background(components)  # loads while the server starts, not at the first request
    app = create_app(components, api_key=api_key, queue_size=args.queue,
                     checkpointer=open_checkpointer(settings), thread_store=open_thread_store(settings))
    print(f"arag: OpenAI-compatible API on http://{args.host}:{args.port}/v1 (models: arag-default, arag-naive, "
          f"arag-fast, arag-agentic){'; bearer key required' if api_key else ''}", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def cmd_mcp(args: argparse.Namespace) -> int:
    from arag.runtime.components import Components
    from arag.serving.mcp_server import build_server
    from graphs import warm_up_in_background

    if args.transport == "http" and args.host not in LOOPBACK:
        raise UsageError(f"the MCP server has no authentication: it listens on loopback only, not {args.host}")
    components = Components(_settings(args))
    warm_up_in_background(components)
    server = build_server(components)
    if args.transport == "stdio":
        server.run("stdio")  # stdout carries the protocol; everything else goes to stderr
    else:
        print(f"arag: MCP server (streamable HTTP) on http://{args.host}:{args.port}/mcp", file=sys.stderr)
        server.run("streamable-http", host=args.host, port=args.port)
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    app = _ui_script()
    env = dict(os.environ)
    if args.data_dir:
        env["ARAG_DATA_DIR"] = str(args.data_dir)
    if args.collection:
        env["ARAG_COLLECTION"] = args.collection
    settings = _settings(args)  # invalid settings fail here, with a clear message, not inside the page
    cmd = [sys.executable, "-m", "streamlit", "run", str(app), "--server.address", args.host, "--server.port", str(args.port),
           "--server.headless", "true", "--browser.gatherUsageStats", "false", "--client.toolbarMode", "minimal",
           # The upload box states the same size limit that ingestion enforces.
           "--server.maxUploadSize", str(max(1, math.ceil(settings.max_file_mb)))]
    print(f"arag web app on http://{args.host}:{args.port} (Ctrl+C stops it)", file=sys.stderr, flush=True)
    # Streamlit takes this process's place, so its PID is the server's and a signal reaches it directly.
    os.execve(sys.executable, cmd, env)
    return 0  # not reached


def _training_arguments(p: argparse.ArgumentParser, kind: str) -> None:
    p.add_argument("--pairs", choices=["auto", "llm", "unsupervised", "both"], default="auto",
                   help="queries written by the LLM (E5 manner), unsupervised (inverse cloze, crops, titles), or both; "
                   "auto: both")
    p.add_argument("--synthetic", type=int, default=600, metavar="N", help="passages the LLM writes a query for (default 600)")
    p.add_argument("--max-pairs", type=int, default=3000, help="training pairs kept, LLM-written ones first (default 3000)")
    p.add_argument("--held-out", type=float, default=0.1, help="share of documents held out for evaluation (default 0.1)")
    p.add_argument("--negatives", type=int, default=7, help="hard negatives mined per pair (default 7)")
    p.add_argument("--negatives-per-step", type=int, default=3 if kind == "embedder" else 7,
                   help="hard negatives each pair brings to a training step")
    p.add_argument("--skip", type=int, default=3, help="top ranks skipped when mining negatives (default 3)")
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--steps", type=int, help="stop after this many optimiser steps (default: whole epochs)")
    p.add_argument("--batch-size", type=int, default=16 if kind == "embedder" else 8)
    p.add_argument("--learning-rate", type=float, default=3e-5 if kind == "embedder" else 5e-5)
    p.add_argument("--query-max-len", type=int, default=64, help="query tokens kept in training (default 64)")
    p.add_argument("--passage-max-len", type=int, default=192, help="passage tokens kept in training (default 192)")
    p.add_argument("--base", help="start from this local model directory (default: the packaged all-MiniLM-L6-v2"
                   + (" or the embedder in use)" if kind == "embedder" else ")"))
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--no-activate", action="store_true", help="evaluate and keep the model, but do not put it in use")
    p.add_argument("--llm", help="LLM that writes the synthetic queries")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="arag",
        description="Agentic RAG over your documents, offline: ingest files, then ask questions with cited answers.",
    )
    parser.add_argument("--data-dir", type=Path, help="data directory (default .arag, or ARAG_DATA_DIR)")
    parser.add_argument("--collection", help="Chroma collection name (default 'documents')")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("ingest", help="add or update files and folders in the index",
                       description="Ingest Markdown, text, reST, HTML, PDF, Word (.docx), PowerPoint (.pptx) and JSONL "
                       "({id,title,text}) files. Unchanged files are skipped, changed files replace their chunks.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="files or folders (searched recursively)")
    p.add_argument("--prune", action="store_true",
                   help="remove chunks of files under the given folders that no longer exist or are now excluded")
    p.add_argument("--exclude", action="append", metavar="PATTERN",
                   help="leave out files and folders found inside the folders given (repeatable): a name or glob "
                   "matched at any depth ('drafts', '*.pdf'), or a path from the folder given ('archive/2019')")
    p.add_argument("--tag", action="append", metavar="NAME=VALUE",
                   help="metadata for these files that questions can filter by (repeatable), e.g. --tag team=hr")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("ask", help="answer a question from the indexed documents, with citations",
                       description="Answer a question from the index; sources are cited as [1], [2] …")
    p.add_argument("question", help="the question (quote it)")
    p.add_argument("--json", action="store_true", help="print one JSON object: answer, citations, trace, llm_calls")
    p.add_argument("--thread", help="conversation id: follow-up questions see earlier turns of this thread")
    p.add_argument("--llm", help="LLM provider string, e.g. llamacpp:local-0.5b or openai:gpt-4o-mini")
    p.add_argument("--top-k", type=int, dest="top_k", help="chunks given to the model")
    p.add_argument("--profile", choices=["naive", "fast", "agentic"],
                   help="technique set: naive (retrieve+generate), fast (default settings), "
                   "agentic (default + LLM query transforms for the extra search, and reflection)")
    p.add_argument("--source", action="append", metavar="FILE",
                   help="search or read only this ingested document (repeat for several)")
    p.add_argument("--long-context", action="store_true",
                   help="no search: the model reads the documents in scope (--source, else all) up to its window")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("demo", help="ingest the bundled sample corpus and answer a sample question",
                       description="Ingest the bundled Python tutorial pages into the 'demo' collection and answer a question.")
    p.add_argument("question", nargs="?", help=f"question to ask (default: {DEMO_QUESTION!r})")
    p.add_argument("--llm", help="LLM provider string")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("graph", help="draw the graph (Mermaid, DOT, PNG or SVG), optionally with a run's path",
                       description="Draw the RAG graph offline. With --trace, the path an `arag ask --json` run took is highlighted.")
    p.add_argument("--format", choices=["mermaid", "dot", "png", "svg"], default="mermaid")
    p.add_argument("--out", help="output file (required for png/svg)")
    p.add_argument("--trace", help="a file holding the output of `arag ask --json`, whose path is highlighted")
    p.set_defaults(func=cmd_graph)

    p = sub.add_parser("train-embedder", help="fine-tune the embedding model on the indexed documents",
                       description="Make training pairs from the indexed chunks, mine hard negatives, fine-tune with "
                       "FlagEmbedding (mean pooling, one stage) or arag's own loop (latent-attention pooling or two "
                       "stages, as NV-Embed), and re-embed the collection with the new model if it retrieves better on "
                       "held-out pairs. Running it again after an interruption resumes.")
    _training_arguments(p, "embedder")
    p.add_argument("--temperature", type=float, default=0.05, help="InfoNCE temperature (default 0.05)")
    p.add_argument("--query-instruction", help="text put before every query, in training and at search time (with "
                   "latent-attention or two stages, default NV-Embed's \"Instruct: …\\nQuery: \")")
    p.add_argument("--pooling", choices=["mean", "latent-attention"], default="mean",
                   help="mean of the encoder's last hidden states (default), or a trained latent-attention head (NV-Embed)")
    p.add_argument("--stages", type=int, choices=[1, 2], default=1,
                   help="1: retrieval pairs (default); 2: then a blend with same-document and title-to-section tasks "
                   "made from the collection, hard negatives only (NV-Embed); the steps are shared, half each")
    p.add_argument("--latents", type=int, help="latent-attention: latents the tokens attend to (default 64)")
    p.add_argument("--heads", type=int, help="latent-attention: attention heads, dividing the hidden size (default 8)")
    p.add_argument("--qrels", help="extra evaluation: JSONL lines {\"query\": ..., \"relevant\": [chunk ids, sources or titles]}")
    p.set_defaults(func=cmd_train_embedder)

    p = sub.add_parser("train-reranker", help="fine-tune a cross-encoder reranker on the indexed documents",
                       description="Make training pairs from the indexed chunks, mine hard negatives, fine-tune a "
                       "cross-encoder with FlagEmbedding, calibrate its scores, and use it for grading and reranking if it "
                       "ranks held-out pairs better than the scorer in use.")
    _training_arguments(p, "reranker")
    p.add_argument("--eval-queries", type=int, default=150, help="held-out queries whose candidates are reranked (default 150)")
    p.set_defaults(func=cmd_train_reranker)

    p = sub.add_parser("eval", help="measure answer quality, retrieval quality, cost and speed of configurations",
                       description="Run named configurations over the same questions and compare them: EM/F1, citation "
                       "support, recall and nDCG of the first retrieval and of the final context, LLM calls, tokens, "
                       "seconds and memory. Reads HotpotQA/IRCoT JSONL, FlashRAG QA JSONL (asked of the ingested "
                       "collection) and BEIR folders. Writes results.json, summary.md and quality_vs_cost.png.")
    p.add_argument("--dataset", required=True, help="a JSONL file or a BEIR folder")
    p.add_argument("--configs", default="naive,fast,agentic", help="comma-separated configuration names (default naive,fast,agentic)")
    p.add_argument("--config-file", help="TOML file of named configurations (default: evaluation/configs.toml)")
    p.add_argument("--limit", type=int, help="the first N questions only")
    p.add_argument("--split", help="BEIR qrels split (default test)")
    p.add_argument("--out", help="output folder (default arag-eval/<dataset name>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out where it stopped")
    p.add_argument("--overwrite", action="store_true", help="replace the run in --out")
    p.add_argument("--llm", help="LLM for configurations that do not name one")
    p.add_argument("--answer-style", choices=["dataset", "auto", "short", "sentence"], default="dataset",
                   help="short answer phrases (graded by EM/F1), cited sentences, or auto (a phrase where the question "
                   "asks for a name, place, time or number, else a sentence); dataset: short when the dataset has gold "
                   "answers, else the ARAG_ANSWER_STYLE setting")
    p.add_argument("--retrieval-only", action="store_true",
                   help="stop each configuration at its final context: no answer-writing LLM call, retrieval columns only")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("build-tree", help="summarise the collection into a tree of summaries (RAPTOR)",
                       description="Cluster the chunks by embedding and let the LLM summarise each cluster, then the "
                       "summaries, up to --levels. Summaries are searched with the chunks (ARAG_TREE_SEARCH). Running it "
                       "again after ingesting more documents summarises only the clusters that changed.")
    p.add_argument("--cluster-size", type=int, default=6, help="passages per summary, about (default 6)")
    p.add_argument("--levels", type=int, default=3, help="most levels of summaries (default 3)")
    p.add_argument("--llm", help="LLM that writes the summaries")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_build_tree)

    p = sub.add_parser("ui", help="start the web app (chat, graph, knowledge base) on 127.0.0.1",
                       description="Serve the Streamlit web app. It listens on 127.0.0.1 unless --host says otherwise.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8501)
    p.set_defaults(func=cmd_ui)

    p = sub.add_parser("serve", help="serve the graph as an OpenAI-compatible chat API on 127.0.0.1",
                       description="Serve /v1/chat/completions (streamed or not), /v1/models (the profiles as models) "
                       "and /health. One question runs on the local model at a time; up to --queue more wait, "
                       "later ones get 429 with Retry-After. A thread is named by the request's 'user' field or the "
                       "X-Arag-Thread header.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; any other needs a key)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--api-key", help="bearer key clients must send (default: $ARAG_API_KEY; none on loopback)")
    p.add_argument("--queue", type=int, default=16, help="requests that may wait for the model (default 16)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("mcp", help="serve the documents to MCP clients (stdio, or streamable HTTP on 127.0.0.1)",
                       description="A Model Context Protocol server: tools search_documents(query, k) and "
                       "ask(question, profile), and every ingested file as a resource. Over stdio by default (the "
                       "client starts this command); --transport http serves http://127.0.0.1:PORT/mcp.")
    p.add_argument("--transport", choices=["stdio", "http"], default="stdio")
    p.add_argument("--host", default="127.0.0.1", help="address for --transport http (loopback only)")
    p.add_argument("--port", type=int, default=8001)
    p.set_defaults(func=cmd_mcp)

    p = sub.add_parser("models", help="list the local LLM and embedding presets; --prepare assembles and verifies them",
                       description="List local GGUF and embedding-model presets and whether they are ready in the models "
                       "directory that every data directory shares (ARAG_MODELS_DIR, default "
                       "$XDG_CACHE_HOME/arag/models or ~/.cache/arag/models).")
    p.add_argument("--prepare", nargs="*", metavar="PRESET", help="assemble and verify these presets")
    p.set_defaults(func=cmd_models)
    return parser


def main(argv: list[str] | None = None) -> int:
    apply_offline_environment()
    parser = build_parser()
    args = parser.parse_args(argv)
    from arag.embeddings.embedder import EmbeddingModelError
    from arag.embeddings.presets import EmbedderUnavailable
    from arag.index.store import IndexMismatch
    from arag.ingestion.loaders import IngestError
    from arag.llms.gguf import ModelUnavailable

    try:
        return args.func(args)
    except UsageError as exc:
        print(f"arag: error: {exc}", file=sys.stderr)
        return 2
    except (ModelUnavailable, EmbeddingModelError, EmbedderUnavailable, IndexMismatch, IngestError) as exc:
        print(f"arag: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("arag: interrupted", file=sys.stderr)
        return 130


def run() -> int:
    """The ``arag`` program (its console script and ``python -m arag``): :func:`main` on ``sys.argv``.

    What is left when a command ends lives until the process ends, and the interpreter's shutdown
    would walk all of it again in its last garbage collections: the loaded models, Chroma, the
    tokenizers and every imported module, about half a second of a cold ``arag ask`` on 2 cores.
    Freezing moves those objects out of the collector's sight; atexit handlers (the LLM's close,
    logging's flush) still run and every file the commands wrote is already closed. Kept out of
    :func:`main`, which tests and embedding programs call in a process that goes on.
    """
    code = main()
    gc.freeze()
    return code


if __name__ == "__main__":
    sys.exit(run())
