"""What `arag serve` adds to a question: the API's latency over a direct graph call, and time to first token.

The sample corpus (the 7 tutorial pages) is indexed in a temporary folder; the tutorial
questions of ``bench/tutorial_qa.py`` are asked, each once directly (``graph.invoke``, as a
library user would) and once through the API with the official ``openai`` client over HTTP
on 127.0.0.1, streamed and not, in turn. The chat model answers with a fixed sentence, a word
a token and no delay, so what is measured is the graph's own work (retrieval, scoring) plus
what the API adds. With ``--llm`` a real model answers; llama.cpp then reuses the prompt it has
just read when the same question comes the second and third way, so those ways look faster:
only the scripted model measures the API's overhead.

    python bench/api_latency.py                          # scripted model: the API's overhead
    python bench/api_latency.py --llm llamacpp:local-1.5b --rounds 1 --limit 5   # a real model (see above)

Prints a Markdown table and writes ``bench/results/api_latency-<model>.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from arag.environment import apply_offline_environment

apply_offline_environment()

import openai  # noqa: E402 - after the offline environment
import uvicorn  # noqa: E402
from langchain_core.language_models import BaseChatModel  # noqa: E402
from langchain_core.messages import AIMessage, AIMessageChunk  # noqa: E402
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult  # noqa: E402

from arag.evaluation.runner import machine  # noqa: E402
from arag.ingestion.ingest import Ingestor  # noqa: E402
from arag.runtime.components import Components  # noqa: E402
from arag.serving.openai_api import create_app  # noqa: E402
from arag.settings import Settings  # noqa: E402
from graphs import build_graph  # noqa: E402

SAMPLES = Path(__file__).resolve().parent.parent / "arag" / "samples" / "python-tutorial"
sys.path.insert(0, str(Path(__file__).resolve().parent))
from tutorial_qa import QUESTIONS  # noqa: E402


class SentenceModel(BaseChatModel):
    """Answers one fixed cited sentence, a word a token, at once."""

    @property
    def _llm_type(self) -> str:
        return "sentence"

    def _generate(self, messages, stop=None, run_manager=None, **kwargs) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content="It is in the tutorial pages [1]."))])

    def _stream(self, messages, stop=None, run_manager=None, **kwargs):
        for i, word in enumerate("It is in the tutorial pages [1].".split()):
            piece = word if i == 0 else f" {word}"
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=piece))
            if run_manager:
                run_manager.on_llm_new_token(piece, chunk=chunk)
            yield chunk


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--llm", help="a provider string (default: a scripted model, to isolate the API's overhead)")
    parser.add_argument("--rounds", type=int, default=3, help="times each question is asked each way")
    parser.add_argument("--limit", type=int, help="ask only the first LIMIT questions")
    parser.add_argument("--out", type=Path, help="default bench/results/api_latency-<model>.json")
    args = parser.parse_args(argv)
    args.out = args.out or Path(f"bench/results/api_latency-{(args.llm or 'scripted').replace(':', '-')}.json")
    folder = Path(tempfile.mkdtemp(prefix="arag-api-"))
    settings = Settings(data_dir=folder, **({"llm": args.llm} if args.llm else {}))
    ingestor = Ingestor.from_settings(settings)
    ingestor.ingest([SAMPLES], progress=False)
    components = Components(settings, llm=None if args.llm else SentenceModel(), embedder=ingestor.embedder,
                            store=ingestor.store)
    graph = build_graph(components=components)
    server = uvicorn.Server(uvicorn.Config(create_app(components, queue_size=4), host="127.0.0.1", port=0,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0, timeout=600)
    questions = [question for question, _, _ in QUESTIONS][: args.limit]
    direct, whole, first_token, streamed = [], [], [], []
    try:
        for _ in range(args.rounds):
            for question in questions:
                started = time.perf_counter()
                graph.invoke({"question": question}, {"configurable": {"answer_style": "sentence"}})
                direct.append(time.perf_counter() - started)
                started = time.perf_counter()
                client.chat.completions.create(model="arag-default", messages=[{"role": "user", "content": question}])
                whole.append(time.perf_counter() - started)
                started = time.perf_counter()
                first = None
                for chunk in client.chat.completions.create(model="arag-default", stream=True,
                                                            messages=[{"role": "user", "content": question}]):
                    if first is None and chunk.choices and chunk.choices[0].delta.content:
                        first = time.perf_counter() - started
                streamed.append(time.perf_counter() - started)
                first_token.append(first if first is not None else streamed[-1])
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    added = [w - d for w, d in zip(whole, direct)]
    rows = {"direct graph call s": direct, "API, whole answer s": whole, "API added s (whole - direct)": added,
            "API, first streamed token s": first_token, "API, streamed to the end s": streamed}
    summary = {name: {"median": round(statistics.median(v), 4), "p95": round(percentile(v, 0.95), 4)}
               for name, v in rows.items()}
    result = {"date": time.strftime("%Y-%m-%d"), "machine": machine(), "llm": args.llm or "scripted (no delay)",
              "questions": len(questions), "rounds": args.rounds, "summary": summary}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"| {result['llm']}, {len(direct)} questions | median s | p95 s |\n|---|---|---|")
    for name, row in summary.items():
        print(f"| {name} | {row['median']:.3f} | {row['p95']:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
