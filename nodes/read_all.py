"""Read instead of search: every chunk in scope goes to the model, up to its context window.

The long-context alternative to retrieval ("why still RAG when models read 32k tokens?"). The
scope is the documents ``sources`` names, in that order, else the whole collection in ingest
order; chunks are taken in that order until the window is full (``llm_context_tokens``, less
room for the instructions, the question and the answer), and the rest are left out with a note.
No grading, reranking or second search: the model finds the answer itself. Costs one LLM call
whose prompt grows with the documents; the README's haystack table says what that buys.
"""

from __future__ import annotations

from arag.runtime.frame import Run, node
from arag.runtime.state import RAGState
from arag.text import within_budget

#: Tokens kept free of documents: instructions, the question and source labels.
PROMPT_ROOM = 400
#: Qwen2.5's tokens per embedding-model token, when the chat model cannot count its own: the pooled
#: HotpotQA and 2Wiki paragraphs take 1.14 times as many (95th percentile of one paragraph: 1.42).
TOKENS_PER_EMBEDDING_TOKEN = 1.25


@node("read_all")
def read_all(state: RAGState, run: Run) -> dict:
    """The documents in scope, in order, as many as the model's window holds."""
    settings = run.settings
    chunks, error = run.components.read_scope(settings)
    budget = settings.llm_context_tokens - settings.answer_max_tokens - PROMPT_ROOM
    count = token_counter(run)
    kept, used = within_budget(chunks, lambda chunk: count(f"{chunk['title']}\n{chunk['text']}"), budget)
    run.trace(in_scope=len(chunks), read=len(kept), tokens=used, budget=budget,
              sources=len({c["source"] for c in kept}), **({"error": error} if error else {}))
    notes = [f"the documents in scope hold more than the model's window: {len(chunks) - len(kept)} of "
             f"{len(chunks)} chunks left out (long-context mode reads in order until {budget} tokens)"] \
        if len(kept) < len(chunks) else []
    if error:
        notes.append(f"the document index could not be read: {error}")
    return {"candidates": chunks, "documents": kept, "notes": notes}


def token_counter(run: Run):
    """Counts prompt tokens as the chat model will: its own tokenizer where it has one, else the
    embedding model's count scaled to Qwen's.
    """
    own = getattr(run.llm, "count_tokens", None)
    if callable(own):
        return own
    embedder = run.components.embedder
    return lambda text: int(embedder.count_tokens(text) * TOKENS_PER_EMBEDDING_TOKEN) + 1
