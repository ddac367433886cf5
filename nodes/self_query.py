"""Self-query: metadata filters taken from the question, checked against the collection's fields.

"What did the 2023 handbook say about leave?" searches only chunks whose ``year`` is 2023. The
schema of filterable fields (title, year, ingest tags) is read from the collection. With
``self_query="rules"`` (the default) filters come from values the question names plainly, at
no LLM cost; with ``"llm"`` the model proposes conditions as JSON, and every condition is
validated against the schema (unknown fields, operators, types and values are dropped with a
note). The filter reaches retrieval as a Chroma ``where``; a filter that matches nothing is
lifted there, with a note, rather than leaving the question without sources.
"""

from __future__ import annotations

import json

from pydantic import BaseModel, Field

from arag.index.store import IndexUnavailable
from arag.llms.structured import ask_json
from arag.retrieval.filters import rule_filters, validate
from arag.runtime.frame import Run, node
from arag.runtime.state import RAGState

LLM_PROMPT = """The documents have these metadata fields, with their known values:
{schema}
If the question restricts which documents to search by these fields, give the conditions; otherwise give none.
Operators: $eq, $ne, $gt, $gte, $lt, $lte, $in, $nin.
Reply with JSON: {{"conditions": [{{"field": "...", "op": "$eq", "value": ...}}]}}
Question: {question}"""


class Conditions(BaseModel):
    conditions: list[dict] = Field(default_factory=list, max_length=4)


@node("self_query")
def self_query(state: RAGState, run: Run) -> dict:
    """Turn what the question says about which documents to search into a validated ``where`` filter."""
    settings, components = run.settings, run.components
    question = state["standalone_question"]
    details = run.details
    details["mode"] = settings.self_query
    notes: list[str] = []
    where = None
    schema: dict = {}
    if settings.self_query != "off":
        try:
            with components.store.reachable():
                schema = components.filter_schema()
        except IndexUnavailable as exc:  # retrieval will say so; no filter can be checked without the index
            details["error"] = str(exc)
        details["fields"] = sorted(schema)
        if schema:
            if settings.self_query == "llm":
                shown = {f: spec["values"][:20] for f, spec in schema.items()}
                proposed, status = ask_json(run.llm, LLM_PROMPT.format(
                    schema=json.dumps(shown, ensure_ascii=False), question=question), Conditions, run.usage,
                    default=Conditions(), max_tokens=120)
                conditions = proposed.conditions
                details["status"] = status
            else:
                conditions = rule_filters(question, schema)
            where, dropped = validate(conditions, schema)
            if dropped:
                details["dropped"] = dropped
                notes.append("a filter condition was ignored: " + "; ".join(dropped))
    details["where"] = where
    return {"filters": where, "notes": notes}
