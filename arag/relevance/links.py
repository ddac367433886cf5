"""Link expansion: a relevant passage that names another document lends that document relevance.

Multi-hop questions ("What position did the actress who played Corliss Archer hold?") need a
second passage that shares almost no words with the question: the one about the person the
first passage names. A scorer that reads the question alone ranks it low. Wikipedia-like
corpora, wikis and documentation link their pages by naming them, so when a passage judged
relevant mentions the subject of another candidate (its document title, without a
parenthetical qualifier), that candidate's probability is raised by noisy-OR:

    p' = p + w · p_source · (1 − p)

where ``p_source`` is the probability of the best of the ``top`` most relevant candidates that
name it. The question itself lends too: a candidate whose subject the question names gains
``p' = p + w_q · (1 − p)`` (``QUESTION_LINK_WEIGHT``), since a comparison or a bridge question
names its first hop, and a scorer reading the whole question can still rank that page low.
``w`` is fitted per scorer on held-out two-hop pairs made from the corpus itself
(:func:`arag.training.pairs.bridge_pairs`), by :func:`arag.training.link_weights.fit_link_weight`. The result stays a
probability in [0, 1], so the grading threshold keeps its meaning.

Example:
    >>> chunks = [
    ...     {"chunk_id": "a", "title": "Kiss and Tell (1945 film)", "text": "It starred Shirley Temple.", "relevance": 0.9},
    ...     {"chunk_id": "b", "title": "Shirley Temple", "text": "She became a diplomat.", "relevance": 0.2},
    ... ]
    >>> [(c["chunk_id"], c["relevance"], c.get("linked_from")) for c in expand_links(chunks, 0.5)]
    [('a', 0.9, None), ('b', 0.56, 'a')]
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

#: How the most relevant candidates are counted as link sources. 3 rather than 2 put every supporting
#: paragraph among the first five for 1.2% more HotpotQA and 0.3% more 2Wiki questions (bench/link_transfer.py).
LINK_SOURCES = 3
#: Relevance the question lends to the candidates whose subject it names: fitted on 2Wiki dev-330's questions,
#: where it holds on HotpotQA dev-250's (all-supporting@4 0.776 against 0.780 at HotpotQA's own fit, 0.75, which
#: loses 0.016 on 2Wiki), bench/link_transfer.py.
QUESTION_LINK_WEIGHT = 0.2

_QUALIFIER = re.compile(r"\s*\([^)]*\)\s*$")
#: "Boston, Lincolnshire": the place is called Boston in other pages' text.
_COMMA_QUALIFIER = re.compile(r",\s+[^,]+$")


def subject_of(title: str) -> str | None:
    """The name a document goes by in other documents' text, or None when it is too generic to link.

    The heading part of a chunk title (after " — ") and a trailing qualifier, in parentheses or
    after a comma, are dropped. A one-word name must be capitalised and at least 4 letters long,
    so that common words ("Stay", "data") link nothing.

    Example:
        >>> subject_of("Kiss and Tell (1945 film)"), subject_of("Python — Installing"), subject_of("notes")
        ('Kiss and Tell', 'Python', None)
        >>> subject_of("Boston, Lincolnshire")
        'Boston'
    """
    name = _COMMA_QUALIFIER.sub("", _QUALIFIER.sub("", title.split(" — ")[0]).strip()).strip()
    if len(name.split()) >= 2:
        return name
    return name if len(name) >= 4 and name[0].isupper() else None


def mentions(text: str, name: str) -> bool:
    """Whether ``name`` occurs in ``text`` as whole words, case as written or in capitals ("WINNER").

    Example:
        >>> mentions("the debut album of WINNER", "Winner"), mentions("a winner", "Winner")
        (True, False)
    """
    if re.search(rf"(?<!\w){re.escape(name)}(?!\w)", text):
        return True
    return len(name) >= 4 and re.search(rf"(?<!\w){re.escape(name.upper())}(?!\w)", text) is not None


def named_in_question(chunks: list[dict], question: str, weight: float = QUESTION_LINK_WEIGHT) -> list[dict]:
    """Copies of ``chunks`` where those whose subject ``question`` names gained relevance (``named_in_question``).

    Example:
        >>> chunk = {"chunk_id": "b", "title": "Shirley Temple", "text": "An actress.", "relevance": 0.2}
        >>> named_in_question([chunk], "Which post did Shirley Temple hold?", 0.5)[0]["relevance"]
        0.6
    """
    out = []
    for chunk in chunks:
        copy = dict(chunk)
        name = subject_of(chunk.get("title", ""))
        if weight > 0 and name and mentions(question, name):
            own = chunk["relevance"]
            copy.update(relevance=round(own + weight * (1.0 - own), 4), relevance_own=own, named_in_question=True)
        out.append(copy)
    return out


def expand_links(chunks: list[dict], weight: float, top: int = LINK_SOURCES, question: str | None = None) -> list[dict]:
    """Copies of ``chunks`` (each with ``relevance``) where linked candidates gained relevance.

    A raised chunk keeps its own probability in ``relevance_own`` and names its source in
    ``linked_from``. Chunks about the same subject never lend to each other. With ``question``,
    the candidates it names gain first (:func:`named_in_question`), and lend what they gained.
    """
    if weight <= 0:
        return [dict(c) for c in chunks]
    if question is not None:
        chunks = named_in_question(chunks, question)
    if len(chunks) < 2:
        return [dict(c) for c in chunks]
    sources = sorted(chunks, key=lambda c: -c["relevance"])[:top]
    out = []
    for chunk in chunks:
        copy = dict(chunk)
        name = subject_of(chunk.get("title", ""))
        if name:
            lenders = [s for s in sources
                       if subject_of(s.get("title", "")) != name and mentions(s.get("text", ""), name)]
            if lenders:
                best = max(lenders, key=lambda s: s["relevance"])
                own = chunk["relevance"]
                raised = own + weight * best["relevance"] * (1.0 - own)
                if raised > own:
                    copy.update(relevance=round(raised, 4), relevance_own=chunk.get("relevance_own", own),
                                linked_from=best["chunk_id"])
        out.append(copy)
    return out


@dataclass
class LinkWeight:
    """The fitted weight of link expansion for one scorer, and how it was chosen."""

    weight: float
    fitted_on: int = 0
    ndcg_by_weight: dict | None = None

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> "LinkWeight":
        return cls(**json.loads(path.read_text()))
