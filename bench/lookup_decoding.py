"""Prompt-lookup decoding against llama.cpp's own generation, on the answer prompts of the sample corpus.

Run: ``.venv/bin/python bench/lookup_decoding.py [--preset local-1.5b] [--drafts 0,2,3,5,10] [--reps 2]``
Writes ``bench/results/lookup_decoding.json`` and prints a Markdown table.

Speculative decoding without a draft model: the tokens that followed the latest earlier occurrence
of the reply's last words in the prompt are guessed as its next ones (an answer that quotes its
sources repeats them), and the model checks several guesses in one forward pass.

The 10 questions of ``bench/ask_latency.py`` go through the shipped graph once (sample corpus,
``fast`` profile), and each answer call's messages are kept. Then, for each of those prompts and
each setting, interleaved and repeated, the reply is generated with the prompt already in the KV
cache (only generation is timed): by llama.cpp's own completion (the reference), and by this
script's greedy loop verifying up to N guessed tokens a pass (0: one token a pass, no guesses).
Reported per setting: generation tokens/s, its ratio to llama.cpp's in the same run, forward
passes per token, and how many replies are identical to llama.cpp's. They need not all be:
llama.cpp's kernels round differently for batches of different sizes, so a pass over several
tokens, or a prompt token read in another batch split, can flip a near-tie.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ask_latency import QUESTIONS  # noqa: E402
from hotpotqa import REPO, machine, print_table  # noqa: E402

from arag.llms.llamacpp import _evaluate_after_shared_prefix as evaluate_after_shared_prefix  # noqa: E402


def lookup_draft(context: np.ndarray, count: int, longest_ngram: int = 3) -> np.ndarray:
    """Up to ``count`` tokens that followed the latest earlier occurrence of ``context``'s last n-gram.

    Tries n-grams of ``longest_ngram`` tokens down to one; empty when none recurs. An answer that
    quotes its sources continues as the source did, so these tokens are a cheap guess at its next ones.

    Example:
        >>> lookup_draft(np.array([5, 6, 7, 8, 9, 1, 5, 6]), 2).tolist()
        [7, 8]
    """
    for n in range(min(longest_ngram, len(context) - 1), 0, -1):
        # Windows that start before the tail itself, so at least one token follows each match.
        windows = np.lib.stride_tricks.sliding_window_view(context[:-1], n)
        hits = np.flatnonzero((windows == context[-n:]).all(axis=1))
        if hits.size:
            start = int(hits[-1]) + n
            return context[start : start + count]
    return context[:0]


def _greedy_continuation(llama: Any, prompt: list[int], max_tokens: int, lookup: int) -> Iterator[int]:
    """The tokens greedy decoding writes after ``prompt`` (end of generation excluded), verifying up to
    ``lookup`` drafted tokens (:func:`lookup_draft`) in each forward pass.

    A draft token is kept only where it is the argmax the model gives after the tokens before it, so
    in exact arithmetic the output is greedy decoding's and only the number of passes changes. The KV
    cache of rejected drafts is dropped before the next pass.
    """
    import llama_cpp

    vocab, n_vocab = llama._model.vocab, llama.n_vocab()
    evaluate_after_shared_prefix(llama, prompt)
    # The last evaluated batch asked for the logits of its last token only: the prompt's last.
    next_token = int(np.argmax(np.ctypeslib.as_array(llama._ctx.get_logits(), shape=(n_vocab,))))
    context = list(prompt)
    limit = min(max_tokens, llama.n_ctx() - len(prompt) - 1)
    while True:
        if llama_cpp.llama_vocab_is_eog(vocab, next_token):
            return
        yield next_token
        context.append(next_token)
        if len(context) - len(prompt) >= limit:
            return
        room = min(lookup, limit - (len(context) - len(prompt)), llama.n_ctx() - llama.n_tokens - 2)
        draft = [int(t) for t in lookup_draft(np.asarray(context, dtype=np.intc), room)] if room > 0 else []
        batch = [next_token, *draft]
        n_past = llama.n_tokens
        llama._ctx.kv_cache_seq_rm(-1, n_past, -1)
        llama._batch.set_batch(batch=batch, n_past=n_past, logits_all=True)
        llama._ctx.decode(llama._batch)
        llama.input_ids[n_past : n_past + len(batch)] = batch
        predicted = np.ctypeslib.as_array(llama._ctx.get_logits(), shape=(len(batch), n_vocab)).argmax(axis=1)
        accepted = 0
        while accepted < len(draft) and int(predicted[accepted]) == draft[accepted]:
            token = draft[accepted]
            accepted += 1
            if llama_cpp.llama_vocab_is_eog(vocab, token):
                llama.n_tokens = n_past + 1 + accepted
                return
            yield token
            context.append(token)
            if len(context) - len(prompt) >= limit:
                llama.n_tokens = n_past + 1 + accepted
                return
        llama.n_tokens = n_past + 1 + accepted
        llama._ctx.kv_cache_seq_rm(-1, llama.n_tokens, -1)
        next_token = int(predicted[accepted])


def answer_prompts(preset: str, data_dir: Path, models_dir: Path | None) -> tuple[list, object]:
    """The messages of each answer call the shipped graph makes for QUESTIONS, and its chat model."""
    from arag.ingestion.ingest import Ingestor
    from arag.llms.llamacpp import LlamaCppChat
    from arag.runtime.components import Components
    from arag.settings import Settings
    from graphs import build_graph

    shutil.rmtree(data_dir, ignore_errors=True)
    settings = Settings(data_dir=data_dir, models_dir=models_dir, llm=f"llamacpp:{preset}").for_run(
        {"configurable": {"profile": "fast"}}
    )
    ingestor = Ingestor.from_settings(settings)
    ingestor.ingest([REPO / "arag" / "samples"], progress=False)
    components = Components(settings, embedder=ingestor.embedder, store=ingestor.store)
    graph = build_graph(components=components)
    prompts: list = []
    for method in ("_generate", "_stream"):
        original = getattr(LlamaCppChat, method)

        def recording(self, messages, *args, _original=original, **kwargs):
            prompts.append(list(messages))
            return _original(self, messages, *args, **kwargs)

        setattr(LlamaCppChat, method, recording)
    for question in QUESTIONS:
        graph.invoke({"question": question})
    return prompts, components.llm


def timed_reply(chat, llama, messages, drafts: int | None, passes: list[int]) -> tuple[str, int, float]:
    """(reply, tokens, generation seconds) with the prompt already read; ``drafts`` None: llama.cpp's own."""
    prompt = chat._prompt_tokens(llama, messages, reply_follows=True)
    evaluate_after_shared_prefix(llama, prompt[:-1])  # all but the last token: the timed call evaluates one
    decode = llama._ctx.decode
    llama._ctx.decode = lambda batch: (passes.append(1), decode(batch))[1]
    try:
        started = time.perf_counter()
        if drafts is None:
            out = llama.create_chat_completion(**chat._request(messages, None, {}))
            text, tokens = out["choices"][0]["message"]["content"] or "", out["usage"]["completion_tokens"]
        else:
            ids = list(_greedy_continuation(llama, prompt, chat.max_tokens, drafts))
            text, tokens = llama.detokenize(ids, prev_tokens=prompt).decode("utf-8", errors="ignore"), len(ids)
        return text.strip(), tokens, time.perf_counter() - started
    finally:
        llama._ctx.decode = decode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="local-1.5b")
    parser.add_argument("--drafts", default="0,2,3,5,10", help="drafted tokens per pass to compare")
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--models-dir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "lookup_decoding.json")
    args = parser.parse_args()
    settings_list: list[int | None] = [None, *(int(n) for n in args.drafts.split(","))]
    with tempfile.TemporaryDirectory() as tmp:
        prompts, chat = answer_prompts(args.preset, Path(tmp) / "data", args.models_dir)
        llama, lock = chat._llama()
        seconds = {s: 0.0 for s in settings_list}
        tokens = {s: 0 for s in settings_list}
        passes: dict = {s: [] for s in settings_list}
        replies: dict = {s: [] for s in settings_list}
        with lock:
            for rep in range(args.reps):
                for messages in prompts:
                    for drafts in settings_list:
                        text, n, secs = timed_reply(chat, llama, messages, drafts, passes[drafts])
                        seconds[drafts] += secs
                        tokens[drafts] += n
                        if rep == 0:
                            replies[drafts].append(text)
    reference_rate = tokens[None] / seconds[None]
    rows = []
    for drafts in settings_list:
        rate = tokens[drafts] / seconds[drafts]
        rows.append({
            "decoding": "llama.cpp's own" if drafts is None else f"lookup, {drafts} guessed a pass",
            "drafted_tokens": drafts,
            "replies": len(replies[drafts]),
            "generated_tokens_per_s": round(rate, 2),
            "vs_llama_cpp": round(rate / reference_rate, 3),
            "passes_per_token": round(len(passes[drafts]) / tokens[drafts], 3),
            "identical_to_llama_cpp": sum(a == b for a, b in zip(replies[drafts], replies[None])),
            "mean_reply_tokens": round(tokens[drafts] / (args.reps * len(prompts)), 1),
        })
    result = {"machine": machine(), "date": time.strftime("%Y-%m-%d"), "preset": args.preset, "reps": args.reps,
              "prompts": len(prompts), "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print("Machine:", result["machine"])
    columns = ["decoding", "generated_tokens_per_s", "vs_llama_cpp", "passes_per_token", "identical_to_llama_cpp",
               "replies", "mean_reply_tokens"]
    print_table(columns, [[row[c] for c in columns] for row in rows])
    print("median prompt tokens:", statistics.median(len(chat._prompt_tokens(llama, m, True)) for m in prompts))


if __name__ == "__main__":
    main()
