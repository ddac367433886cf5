"""Self-RAG reflection: is the answer grounded in its sources, and does it answer the question?

Both checks are cheap scores, not LLM calls (the local models judge support near chance):
grounding is the share of the answer's content words, beyond those of the question, that
appear in the sources it cites; usefulness fails on refusals and empty answers. The node
also keeps the best answer seen so far and picks the next step; every loop is bounded by
``max_regenerations`` and ``max_retries``, after which the best answer is returned with a
note.
"""

from __future__ import annotations

import re
import time

from langchain_core.runnables import RunnableConfig

from components import Components
from graphs.state import RAGState
from nodes.generate import NO_SOURCES_ANSWER, content_words, strip_citations
from nodes.rewrite_question import can_search_again
from nodes.tracing import trace_event

#: Least share of the answer's new content words found in its sources to count as grounded.
GROUNDED_MIN_SUPPORT = 0.6

_REFUSAL = re.compile(
    r"\b(don'?t know|do not know|cannot answer|can'?t answer|not (mentioned|stated|provided|specified)|"
    r"no information|unknown|unable to (answer|find)|could not (answer|write)|not enough information)\b",
    re.IGNORECASE,
)


def support(answer: str, question: str, sources: list[dict]) -> float:
    """Share of the answer's content words (not already in the question) found in the sources."""
    # "yes" answers a comparison; it is a verdict on the sources, not a word they must contain.
    words = content_words(strip_citations(answer)) - content_words(question) - {"yes"}
    if not words:
        return 1.0
    vocab: set[str] = set()
    for doc in sources:
        vocab |= content_words(f"{doc.get('title', '')} {doc['text']}")
    return round(len(words & vocab) / len(words), 3)


def is_useful(answer: str) -> bool:
    return bool(answer.strip()) and answer != NO_SOURCES_ANSWER and not _REFUSAL.search(answer)


def reflect(state: RAGState, config: RunnableConfig, *, components: Components) -> dict:
    """Judge the answer, remember the best one so far, and choose: finish, regenerate or search again."""
    started = time.perf_counter()
    settings = components.settings.for_run(config)
    if not settings.reflect or state.get("route") == "direct":
        why = "reflection off" if not settings.reflect else "direct answer: no sources to check"
        skipped = {"verdict": "skipped", "reason": why, "next": "finish"}
        return {"reflection": skipped, "trace": [trace_event("reflect", started, **skipped)]}
    answer = state.get("answer", "")
    question = state["standalone_question"]
    documents = state.get("documents") or []
    cited = state.get("citations") or []
    grounding = support(answer, question, cited or documents) if documents else 0.0
    useful = is_useful(answer)
    grounded = bool(documents) and grounding >= GROUNDED_MIN_SUPPORT
    verdict = "ok" if grounded and useful else ("not useful" if not useful else "ungrounded")
    quality = (useful, grounded, grounding)
    best = state.get("best") or {}
    if not best or quality > tuple(best["quality"]):
        best = {
            "quality": list(quality), "answer": answer, "citations": cited, "documents": documents,
        }
    if verdict == "ok":
        next_step = "finish"
    elif verdict == "ungrounded" and state.get("generations", 0) <= settings.max_regenerations:
        next_step = "regenerate"
    elif verdict == "not useful" and state.get("route") != "direct" and can_search_again(state, settings):
        next_step = "search_again"
    else:
        next_step = "finish"
    reflection = {"verdict": verdict, "support": grounding, "useful": useful, "next": next_step}
    return {"reflection": reflection, "best": best, "trace": [trace_event("reflect", started, **reflection)]}
