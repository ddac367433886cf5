"""Build yes/no comparison questions with verified answers from 2Wiki's own facts.

2Wiki's dev-330 has 29 yes/no questions, only 6 of them "no": too few to tell a method that
answers "no" when it should from one that got lucky. Every 2Wiki question lists the Wikidata
facts its answer rests on (``reasoning_steps``: "Lehututu country Botswana", "Sleepers director
Barry Levinson", "Barry Levinson country of citizenship American"). Two entities of the same
kind taken from two different questions make a new question ("Are Lehututu and Kat Kiyars
located in the same country?") whose answer follows from the two facts; its documents are both
source questions' paragraphs, the entities' own paragraphs marked as supporting.

The gold answer compares the facts through the table below, written by hand for the values that
occur (the app's own matching in ``arag/comparison.py`` is not used, so it cannot grade itself).
Entities with more than one value, or a value not in the table, are left out. No question is
fitted on: these only check the comparison path (README, "Answers").

    python bench/comparison_questions.py ../shared/data/2wiki/dev-330.jsonl /tmp/comparisons.jsonl
"""

from __future__ import annotations

import json
import random
import re
import sys
from collections import defaultdict
from pathlib import Path

#: Every fact value of dev-330's country relations that names one present-day country, by that country.
GOLD_COUNTRY = {
    "American": "US", "America": "US", "United States": "US", "US": "US", "British": "UK", "German": "Germany",
    "Canadian": "Canada", "Canada": "Canada", "Italian": "Italy", "Italy": "Italy", "French": "France",
    "France": "France", "India": "India", "Pakistan": "Pakistan", "Iran": "Iran", "Bangladesh": "Bangladesh",
    "Australia": "Australia", "Norwegian": "Norway", "Norway": "Norway", "Russian": "Russia", "Austria": "Austria",
    "Cape Verde": "Cape Verde", "Hungary": "Hungary", "Hungarian": "Hungary", "Irish": "Ireland",
    "Botswana": "Botswana", "Ethiopia": "Ethiopia", "Sweden": "Sweden",
}
_FACT = re.compile(r"^(?P<entity>.+?) (?P<relation>country of citizenship|country of origin|country) (?P<value>.+)$")
_DIRECTOR = re.compile(r"^(?P<film>.+?) director (?P<person>.+)$")
KIND_OF_RELATION = {"country of citizenship": "person", "country of origin": "film", "country": "place"}
TEMPLATES = {
    "person": ["Were {a} and {b} of the same nationality?", "Are {a} and {b} from the same country?"],
    "film": ["Are the films {a} and {b} from the same country?"],
    "place": ["Are {a} and {b} located in the same country?"],
    "director": ["Do the directors of the films {a} and {b} have the same nationality?"],
}
PER_ANSWER = 30


def _entities(rows: list[dict]) -> dict[str, list[dict]]:
    """Entities by kind: ``{"name", "country", "row", "paragraphs"}``, one value each."""
    found: dict[tuple[str, str], dict] = {}
    for index, row in enumerate(rows):
        titles = {c["title"].lower(): c["title"] for c in row["contexts"]}
        facts: dict[str, set[str]] = defaultdict(set)
        kinds: dict[str, str] = {}
        for step in row.get("reasoning_steps") or []:
            match = _FACT.match(step)
            if match and match["entity"].lower() in titles:
                facts[match["entity"].lower()].add(match["value"])
                kinds[match["entity"].lower()] = KIND_OF_RELATION[match["relation"]]
        for entity, facts_of in facts.items():
            countries = {GOLD_COUNTRY.get(v) for v in facts_of}
            if len(countries) == 1 and None not in countries:
                key = (kinds[entity], entity)
                found.setdefault(key, {"name": titles[entity], "country": countries.pop(), "row": index,
                                       "paragraphs": [titles[entity]]})
        for step in row.get("reasoning_steps") or []:
            match = _DIRECTOR.match(step)
            person = match and found.get(("person", match["person"].lower()))
            if match and person and person["row"] == index and match["film"].lower() in titles:
                film = titles[match["film"].lower()]
                found.setdefault(("director", film.lower()), {"name": film, "country": person["country"], "row": index,
                                                             "paragraphs": [film, person["name"]]})
    by_kind: dict[str, list[dict]] = defaultdict(list)
    for (kind, _), entity in sorted(found.items()):
        by_kind[kind].append(entity)
    return by_kind


def build(rows: list[dict], seed: int = 0) -> list[dict]:
    """Up to ``PER_ANSWER`` "yes" and as many "no" questions, kinds mixed, no pair asked twice."""
    rng = random.Random(seed)
    pairs = {"yes": [], "no": []}
    for kind, entities in _entities(rows).items():
        for i, a in enumerate(entities):
            for b in entities[i + 1:]:
                if a["row"] != b["row"]:
                    pairs["yes" if a["country"] == b["country"] else "no"].append((kind, a, b))
    questions = []
    for answer, candidates in pairs.items():
        rng.shuffle(candidates)
        # Round-robin over kinds, so "American and American" person pairs do not fill the "yes" half.
        by_kind: dict[str, list] = defaultdict(list)
        for candidate in candidates:
            by_kind[candidate[0]].append(candidate)
        chosen, used = [], set()
        while len(chosen) < PER_ANSWER and any(by_kind.values()):
            for kind in sorted(by_kind):
                while by_kind[kind]:
                    _, a, b = by_kind[kind].pop()
                    if a["name"] in used or b["name"] in used:
                        continue
                    used |= {a["name"], b["name"]}
                    chosen.append((kind, a, b))
                    break
        for kind, a, b in chosen[:PER_ANSWER]:
            template = rng.choice(TEMPLATES[kind])
            supporting = set(a["paragraphs"]) | set(b["paragraphs"])
            contexts, seen = [], set()
            for source in (rows[a["row"]], rows[b["row"]]):
                for context in source["contexts"]:
                    if context["title"] not in seen:
                        seen.add(context["title"])
                        contexts.append({**context, "is_supporting": context["title"] in supporting})
            questions.append({
                "question_id": f"comparison-{len(questions) + 1}",
                "question_text": template.format(a=a["name"], b=b["name"]),
                "answers_objects": [{"number": "", "date": {"day": "", "month": "", "year": ""}, "spans": [answer]}],
                "contexts": contexts,
                "meta": {"type": f"built comparison ({kind})", "facts": {a["name"]: a["country"], b["name"]: b["country"]},
                         "from_questions": [rows[a["row"]]["question_id"], rows[b["row"]]["question_id"]]},
            })
    rng.shuffle(questions)
    return questions


def main(source: Path, target: Path) -> int:
    rows = [json.loads(line) for line in source.read_text(encoding="utf-8").splitlines() if line.strip()]
    questions = build(rows)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("".join(json.dumps(q, ensure_ascii=False) + "\n" for q in questions), encoding="utf-8")
    answers = [q["answers_objects"][0]["spans"][0] for q in questions]
    print(f"{len(questions)} comparison questions ({answers.count('yes')} yes, {answers.count('no')} no) written to {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
