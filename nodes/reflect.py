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

from arag.relevance.grounding import GROUNDED_MIN_SUPPORT, support
from arag.runtime.frame import Run, node
from arag.runtime.loops import can_search_again
from arag.runtime.state import BestAnswer, RAGState, Reflection
from arag.text import NO_SOURCES_ANSWER

_REFUSAL = re.compile(
    r"\b(don'?t know|do not know|cannot answer|can'?t answer|not (mentioned|stated|provided|specified)|"
    r"no information|unknown|unable to (answer|find)|could not (answer|write)|not enough information)\b",
    re.IGNORECASE,
)


def is_useful(answer: str) -> bool:
    return bool(answer.strip()) and answer != NO_SOURCES_ANSWER and not _REFUSAL.search(answer)


@node("reflect")
def reflect(state: RAGState, run: Run) -> dict:
    """Judge the answer, remember the best one so far, and choose: finish, regenerate or search again."""
    settings = run.settings
    if not settings.reflect or not settings.write_answer or state.get("route") == "direct":
        why = ("reflection off" if not settings.reflect else "retrieval only: no answer to check" if not settings.write_answer
               else "direct answer: no sources to check")
        skipped: Reflection = {"verdict": "skipped", "reason": why, "next": "finish"}
        run.trace(**skipped)
        return {"reflection": skipped}
    answer = state.get("answer", "")
    question = state["standalone_question"]
    documents = state.get("documents") or []
    cited = state.get("citations") or []
    grounding = support(answer, question, cited or documents) if documents else 0.0
    useful = is_useful(answer)
    grounded = bool(documents) and grounding >= GROUNDED_MIN_SUPPORT
    verdict = "ok" if grounded and useful else ("not useful" if not useful else "ungrounded")
    quality = (useful, grounded, grounding)
    best: BestAnswer = state.get("best") or {}
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
    reflection: Reflection = {"verdict": verdict, "support": grounding, "useful": useful, "next": next_step}
    run.trace(**reflection)
    return {"reflection": reflection, "best": best}
