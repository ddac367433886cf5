"""Evaluation datasets, read from three common formats and recognised by their content.

- **HotpotQA / IRCoT JSONL** (``question_text``, ``answers_objects``, ``contexts`` with
  ``is_supporting``): the paragraphs of all questions, deduplicated by title, are the corpus;
  the supporting ones are each question's relevant documents.
- **FlashRAG QA JSONL** (``id``, ``question``, ``golden_answers``): questions and answers only,
  asked of an already ingested collection; no relevance judgments.
- **BEIR folder** (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``): a corpus, queries
  and graded judgments (any grade above 0 counts as relevant); answers are not part of BEIR.

Every problem is reported as a :class:`DatasetError` that names the file and line.

Example:
    >>> import json, pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "qa.jsonl"
    >>> _ = path.write_text(json.dumps({"id": "q1", "question": "Who?", "golden_answers": ["Ada"]}) + "\\n")
    >>> data = load_dataset(path)
    >>> data.format, data.questions[0].answers, data.corpus is None
    ('flashrag', ['Ada'], True)
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path


class DatasetError(ValueError):
    """A dataset that cannot be read, with the file and line at fault."""


@dataclass
class EvalQuestion:
    id: str
    question: str
    answers: list[str] = field(default_factory=list)
    #: Ids of the corpus documents that answer the question (empty: no judgments).
    relevant: set[str] = field(default_factory=set)
    #: Ids of the documents the dataset gives with the question, in its order (HotpotQA format: its
    #: paragraphs, supporting and distracting), which a long-context configuration reads.
    documents: list[str] = field(default_factory=list)


@dataclass
class EvalDataset:
    name: str
    format: str
    questions: list[EvalQuestion]
    #: ``{"id", "title", "text"}`` records to index, or None to use an ingested collection.
    corpus: list[dict] | None = None

    @property
    def has_answers(self) -> bool:
        return any(q.answers for q in self.questions)

    @property
    def has_judgments(self) -> bool:
        return any(q.relevant for q in self.questions)

    def corpus_hash(self) -> str:
        """A digest of the corpus records, naming the index built for them."""
        digest = hashlib.sha256()
        for record in self.corpus or []:
            digest.update(json.dumps(record, sort_keys=True, ensure_ascii=False).encode())
        return digest.hexdigest()[:16]


def _json_lines(path: Path):
    """(line number, object) for each non-blank line; a line that is not a JSON object is an error."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise DatasetError(f"{path}:{number}: not valid JSON ({exc.msg})") from exc
        if not isinstance(row, dict):
            raise DatasetError(f"{path}:{number}: expected a JSON object, found {type(row).__name__}")
        yield number, row


def _field(row: dict, key: str, kind, where: str):
    if key not in row:
        raise DatasetError(f"{where}: missing field {key!r}")
    value = row[key]
    if not isinstance(value, kind):
        kinds = kind if isinstance(kind, tuple) else (kind,)
        raise DatasetError(f"{where}: field {key!r} should be {' or '.join(k.__name__ for k in kinds)}, "
                           f"not {type(value).__name__}")
    return value


def _hotpotqa(path: Path) -> EvalDataset:
    questions, corpus = [], {}
    for number, row in _json_lines(path):
        where = f"{path}:{number}"
        contexts = _field(row, "contexts", list, where)
        relevant, documents = set(), []
        for ctx in contexts:
            if not isinstance(ctx, dict) or "title" not in ctx or "paragraph_text" not in ctx:
                raise DatasetError(f"{where}: each context needs 'title' and 'paragraph_text'")
            title = str(ctx["title"])
            corpus.setdefault(title, {"id": title, "title": title, "text": str(ctx["paragraph_text"])})
            if ctx.get("is_supporting"):
                relevant.add(title)
            if title not in documents:
                documents.append(title)
        answers = [str(span) for obj in _field(row, "answers_objects", list, where)
                   for span in (obj.get("spans", []) if isinstance(obj, dict) else [])]
        questions.append(EvalQuestion(str(row.get("question_id", number)), str(_field(row, "question_text", str, where)),
                                      answers, relevant, documents))
    return EvalDataset(path.stem, "hotpotqa", questions, list(corpus.values()))


def _flashrag(path: Path) -> EvalDataset:
    questions = []
    for number, row in _json_lines(path):
        where = f"{path}:{number}"
        answers = _field(row, "golden_answers", list, where)
        questions.append(EvalQuestion(str(row.get("id", number)), str(_field(row, "question", str, where)),
                                      [str(a) for a in answers]))
    return EvalDataset(path.stem, "flashrag", questions)


def _beir(folder: Path, split: str | None) -> EvalDataset:
    corpus = []
    for number, row in _json_lines(folder / "corpus.jsonl"):
        where = f"{folder / 'corpus.jsonl'}:{number}"
        corpus.append({"id": str(_field(row, "_id", (str, int), where)), "title": str(row.get("title") or ""),
                       "text": str(_field(row, "text", str, where))})
    queries = {}
    for number, row in _json_lines(folder / "queries.jsonl"):
        where = f"{folder / 'queries.jsonl'}:{number}"
        queries[str(_field(row, "_id", (str, int), where))] = str(_field(row, "text", str, where))
    qrels_dir = folder / "qrels"
    files = sorted(qrels_dir.glob("*.tsv")) if qrels_dir.is_dir() else []
    if not files:
        raise DatasetError(f"{folder}: a BEIR folder needs qrels/<split>.tsv")
    names = {f.stem: f for f in files}
    chosen = names.get(split) if split else names.get("test", files[0])
    if chosen is None:
        raise DatasetError(f"{qrels_dir}: no split {split!r} (found {', '.join(sorted(names))})")
    relevant: dict[str, set[str]] = {}
    known = {d["id"] for d in corpus}
    with chosen.open(encoding="utf-8", newline="") as fh:
        for number, cells in enumerate(csv.reader(fh, delimiter="\t"), start=1):
            if not cells or (number == 1 and cells[0] == "query-id"):
                continue
            if len(cells) != 3:
                raise DatasetError(f"{chosen}:{number}: expected query-id, corpus-id and score separated by tabs")
            qid, doc, score = cells
            try:
                grade = float(score)
            except ValueError as exc:
                raise DatasetError(f"{chosen}:{number}: score {score!r} is not a number") from exc
            if qid not in queries:
                raise DatasetError(f"{chosen}:{number}: query {qid!r} is not in queries.jsonl")
            if doc not in known:
                raise DatasetError(f"{chosen}:{number}: document {doc!r} is not in corpus.jsonl")
            if grade > 0:
                relevant.setdefault(qid, set()).add(doc)
    questions = [EvalQuestion(qid, queries[qid], [], docs) for qid, docs in relevant.items()]
    return EvalDataset(folder.name, "beir", questions, corpus)


def load_dataset(path: Path, split: str | None = None) -> EvalDataset:
    """Read ``path`` (a JSONL file or a BEIR folder), recognising its format by content."""
    path = Path(path)
    if path.is_dir():
        if (path / "corpus.jsonl").exists() and (path / "queries.jsonl").exists():
            return _beir(path, split)
        raise DatasetError(f"{path}: a folder must be in BEIR form (corpus.jsonl, queries.jsonl, qrels/)")
    if not path.exists():
        raise DatasetError(f"{path}: no such file or folder")
    first = next(_json_lines(path), None)
    if first is None:
        raise DatasetError(f"{path}: no questions in the file")
    number, row = first
    if "question_text" in row and "contexts" in row:
        data = _hotpotqa(path)
    elif "question" in row and "golden_answers" in row:
        data = _flashrag(path)
    else:
        raise DatasetError(
            f"{path}:{number}: unknown format: expected HotpotQA/IRCoT fields (question_text, contexts, "
            f"answers_objects) or FlashRAG fields (id, question, golden_answers); found {', '.join(sorted(row)) or 'none'}"
        )
    if not data.questions:
        raise DatasetError(f"{path}: no questions in the file")
    return data
