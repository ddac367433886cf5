"""Training pairs made from the indexed corpus alone: (query, positive passage).

Two ways to get a query for a passage:

- **Synthetic (E5 manner)**: the configured LLM reads a passage and writes one realistic
  query that the passage answers, with the query's type, length and clarity drawn at random
  for each passage so the set is varied. Output is schema-constrained JSON; replies are
  cached per passage so an interrupted run resumes where it stopped.
- **Unsupervised (Contriever / ICT manner)**, for when no capable LLM is configured: a
  sentence against the rest of its passage (inverse cloze), a short span against an
  independently cropped view of the same passage, and a title against its body.

:func:`clean_pairs` drops queries that are too short or long, copies of a substring of their
passage, and duplicates; :func:`split_pairs` holds out whole documents so held-out
positives were never seen in training.

Example:
    >>> import random
    >>> p = Passage("c1", "doc", "Lighthouses", "Lighthouses guide ships at night. "
    ...             "Their lamps turn. Keepers once lived inside them.")
    >>> pairs = clean_pairs(unsupervised_pairs([p], random.Random(0)))
    >>> {pair.kind for pair in pairs} <= {"crop", "ict", "title"}, len(pairs) > 0
    (True, True)
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pydantic import BaseModel, Field
from tqdm import tqdm

from arag.evaluation.metrics import normalize_answer
from arag.llms.structured import ask_json
from arag.llms.usage import LLMUsage
from arag.relevance.links import mentions, subject_of

#: Query length bounds in words, after cleaning.
MIN_QUERY_WORDS, MAX_QUERY_WORDS = 3, 40
#: Passages shorter than this (words) make no pairs: there is too little to crop or ask about.
MIN_PASSAGE_WORDS = 12
#: Words of a passage shown to the LLM; the rest costs prompt time and adds little.
LLM_PASSAGE_WORDS = 120

QUERY_TYPES = (
    "a factual question that the passage answers",
    "a keyword search query someone would type into a search box",
    "a question about a specific detail (a name, date, number or place) stated in the passage",
    "a request for an explanation of something the passage describes",
    "a question that names the subject only indirectly, by a property the passage gives",
)
QUERY_LENGTHS = ("short (under 8 words)", "medium (8 to 15 words)", "long (15 to 25 words)")
QUERY_CLARITY = ("clear and specific", "a little vague, as a hurried user would write it")

SYNTHETIC_PROMPT = """Write {kind} for which this passage is the best answer. Make it {length} and {clarity}. Do not copy a sentence from the passage.
Title: {title}
Passage: {text}
Reply with JSON: {{"query": "..."}}"""  # noqa: E501 - the prompt is kept verbatim


class SyntheticQuery(BaseModel):
    query: str = Field(default="", max_length=240)


@dataclass
class Passage:
    """One chunk of the indexed corpus."""

    id: str
    source: str
    title: str
    text: str


@dataclass
class TrainingPair:
    query: str
    positive_id: str
    positive: str
    source: str
    kind: str
    negative_ids: list[str] = field(default_factory=list)
    negatives: list[str] = field(default_factory=list)
    #: Other passages the query needs (the first hop of a two-hop pair).
    related_ids: list[str] = field(default_factory=list)

    @property
    def relevant_ids(self) -> set[str]:
        return {self.positive_id, *self.related_ids}

    def as_flag_record(self) -> dict:
        """One line of FlagEmbedding's training data."""
        return {"query": self.query, "pos": [self.positive], "neg": list(self.negatives)}


def passage_text(passage: Passage) -> str:
    """What a positive or negative looks like to the model: the same title + text the index embeds."""
    return f"{passage.title}\n{passage.text}" if passage.title else passage.text


def document_title(passage: Passage) -> str:
    """The title of a passage's document: :func:`passages_from_store` joins it to the section heading with " — "."""
    return passage.title.split(" — ", 1)[0]


def untitled_text(passage: Passage) -> str:
    """A passage without its document's title (its section heading kept), for tasks where the title would give the answer away."""
    heading = passage.title.split(" — ", 1)[1] if " — " in passage.title else ""
    return passage_text(Passage(passage.id, passage.source, heading, passage.text))


def passages_from_store(store) -> list[Passage]:
    """Every chunk of a :class:`knowledge.store.ChunkStore`, paged."""
    out: list[Passage] = []
    offset, page = 0, 2000
    while True:
        got = store.collection.get(include=["documents", "metadatas"], limit=page, offset=offset)
        if not got["ids"]:
            return out
        for cid, text, meta in zip(got["ids"], got["documents"], got["metadatas"]):
            title = meta.get("title", "")
            heading = meta.get("heading", "")
            if heading and heading != title:
                title = f"{title} — {heading}"
            out.append(Passage(cid, meta.get("source", cid), title, text))
        offset += len(got["ids"])


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def _crop(words: list[str], rng: random.Random, low: float, high: float) -> str:
    size = max(1, int(len(words) * rng.uniform(low, high)))
    start = rng.randrange(0, len(words) - size + 1)
    return " ".join(words[start : start + size])


def unsupervised_pairs(passages: Iterable[Passage], rng: random.Random) -> list[TrainingPair]:
    """Inverse-cloze, independent-crop and title pairs, at most one of each per passage."""
    pairs: list[TrainingPair] = []
    for p in passages:
        words = p.text.split()
        if len(words) < MIN_PASSAGE_WORDS:
            continue
        sentences = _sentences(p.text)
        if len(sentences) >= 3:
            i = rng.randrange(len(sentences))
            # Inverse cloze: the sentence is removed from its passage, so the pair cannot match on copying.
            rest = " ".join(sentences[:i] + sentences[i + 1 :])
            pairs.append(TrainingPair(sentences[i], p.id, passage_text(Passage(p.id, p.source, p.title, rest)), p.source, "ict"))
        # Independent crops of one passage: a short span as the query, a long view as the key.
        short = " ".join(words[rng.randrange(len(words)) :][: rng.randint(6, 14)])
        view = _crop(words, rng, 0.5, 0.9)
        pairs.append(TrainingPair(short, p.id, passage_text(Passage(p.id, p.source, p.title, view)), p.source, "crop"))
        if p.title and len(p.title.split()) >= 1:
            # The title as the query matches how people name the thing they ask about.
            body = passage_text(Passage(p.id, p.source, "", p.text))
            pairs.append(TrainingPair(p.title, p.id, body, p.source, "title"))
    return pairs


def similarity_pairs(passages: Iterable[Passage], rng: random.Random) -> list[TrainingPair]:
    """Same-document passage pairs: a similarity task for the second stage of NV-Embed-style training.

    Each passage of a document with several is paired with another passage of its section (same
    heading) or, when the section has one, of its document; a document of one passage pairs the two
    halves of it, split at the sentence boundary nearest the middle. Both sides are bare text: a
    shared title or heading alone would make the pair.

    Example:
        >>> text = "Tea is a drink. It comes from China. Green tea is steamed. Black tea is oxidised. Both have caffeine."
        >>> [(p.query, p.positive) for p in similarity_pairs([Passage("c1", "d", "Tea", text)], random.Random(0))]
        [('Tea is a drink. It comes from China.', 'Green tea is steamed. Black tea is oxidised. Both have caffeine.')]
    """
    by_document: dict[str, list[Passage]] = {}
    for p in passages:
        by_document.setdefault(p.source, []).append(p)
    pairs: list[TrainingPair] = []
    for source, members in by_document.items():
        if len(members) == 1:
            sentences = _sentences(members[0].text)
            if len(sentences) < 2:
                continue
            words = [len(x.split()) for x in sentences]
            cut = min(range(1, len(sentences)), key=lambda i: abs(sum(words[:i]) - sum(words[i:])))
            first, second = " ".join(sentences[:cut]), " ".join(sentences[cut:])
            if min(len(first.split()), len(second.split())) >= MIN_QUERY_WORDS:
                pairs.append(TrainingPair(first, members[0].id, second, source, "similarity"))
            continue
        for a in members:
            others = [b for b in members if b.id != a.id]
            same_section = [b for b in others if b.title == a.title]
            b = rng.choice(same_section or others)
            pairs.append(TrainingPair(a.text, b.id, b.text, source, "similarity"))
    return pairs


def classification_pairs(passages: Iterable[Passage], rng: random.Random) -> list[TrainingPair]:
    """Title-to-section classification, one pair a titled document: the query is the document's title,
    the positive one of its passages drawn at random, without the title (:func:`untitled_text`);
    negatives, mined later, are passages of other documents, untitled too.

    Example:
        >>> ps = [Passage("c1", "d", "Tea — Green", "Steamed leaves."), Passage("c2", "d", "Tea — Black", "Oxidised leaves.")]
        >>> [(p.query, p.kind) for p in classification_pairs(ps, random.Random(0))]
        [('Tea', 'classification')]
    """
    by_document: dict[str, list[Passage]] = {}
    for p in passages:
        if document_title(p).strip():
            by_document.setdefault(p.source, []).append(p)
    pairs: list[TrainingPair] = []
    for source, members in by_document.items():
        p = rng.choice(members)
        pairs.append(TrainingPair(document_title(p), p.id, untitled_text(p), source, "classification"))
    return pairs


#: Words kept of each hop's sentence in a two-hop query.
BRIDGE_WORDS = 12


def bridge_pairs(passages: list[Passage], rng: random.Random, sources: set[str] | None = None,
                 limit: int | None = None) -> list[TrainingPair]:
    """Two-hop pairs in the manner of HotpotQA's bridge questions, with no LLM.

    Where passage A names the subject of passage B (B's document title, see
    :func:`relevance.links.subject_of`), the query joins a sentence of B that does not name its
    subject with the words around the mention in A, the mention removed: "was a diplomat who
    served as Chief of Protocol | Kiss and Tell starred then 17-year-old as Corliss Archer".
    The positive is B, the passage the question cannot find alone; A is in ``related_ids``.
    Only links whose A comes from ``sources`` (when given) are used, at most ``limit`` of them.

    Example:
        >>> a = Passage("a", "d1", "Kiss and Tell", "Kiss and Tell is a 1945 film. It starred Shirley Temple as Corliss Archer.")
        >>> b = Passage("b", "d2", "Shirley Temple", "Shirley Temple was an actress. She later served as a diplomat in Ghana.")
        >>> [(p.positive_id, p.related_ids, p.kind) for p in bridge_pairs([a, b], random.Random(0))]
        [('b', ['a'], 'bridge')]
    """
    by_subject: dict[str, list[Passage]] = {}
    for p in passages:
        name = subject_of(p.title)
        if name:
            by_subject.setdefault(name, []).append(p)
    names = sorted(by_subject, key=len, reverse=True)
    # One alternation, longest names first, finds every mention in a passage in one pass.
    pattern = re.compile(r"(?<!\w)(" + "|".join(re.escape(n) for n in names) + r")(?!\w)") if names else None
    links = []
    for a in passages:
        if pattern is None or (sources is not None and a.source not in sources):
            continue
        for name in dict.fromkeys(m.group(1) for m in pattern.finditer(a.text)):
            links += [(a, b, name) for b in by_subject[name] if b.source != a.source]
    rng.shuffle(links)
    pairs: list[TrainingPair] = []
    for a, b, name in links:
        if limit is not None and len(pairs) >= limit:
            break
        around = [s for s in _sentences(a.text) if mentions(s, name)]
        about = [s for s in _sentences(b.text) if not mentions(s, name) and len(s.split()) >= 5]
        if not around or not about:
            continue
        first_hop = " ".join(re.sub(rf"(?<!\w){re.escape(name)}(?!\w)", " ", around[0]).split()[:BRIDGE_WORDS])
        second_hop = " ".join(rng.choice(about).split()[:BRIDGE_WORDS])
        pairs.append(TrainingPair(f"{second_hop} {first_hop}", b.id, passage_text(b), b.source, "bridge",
                                  related_ids=[a.id]))
    return pairs


def synthetic_pairs(
    passages: list[Passage],
    llm,
    rng: random.Random,
    usage: LLMUsage,
    cache: Path | None = None,
    progress: bool = True,
) -> list[TrainingPair]:
    """One LLM-written query per passage (E5 manner), cached by passage id in ``cache`` (JSONL).

    ``llm`` is a chat model, or a function returning one, called only if some passage is not cached.
    """
    done: dict[str, str] = {}
    if cache and cache.exists():
        for line in cache.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
                done[row["id"]] = row["query"]
            except (ValueError, KeyError):
                continue  # a line cut short by a crash; that passage is asked again
    pairs: list[TrainingPair] = []
    sink = cache.open("a", encoding="utf-8") if cache else None
    try:
        for p in tqdm(passages, desc="synthetic queries", unit="passage", disable=not progress):
            # Draw the task even for cached passages, so a resumed run makes the same choices.
            task = dict(kind=rng.choice(QUERY_TYPES), length=rng.choice(QUERY_LENGTHS), clarity=rng.choice(QUERY_CLARITY))
            if p.id not in done:
                if callable(llm) and not hasattr(llm, "invoke"):
                    llm = llm()
                text = " ".join(p.text.split()[:LLM_PASSAGE_WORDS])
                value, status = ask_json(
                    llm, SYNTHETIC_PROMPT.format(title=p.title or "(none)", text=text, **task), SyntheticQuery, usage,
                    default=SyntheticQuery(), max_tokens=60,
                )
                done[p.id] = " ".join(value.query.split())
                if sink:
                    sink.write(json.dumps({"id": p.id, "query": done[p.id], "status": status}) + "\n")
                    sink.flush()
            if done[p.id]:
                pairs.append(TrainingPair(done[p.id], p.id, passage_text(p), p.source, "synthetic"))
    finally:
        if sink:
            sink.close()
    return pairs


def clean_pairs(pairs: Iterable[TrainingPair]) -> list[TrainingPair]:
    """Drop queries out of length bounds, substring copies of their passage, and duplicate queries."""
    seen: set[str] = set()
    kept: list[TrainingPair] = []
    for pair in pairs:
        query = " ".join(pair.query.split())
        words = len(query.split())
        norm = normalize_answer(query)
        if not norm or norm in seen or words > MAX_QUERY_WORDS:
            continue
        # Titles are short by nature and name their passage's subject, so only they skip these two rules.
        if pair.kind != "title" and (words < MIN_QUERY_WORDS or norm in normalize_answer(pair.positive)):
            continue
        seen.add(norm)
        kept.append(TrainingPair(query, pair.positive_id, pair.positive, pair.source, pair.kind,
                                 list(pair.negative_ids), list(pair.negatives), list(pair.related_ids)))
    return kept


def split_pairs(pairs: list[TrainingPair], held_out: float, rng: random.Random) -> tuple[list[TrainingPair], list[TrainingPair]]:
    """(train, held-out), split by source document so no held-out document is trained on."""
    sources = sorted({p.source for p in pairs})
    rng.shuffle(sources)
    n_held = max(1, round(len(sources) * held_out)) if held_out > 0 and len(sources) > 1 else 0
    held = set(sources[:n_held])
    return [p for p in pairs if p.source not in held], [p for p in pairs if p.source in held]


def write_pairs(pairs: list[TrainingPair], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(asdict(p), ensure_ascii=False) + "\n" for p in pairs), encoding="utf-8")


def read_pairs(path: Path) -> list[TrainingPair]:
    return [TrainingPair(**json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def write_flag_data(pairs: list[TrainingPair], path: Path) -> None:
    """FlagEmbedding's training file: pairs without negatives are left out (they teach nothing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [json.dumps(p.as_flag_record(), ensure_ascii=False) for p in pairs if p.negatives]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")


def sample_passages(passages: list[Passage], n: int, seed: int) -> list[Passage]:
    """``n`` passages drawn reproducibly: a prefix of one seeded shuffle, so a larger ``n`` keeps every
    passage a smaller one chose and reuses their cached queries.
    """
    ordered = sorted(passages, key=lambda p: p.id)
    return random.Random(seed).sample(ordered, len(ordered))[: max(0, n)]
