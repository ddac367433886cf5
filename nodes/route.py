"""Route a question: to the document index, to the web, to a registered table (text-to-SQL), or
straight to an answer, and say whether it is complex enough to decompose.

A question about a table ingested from a CSV or SQLite file (it names the table and asks for a
count, sum or ranking, or names two of its columns) goes to ``text_to_sql`` before any other rule.

By default cheap rules decide (no LLM call): greetings and thanks need no retrieval,
questions about current events go to the web when a web search key is set, and
multi-hop shapes (a relative clause that hides a bridge entity, a comparison of two
things) are marked complex. With ``router="llm"`` one structured LLM call decides, and
the rules are its fallback when the model's output is unusable.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, Field

from arag.llms.structured import ask_json
from arag.retrieval.web import unavailable_reason
from arag.runtime.frame import Run, node
from arag.runtime.state import RAGState
from arag.tables.catalog import tables_asked_about

PROMPT = """Decide how to answer the user's question.
route: "index" if it should be answered from the user's documents, "web" if it needs current
information from the internet (news, prices, today's events), "direct" if it is small talk that
needs no sources.
complex: true if answering needs two or more facts found separately (for example about an
entity that the question only describes, or a comparison of two things).
Question: {question}"""


class RouteDecision(BaseModel):
    route: Literal["index", "web", "direct"]
    complex: bool
    reason: str = Field("", max_length=120)


_SMALL_TALK = re.compile(
    r"^\s*(hi|hello|hey|thanks|thank you|good (morning|afternoon|evening)|bye|goodbye|ok|okay|cheers)\b[\s!.,]*"
    r"(there|a lot|so much|again)?[\s!.]*$",
    re.IGNORECASE,
)
_CURRENT = re.compile(
    r"\b(today|tonight|yesterday|this (week|month|year)|latest|breaking|current(ly)?|right now|news|"
    r"stock price|weather|forecast|score of)\b",
    re.IGNORECASE,
)
_COMPARISON = re.compile(
    r"\b(both|same|older|younger|earlier|later|first|larger|smaller|bigger|taller|longer|shorter|more|less|"
    r"fewer|higher|lower|either|neither|which (one|of))\b",
    re.IGNORECASE,
)
_RELATIVE = re.compile(r"\b(who|whom|whose|which|that|where|when)\b", re.IGNORECASE)


def describes_named_entity(question: str) -> bool:
    """A long question whose relative clause hides an entity behind its relation to a named one.

    "the woman who portrayed Corliss Archer" hides a bridge entity; "the function that returns
    the length of a list" is an ordinary question. The clause must name something (a capitalised
    word or a number after the wh-word or "that"), or a plain question would be sent down the
    decomposition path (three LLM calls instead of one).

    Example:
        >>> describes_named_entity("What government position was held by the woman who portrayed Corliss Archer?")
        True
        >>> describes_named_entity("What is the name of the function that returns the length of a list?")
        False
    """
    words = [w.strip(",.?!\"'") for w in question.split()]
    if len(words) < 9:
        return False
    for i, word in enumerate(words[2:], start=2):
        if _RELATIVE.fullmatch(word):
            return any(w[:1].isupper() and w != "I" or w[:1].isdigit() for w in words[i + 1:])
    return False


def rule_route(question: str, web_available: bool) -> RouteDecision:
    """The routing rules, also the fallback of the LLM router."""
    if _SMALL_TALK.match(question):
        return RouteDecision(route="direct", complex=False, reason="small talk needs no sources")
    if _CURRENT.search(question):
        if web_available:
            return RouteDecision(route="web", complex=False, reason="asks about current events")
        return RouteDecision(route="index", complex=False, reason="asks about current events, but web search is not configured")
    comparison = bool(_COMPARISON.search(question)) and bool(re.search(r"\b(and|or)\b|,", question))
    relative = describes_named_entity(question)
    if comparison:
        return RouteDecision(route="index", complex=True, reason="compares two things")
    if relative:
        return RouteDecision(route="index", complex=True, reason="describes an entity it asks about (multi-hop)")
    return RouteDecision(route="index", complex=False, reason="single-fact question")


@node("route")
def route(state: RAGState, run: Run) -> dict:
    """Choose index / web / direct / sql and whether to decompose."""
    settings = run.settings
    question = state["standalone_question"]
    if settings.text_to_sql and run.settings.write_answer:
        tables = tables_asked_about(question, run.components.tables)
        if tables:
            run.trace(route="sql", complex=False, reason=f"asks about the table(s) {', '.join(tables)}", decided_by="rules")
            return {"route": "sql", "complex": False}
    web_available = unavailable_reason(settings) is None
    fallback = rule_route(question, web_available)
    status = "rules"
    decision = fallback
    if settings.router == "llm":
        decision, status = ask_json(
            run.llm, PROMPT.format(question=question), RouteDecision, run.usage, default=fallback, max_tokens=80
        )
        if decision.route == "web" and not web_available:
            decision = decision.model_copy(update={"route": "index", "reason": decision.reason + "; web search not configured"})
    complex_ = decision.route == "index" and (
        settings.decompose == "always" or (settings.decompose == "auto" and decision.complex)
    )
    run.trace(route=decision.route, complex=complex_, reason=decision.reason, decided_by=status)
    return {"route": decision.route, "complex": complex_}
