"""Metadata filters from natural language (self-query): "what did the 2023 handbook say about leave?"
becomes a semantic query plus a Chroma ``where`` filter on fields the collection really has.

The filterable fields are read from the collection (:func:`filter_schema`): ``title``,
``year`` (taken from titles and file names at ingest) and the tags given at ingest
(``arag ingest --tag team=hr``), each with its known values. A filter is only ever built
from that schema: :func:`validate` drops any condition on an unknown field, with an
unsupported operator, a value of the wrong type or a value the field never takes, and says
why, so nothing a model (or a question) writes reaches Chroma unchecked.

Example:
    >>> schema = {"year": {"type": "int", "values": [2022, 2023]}, "team": {"type": "str", "values": ["hr", "sales"]}}
    >>> rule_filters("What did the 2023 HR handbook say about leave?", schema)
    [{'field': 'team', 'op': '$eq', 'value': 'hr'}, {'field': 'year', 'op': '$eq', 'value': 2023}]
    >>> validate([{"field": "year", "op": "$gte", "value": 2023}, {"field": "salary", "op": "$eq", "value": 1}], schema)
    ({'year': {'$gte': 2023}}, ["unknown field 'salary'"])
"""

from __future__ import annotations

import re

from arag.ingestion.ingest import RESERVED_FIELDS

#: Fields of the app's own metadata that questions may filter by; tags are added to these.
OWN_FILTERABLE = {"title", "year"}
OPERATORS = {"$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin"}
#: A field with more distinct values than this is not offered for filtering (it identifies chunks, not sets).
MAX_VALUES = 300
_STOP = frozenset("the a an of and or in on for to with by at from is are was were what which who how when "
                  "did does do about say said".split())


def filter_schema(store, limit: int = 50_000) -> dict[str, dict]:
    """``{field: {"type": "str"|"int", "values": [...]}}`` of the filterable fields of the collection."""
    values: dict[str, set] = {}
    seen = 0
    for _, meta in store.iter_metadata():
        for field, value in (meta or {}).items():
            if (field in OWN_FILTERABLE or field not in RESERVED_FIELDS) and isinstance(value, (str, int)) \
                    and not isinstance(value, bool):
                bucket = values.setdefault(field, set())
                if len(bucket) <= MAX_VALUES:
                    bucket.add(value)
        seen += 1
        if seen >= limit:
            break
    schema = {}
    for field, found in values.items():
        kinds = {type(v) for v in found}
        if len(found) <= MAX_VALUES and len(kinds) == 1:
            schema[field] = {"type": "int" if int in kinds else "str", "values": sorted(found)}
    return schema


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in _STOP}


def rule_filters(question: str, schema: dict[str, dict]) -> list[dict]:
    """Conditions the question states plainly: a year it names, a tag value it names, a title it names."""
    conditions = []
    lowered = question.lower()
    for field, spec in sorted(schema.items()):  # a stable order, so the same question gives the same filter
        if spec["type"] == "int":
            named = [v for v in spec["values"] if re.search(rf"(?<!\d){v}(?!\d)", question)]
        elif field == "title":
            asked = _words(question)
            # A title is named when most of its distinctive words are in the question (at least two).
            named = [v for v in spec["values"] if len(_words(v)) >= 2 and len(_words(v) & asked) >= max(2, 0.6 * len(_words(v)))]
        else:
            named = [v for v in spec["values"] if len(v) >= 2 and re.search(rf"(?<!\w){re.escape(v.lower())}(?!\w)", lowered)]
        if len(named) == 1:
            conditions.append({"field": field, "op": "$eq", "value": named[0]})
        elif 1 < len(named) <= 5:
            conditions.append({"field": field, "op": "$in", "value": named})
    return conditions


def _typed(value, kind: str) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) if kind == "int" else isinstance(value, str)


def validate(conditions: list[dict], schema: dict[str, dict]) -> tuple[dict | None, list[str]]:
    """(a Chroma ``where`` built from the valid conditions, or None; why each other one was dropped)."""
    kept, dropped = [], []
    for condition in conditions:
        if not isinstance(condition, dict):
            dropped.append("a condition that is not an object")
            continue
        field, op, value = condition.get("field"), condition.get("op"), condition.get("value")
        spec = schema.get(field) if isinstance(field, str) else None
        if spec is None:
            dropped.append(f"unknown field {field!r}")
        elif op not in OPERATORS:
            dropped.append(f"unsupported operator {op!r} on {field}")
        elif op in ("$in", "$nin") and not (isinstance(value, list) and value and all(_typed(v, spec["type"]) for v in value)):
            dropped.append(f"{op} on {field} needs a list of {spec['type']} values")
        elif op not in ("$in", "$nin") and not _typed(value, spec["type"]):
            dropped.append(f"{field} takes {spec['type']} values, not {type(value).__name__}")
        elif spec["type"] == "str" and any(v not in spec["values"] for v in (value if isinstance(value, list) else [value])):
            dropped.append(f"{field} has no value {value!r}")
        else:
            kept.append({field: {op: value}})
    if not kept:
        return None, dropped
    return (kept[0] if len(kept) == 1 else {"$and": kept}), dropped
