"""Context compression: keep the sentences of each chunk that bear on the question, with no LLM call.

Small models read slowly (about 125 prompt tokens a second for the default 1.5B on two cores,
`bench/llm_throughput.py`) and lose facts in the middle of long contexts. Before generation, each chunk is cut down to
its sentences most related to the question: each sentence is scored by the cosine of its
embedding with the question's plus the share of the question's content words it contains,
and a sentence is kept when it scores at least ``keep`` of the chunk's best sentence (the best
is always kept). Sentences stay in their original order; a chunk of one or two sentences is
left whole.

Example:
    >>> class Bag:  # a stand-in encoder: one dimension per word of a tiny vocabulary
    ...     vocab = ["ferry", "leaves", "morning", "harbour", "gulls"]
    ...     def embed_queries(self, texts):
    ...         return self.embed_documents(texts)
    ...     def embed_documents(self, texts, progress=False):
    ...         import numpy as np
    ...         m = np.array([[float(w in t.lower()) for w in self.vocab] for t in texts]) + 1e-6
    ...         return m / np.linalg.norm(m, axis=1, keepdims=True)
    >>> doc = {"text": "The ferry leaves at 7:15 each morning. Gulls nest on the harbour wall. The harbour was dredged in 1950."}
    >>> compress_documents("When does the ferry leave in the morning?", [doc], Bag())[0][0]["text"]
    'The ferry leaves at 7:15 each morning.'
"""

from __future__ import annotations

import numpy as np

from arag.text import content_words, split_sentences

#: A sentence is kept when it scores at least this share of its chunk's best sentence.
DEFAULT_KEEP = 0.75


def _sentences(text: str) -> list[str]:
    return [s for s in split_sentences(text)[::2] if s.strip()]


def compress_documents(question: str, documents: list[dict], embedder, keep: float = DEFAULT_KEEP,
                       count_tokens=None) -> tuple[list[dict], dict]:
    """(copies of ``documents`` with ``text`` cut to their relevant sentences, stats for the trace).

    The full text stays in ``full_text``; ``count_tokens`` (default: words) measures the saving.
    """
    count = count_tokens or (lambda t: len(t.split()))
    split = [_sentences(d["text"]) for d in documents]
    flat = [s for sentences in split for s in sentences]
    if not flat:
        return [dict(d) for d in documents], {"tokens_before": 0, "tokens_after": 0}
    q_vec = embedder.embed_queries([question])[0]
    s_vecs = embedder.embed_documents(flat)
    q_words = content_words(question) or {""}
    scores = s_vecs @ q_vec + np.array([len(content_words(s) & q_words) / len(q_words) for s in flat])
    out, before, after, at = [], 0, 0, 0
    for doc, sentences in zip(documents, split):
        mine = scores[at : at + len(sentences)]
        at += len(sentences)
        before += count(doc["text"])
        if len(sentences) <= 2:
            out.append(dict(doc))
            after += count(doc["text"])
            continue
        best = float(mine.max())
        kept = [s for s, score in zip(sentences, mine) if score >= keep * best or score == best]
        text = " ".join(kept)
        after += count(text)
        out.append({**doc, "text": text, "full_text": doc["text"]})
    return out, {"tokens_before": before, "tokens_after": after,
                 "saved": round(1 - after / before, 3) if before else 0.0}
