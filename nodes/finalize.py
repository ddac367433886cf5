"""End of a turn: settle on the best answer, note any doubt, and add the turn to the thread."""

from __future__ import annotations

from arag.runtime.frame import Run, node
from arag.runtime.state import RAGState


@node("finalize")
def finalize(state: RAGState, run: Run) -> dict:
    """Return the best answer of the turn; an answer reflection did not accept gets a note."""
    reflection = state.get("reflection") or {}
    best = state.get("best") or {}
    update: dict = {}
    notes: list[str] = []
    if best and best["answer"] != state.get("answer"):
        update.update(answer=best["answer"], citations=best["citations"], documents=best["documents"])
        notes.append("an earlier attempt was kept: later ones were less grounded")
    answer = update.get("answer", state.get("answer", ""))
    verdict = reflection.get("verdict")
    if verdict == "ungrounded" and best.get("quality", [False, False])[1] is False:
        notes.append(f"parts of this answer may not be supported by its sources (support {reflection['support']:.0%})")
    elif verdict == "not useful" and state.get("documents"):
        notes.append("the sources found may not contain the answer")
    run.trace(verdict=verdict, notes=notes)
    return {**update, "notes": notes, "history": [{"question": state["question"], "answer": answer}]}
