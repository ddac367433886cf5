"""``arag eval``: run named configurations over the same questions and measure each one.

For every configuration and question the graph is invoked once and one record is kept:

- **answer**: exact match and token F1 against the gold answers (SQuAD normalisation), whether
  the answer contains a gold answer, and whether its citations support it (it cites, and most
  of its content words beyond the question's are found in the sources it cites, the check
  the reflect node makes);
- **retrieval**: recall@2, recall@10 and nDCG@10 of the relevant documents in the graph's
  first search (for a decomposed question, its first sub-question's) and in the context
  finally given to the generator; chunks count as their document, repeats once;
- **cost**: LLM calls, prompt and completion tokens, wall seconds.

Records are appended to ``records.jsonl`` as they are made, so ``--resume`` continues an
interrupted run where it stopped. A question whose graph run raises is recorded with its error
(``status`` "failed", ``error``), scores 0 on every answer and retrieval metric it has gold data
for (a crash is no better than a wrong answer, so a configuration cannot gain by failing), is
counted in the table's errors column, and the run goes on. At the end ``results.json`` holds
the run's settings, the summary and every record; ``summary.md`` the table; ``quality_vs_cost.png``
the plots. Datasets that carry their own documents are indexed into a collection of their
own, named by the corpus's content hash and reused by later runs; the user's collection is
never touched.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import resource
import statistics
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from arag.cpu import cpu_flags
from arag.evaluation.datasets import EvalDataset
from arag.evaluation.metrics import contains_answer, exact_match, ndcg_at, normalize_answer, recall_at, token_f1
from arag.index.catalog import delete_file, list_files
from arag.index.token_store import resolved_codec
from arag.index.tree import build_tree
from arag.ingestion.ingest import Ingestor
from arag.llms.llamacpp import forget_prompt_caches, llama_cpp_kernels
from arag.relevance.grounding import GROUNDED_MIN_SUPPORT, support
from arag.runtime.components import Components
from arag.text import strip_citations

#: Summary columns averaged over every question, those whose run failed counting 0; in table order.
QUALITY_KEYS = ("em", "f1", "contains", "cited_support")
RETRIEVAL_KEYS = ("context_all_supporting", "context_answer", "first_recall@2", "first_recall@10", "first_ndcg@10",
                  "context_recall@2", "context_recall@10", "context_ndcg@10")
#: Averaged over the questions that ran: a failed run's cost is not known.
COST_KEYS = ("context_words", "llm_calls", "prompt_tokens", "completion_tokens")


class RunExists(RuntimeError):
    """The output folder holds another run, and neither resuming nor overwriting was asked for."""


@dataclass
class EvalRun:
    """Where a run writes, and what it ran."""

    out_dir: Path
    dataset: EvalDataset
    configs: list[tuple[str, dict]]
    limit: int | None = None
    llm: str | None = None
    records: list[dict] = field(default_factory=list)

    @property
    def questions(self):
        return self.dataset.questions[: self.limit] if self.limit else self.dataset.questions

    def meta(self) -> dict:
        return {"dataset": self.dataset.name, "format": self.dataset.format, "corpus": self.dataset.corpus_hash(),
                "llm": self.llm, "machine": machine(),
                "questions": [q.id for q in self.questions], "configs": dict(self.configs)}


#: CPU extensions that change the speed of the encoder's and the LLM's kernels, and int8 encoders' results;
#: the bf16 ones decide whether an ingest encodes in bf16 (Settings.embedding_bulk_precision "auto").
VECTOR_EXTENSIONS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "avx512_bf16", "amx_bf16")


def machine() -> dict:
    """The CPU (with its vector extensions), cores, memory and Python a run was measured with."""
    cpu = platform.processor() or "unknown"
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        cpu = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    extensions = [name for name in VECTOR_EXTENSIONS if name in cpu_flags()]
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cpu": cpu, "extensions": extensions, "llama_cpp_kernels": llama_cpp_kernels(), "cores": os.cpu_count(),
            "memory_gib": round(memory, 1), "python": platform.python_version()}


def peak_rss_mb() -> float:
    """The process's peak resident memory so far, in MiB (Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


#: Configuration keys that change the index itself; configurations that differ in them get their own index.
INDEX_KEYS = ("index_strategy", "chunk_tokens", "paragraph_tokens", "parent_tokens", "tree")
#: How kept token vectors are coded. Always part of an evaluation index's name: a token-vector file keeps the
#: codebook it was first given, so an index built under another codec (or an earlier default) would otherwise
#: be measured in place of the one the settings describe.
TOKEN_VECTOR_KEYS = ("store_token_vectors", "token_vector_codec", "token_vector_bytes")


def index_spec(overrides: dict, settings=None) -> dict:
    """What an evaluation index is built as: the configuration's index keys, and with ``settings`` the token-vector
    coding in effect (the configuration's, else the settings').
    """
    spec = {k: overrides[k] for k in INDEX_KEYS if k in overrides}
    if settings is not None:
        spec |= {k: overrides.get(k, getattr(settings, k)) for k in TOKEN_VECTOR_KEYS}
    return spec


def eval_collection(dataset: EvalDataset, spec: dict | None = None) -> str:
    """The collection that holds a dataset's own corpus (indexed as ``spec`` says): named by content, shared by later runs."""
    name = f"eval-{dataset.corpus_hash()}"
    if spec:
        if "token_vector_codec" in spec:  # named by the coding itself: a bare "residual" follows the store's default
            spec = {**spec, "token_vector_codec": resolved_codec(spec["token_vector_codec"])}
        name += "-" + hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:8]
    return name


@dataclass
class Indexed:
    """An index a configuration runs on: its parts, how chunk sources map to document ids, what building it cost."""

    components: object
    prefix: str | None = None
    chunk_docs: dict = field(default_factory=dict)
    cost: dict = field(default_factory=dict)


def index_corpus(settings, dataset: EvalDataset, progress: bool = True, spec: dict | None = None, llm=None) -> Indexed:
    """Ingest the dataset's corpus into a collection of its own (unchanged text is not embedded again), as ``spec``
    says (index strategy, chunk sizes, a summary tree); return it with its build cost.
    """
    spec = spec or {}
    settings = settings.model_copy(update={"collection": eval_collection(dataset, spec),
                                           **{k: v for k, v in spec.items() if k != "tree"}})
    corpus_file = settings.data_dir / "eval" / f"{dataset.corpus_hash()}.jsonl"
    corpus_file.parent.mkdir(parents=True, exist_ok=True)
    if not corpus_file.exists():
        tmp = corpus_file.with_suffix(".tmp")
        records = (r for r in dataset.corpus or [] if r["text"].strip())
        tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
        tmp.replace(corpus_file)
    ingestor = Ingestor.from_settings(settings)
    report = ingestor.ingest([corpus_file], progress=progress)
    if report.failures:
        raise RuntimeError(f"indexing the dataset's documents failed: {report.failures[0]}")
    # The collection is this corpus's alone, but its chunks are keyed by the corpus file's path: a data
    # directory copied or moved elsewhere would otherwise keep the old path's chunks beside the new
    # ones, every paragraph twice. Removed after the ingest, so the new chunks reused their vectors.
    for row in list_files(ingestor.store):
        if row["file"] != str(corpus_file.resolve()):
            delete_file(ingestor.store, row["file"])
    parts = Components(settings, llm=llm, embedder=ingestor.embedder, store=ingestor.store)
    cost = {"chunks": ingestor.store.count(), "ingest_s": round(report.seconds, 1), "ingest_llm_calls": 0}
    if spec.get("tree"):
        tree = build_tree(ingestor.store, ingestor.embedder, parts.llm, progress=progress)
        cost |= {"chunks": ingestor.store.count(), "ingest_llm_calls": tree.llm_calls, "tree_s": round(tree.seconds, 1),
                 "tree_levels": tree.levels}
    prefix = f"{corpus_file.resolve()}#"
    chunk_docs = {cid: _doc_id(m.get("source", ""), prefix) for cid, m in ingestor.store.iter_metadata()}
    return Indexed(parts, prefix, chunk_docs, cost)


class EvalIndexes:
    """The index each configuration runs on, built once per distinct index spec.

    A dataset with its own corpus gets it indexed as each configuration says; otherwise every
    configuration asks the given collection (``components``), which cannot change its indexing.
    """

    def __init__(self, settings, dataset: EvalDataset, components=None, llm=None, progress: bool = True):
        self.settings, self.dataset, self.llm, self.progress = settings, dataset, llm, progress
        self.given = Indexed(components) if components is not None else None
        self.built: dict[str, Indexed] = {}

    def for_config(self, overrides: dict) -> Indexed:
        if self.dataset.corpus is None:
            if changed := index_spec(overrides):
                raise ValueError(f"{self.dataset.name} has no documents of its own, so a configuration cannot change "
                                 f"how they are indexed ({', '.join(changed)})")
            return self.given
        spec = index_spec(overrides, self.settings)
        key = json.dumps(spec, sort_keys=True)
        if key not in self.built:
            self.built[key] = index_corpus(self.settings, self.dataset, self.progress, spec, self.llm)
        return self.built[key]


def _doc_id(source: str, prefix: str | None) -> str:
    return source[len(prefix):] if prefix and source.startswith(prefix) else source


def yes_no_gold(question) -> str | None:
    """"yes" or "no" where that is the question's (first) gold answer, else None."""
    gold = normalize_answer(question.answers[0]) if question.answers else ""
    return gold if gold in ("yes", "no") else None


def score_record(out: dict, question, chunk_docs: dict[str, str], prefix: str | None, answers: bool = True) -> dict:
    """The metrics of one answered question (``out`` is the graph's final state)."""
    answer = out.get("answer", "")
    citations = out.get("citations") or []
    gold_yes_no = yes_no_gold(question)
    row: dict = {"answer": answer, "route": out.get("route"), "notes": out.get("notes") or [],
                 "citations": [c.get("source", "") for c in citations]}
    if question.answers and answers:
        bare = strip_citations(answer)
        row |= {"em": exact_match(bare, question.answers), "f1": round(token_f1(bare, question.answers), 4),
                "contains": contains_answer(bare, question.answers)}
        if gold_yes_no:
            row["gold_yes_no"] = gold_yes_no
    if answers:
        asked = out.get("standalone_question", question.question)
        row["cited_support"] = float(bool(citations) and support(answer, asked, citations) >= GROUNDED_MIN_SUPPORT)
    trace = out.get("trace") or []
    if question.relevant:
        first = next((e["ranking"] for e in trace if "ranking" in e), [])
        first_docs = [chunk_docs.get(c, c) for c in first]
        context_docs = [_doc_id(d.get("source", ""), prefix) for d in out.get("documents") or []]
        for name, docs in (("first", first_docs), ("context", context_docs)):
            row[f"{name}_recall@2"] = recall_at(docs, question.relevant, 2)
            row[f"{name}_recall@10"] = recall_at(docs, question.relevant, 10)
            row[f"{name}_ndcg@10"] = round(ndcg_at(docs, question.relevant), 4)
        row["context_all_supporting"] = float(set(question.relevant) <= set(context_docs))
    context = [d.get("text", "") for d in out.get("documents") or []]
    if question.answers and not gold_yes_no:
        # What the model was given holds the answer's words (a yes or a no is never quoted).
        row["context_answer"] = contains_answer(" ".join(context), question.answers)
    row["context_words"] = sum(len(text.split()) for text in context)
    row["llm_calls"] = out.get("llm_calls", 0)
    row["prompt_tokens"] = sum(e.get("prompt_tokens", 0) for e in trace)
    row["completion_tokens"] = sum(e.get("completion_tokens", 0) for e in trace)
    row["trace"] = trace
    return row


def failure_record(exc: BaseException, question) -> dict:
    """The record of a question whose graph run raised ``exc``: the error, and 0 for each metric
    the question has gold data for (answers: EM, F1, contains, the context holding the answer;
    relevant documents: recall and nDCG).
    """
    error = f"{type(exc).__name__}: {exc}"
    # The innermost frame, where it was raised (LangGraph's notes on the exception are left out).
    where = [f'File "{f.filename}", line {f.lineno}, in {f.name}' for f in traceback.extract_tb(exc.__traceback__)[-1:]]
    row: dict = {"status": "failed", "error": error, "where": where + [error], "cited_support": 0.0}
    if question.answers:
        row |= {"em": 0.0, "f1": 0.0, "contains": 0.0}
        if gold_yes_no := yes_no_gold(question):
            row["gold_yes_no"] = gold_yes_no
        else:
            row["context_answer"] = 0.0
    if question.relevant:
        row |= {key: 0.0 for key in RETRIEVAL_KEYS if key != "context_answer"}
    return row


def yes_no_balanced_accuracy(records: list[dict]) -> tuple[float | None, int]:
    """(mean of the accuracy on gold "yes" and on gold "no" questions, how many there were).

    Answering "yes" to everything scores 0.5. With only one of the two kinds present, the
    accuracy on that kind.

    Example:
        >>> yes_no_balanced_accuracy([{"gold_yes_no": "yes", "em": 1.0}, {"gold_yes_no": "yes", "em": 1.0},
        ...                           {"gold_yes_no": "no", "em": 0.0}, {"f1": 0.3}])
        (0.5, 3)
    """
    by_gold: dict[str, list[float]] = {}
    for r in records:
        if "gold_yes_no" in r:
            by_gold.setdefault(r["gold_yes_no"], []).append(r.get("em", 0.0))
    if not by_gold:
        return None, 0
    return round(statistics.mean(statistics.mean(v) for v in by_gold.values()), 4), sum(map(len, by_gold.values()))


def summarize(records: list[dict], configs: list[tuple[str, dict]], peaks: dict[str, float],
              costs: dict[str, dict] | None = None) -> list[dict]:
    """One row per configuration: quality over every question (errors scoring 0), cost over the
    questions that ran, errors counted, index build cost.
    """
    rows = []
    for name, _ in configs:
        mine = [r for r in records if r["config"] == name]
        ran = [r for r in mine if r["status"] == "ok"]
        errors = len(mine) - len(ran)
        # "failed" is the older name of "errors", still read by callers of run_eval.
        row = {"config": name, "questions": len(mine), "errors": errors, "failed": errors}
        for key in QUALITY_KEYS + RETRIEVAL_KEYS + COST_KEYS:
            values = [r[key] for r in (ran if key in COST_KEYS else mine) if key in r]
            row[key] = round(statistics.mean(values), 4) if values else None
        row["yes_no_balanced"], row["yes_no_questions"] = yes_no_balanced_accuracy(mine)
        seconds = sorted(r["seconds"] for r in ran)
        row["median_s"] = round(statistics.median(seconds), 2) if seconds else None
        row["p95_s"] = round(seconds[min(len(seconds) - 1, round(0.95 * (len(seconds) - 1)))], 2) if seconds else None
        # The peak of the process that ran the questions (kept in each record, so a resumed run reports it too).
        kept = [r["peak_rss_mb"] for r in mine if r.get("peak_rss_mb")]
        row["peak_rss_mb"] = max(kept) if kept else peaks.get(name)
        cost = (costs or {}).get(name) or {}
        row["index_chunks"], row["ingest_llm_calls"] = cost.get("chunks"), cost.get("ingest_llm_calls")
        rows.append(row)
    return rows


COLUMNS = [("config", "configuration"), ("questions", "questions"), ("errors", "errors"), ("em", "EM"), ("f1", "F1"),
           ("contains", "contains gold"), ("yes_no_balanced", "yes/no balanced accuracy"), ("yes_no_questions", "yes/no questions"),
           ("cited_support", "citations support answer"), ("context_all_supporting", "context holds all supporting"),
           ("context_answer", "context holds the answer"),
           ("first_recall@2", "first R@2"), ("first_recall@10", "first R@10"), ("first_ndcg@10", "first nDCG@10"),
           ("context_recall@10", "context R@10"), ("context_ndcg@10", "context nDCG@10"),
           ("context_words", "words given to the model"), ("llm_calls", "LLM calls"),
           ("prompt_tokens", "prompt tokens"), ("completion_tokens", "completion tokens"), ("median_s", "median s"),
           ("p95_s", "p95 s"), ("peak_rss_mb", "peak RSS MiB"), ("index_chunks", "chunks indexed"),
           ("ingest_llm_calls", "LLM calls at ingest")]


def markdown_table(summary: list[dict]) -> str:
    """The summary as a Markdown table; columns with no value in any row are left out."""
    shown = [(k, label) for k, label in COLUMNS if any(row.get(k) is not None for row in summary)]

    def cell(value):
        if value is None:
            return "–"
        if isinstance(value, float):
            return f"{value:.3f}" if value < 10 else f"{value:.0f}"
        return str(value)

    lines = ["| " + " | ".join(label for _, label in shown) + " |", "|" + "---|" * len(shown)]
    lines += ["| " + " | ".join(cell(row.get(k)) for k, _ in shown) + " |" for row in summary]
    return "\n".join(lines) + "\n"


def plot(summary: list[dict], path: Path) -> Path | None:
    """Quality against seconds and against LLM calls, one point per configuration (PNG)."""
    import matplotlib  # here, not at the top: with pyplot it takes about 0.5 s to import, and only the plot needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    quality = "f1" if any(r.get("f1") is not None for r in summary) else "context_ndcg@10"
    points = [r for r in summary if r.get(quality) is not None and r.get("median_s") is not None]
    if not points:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=110)
    for ax, cost, label in ((axes[0], "median_s", "median seconds per question"), (axes[1], "llm_calls", "LLM calls per question")):
        for r in points:
            ax.scatter(r[cost], r[quality], s=60)
            ax.annotate(r["config"], (r[cost], r[quality]), textcoords="offset points", xytext=(6, 4), fontsize=9)
        ax.set_xlabel(label)
        ax.set_ylabel({"f1": "answer F1", "context_ndcg@10": "context nDCG@10"}[quality])
        ax.grid(alpha=0.3)
        ax.set_xlim(left=0)
    fig.suptitle("Quality against cost")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def run_eval(run: EvalRun, indexes: EvalIndexes, build_graph: Callable[..., object], *, resume: bool = False,
             overwrite: bool = False, progress: bool = True, answer_style: str = "dataset",
             retrieval_only: bool = False) -> list[dict]:
    """Run every configuration over the questions; write records, results, table and plot; return the summary.

    ``build_graph`` is :func:`graphs.build_graph` (passed in by the caller, since the library does
    not import the graphs built on it), called as ``build_graph(components=...)``.

    ``answer_style`` "dataset" asks for short answers when the dataset has gold answers (they are
    short spans, graded by exact match and F1), else leaves the setting's own (by default "auto",
    chosen by each question); any other value is the answer style of every configuration. A
    configuration that sets ``answer_style`` itself keeps it.

    ``retrieval_only`` runs each configuration up to its final context and writes no answer (no
    answer-writing LLM call): retrieval and context columns only, for quick ablations.
    """
    if answer_style == "dataset":
        answer_style = "short" if run.dataset.has_answers else None

    out = run.out_dir
    out.mkdir(parents=True, exist_ok=True)
    records_file, meta_file = out / "records.jsonl", out / "run.json"
    meta = run.meta()
    done: dict[tuple[str, str], dict] = {}
    if records_file.exists() and not overwrite:
        if not resume:
            raise RunExists(f"{out} holds an earlier run: pass --resume to continue it or --overwrite to start again")
        previous = json.loads(meta_file.read_text()) if meta_file.exists() else {}
        if previous and (previous.get("corpus"), previous.get("dataset")) != (meta["corpus"], meta["dataset"]):
            raise RunExists(f"{out} holds a run of another dataset ({previous.get('dataset')}); choose another --out")
        for line in records_file.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
                done[(record["config"], record["id"])] = record
            except (ValueError, KeyError):
                continue  # a line cut short when the run was killed: that question runs again
    elif records_file.exists():
        records_file.unlink()
    meta_file.write_text(json.dumps(meta, indent=2) + "\n")

    graphs: dict[int, object] = {}
    peaks: dict[str, float] = {}
    costs: dict[str, dict] = {}
    total = len(run.configs) * len(run.questions)
    bar = tqdm(total=total, desc="eval", unit="question", disable=not progress)
    with records_file.open("a", encoding="utf-8") as sink:
        # Question by question, every configuration in turn: the machine's speed drifts over a long run
        # (30% on shared 2-core machines), and interleaving lets the drift fall on all of them alike.
        for question in run.questions:
            for name, overrides in run.configs:
                if (name, question.id) in done:
                    bar.update()
                    continue
                bar.set_postfix_str(name)
                indexed = indexes.for_config(overrides)
                costs[name] = indexed.cost
                graph = graphs.setdefault(id(indexed), build_graph(components=indexed.components))
                settings_only = {k: v for k, v in overrides.items() if k != "tree"}
                record = {"config": name, "id": question.id, "question": question.question, "gold": question.answers,
                          "relevant": sorted(question.relevant)}
                # Each configuration pays for its whole prompt: the model's KV cache would otherwise
                # serve a configuration the prompt the one before it just read, at a fraction of its cost.
                forget_prompt_caches()
                started = time.perf_counter()
                try:
                    configurable = {**({"answer_style": answer_style} if answer_style else {}), **settings_only}
                    if retrieval_only:
                        configurable["write_answer"] = False
                    if overrides.get("long_context") and question.documents and indexed.prefix:
                        # Long context reads the question's own documents, as the dataset lists them.
                        configurable["sources"] = [indexed.prefix + d for d in question.documents]
                    state = graph.invoke({"question": question.question}, {"configurable": configurable})
                    scored = score_record(state, question, indexed.chunk_docs, indexed.prefix, answers=not retrieval_only)
                    record |= {"status": "ok", **scored}
                except Exception as exc:  # noqa: BLE001 - any failure is recorded and the run goes on
                    record |= failure_record(exc, question)
                record["seconds"] = round(time.perf_counter() - started, 3)
                record["peak_rss_mb"] = peak_rss_mb()
                done[(name, question.id)] = record
                sink.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
                sink.flush()
                bar.update()
    for name, overrides in run.configs:
        costs.setdefault(name, indexes.for_config(overrides).cost)
        # One process runs every configuration, so this is the run's peak, the same for each.
        peaks[name] = peak_rss_mb()
    bar.close()
    run.records = [done[(name, q.id)] for name, _ in run.configs for q in run.questions if (name, q.id) in done]
    summary = summarize(run.records, run.configs, peaks, costs)
    (out / "summary.md").write_text(
        f"# {run.dataset.name}: {len(run.questions)} questions\n\n{markdown_table(summary)}", encoding="utf-8")
    plot(summary, out / "quality_vs_cost.png")
    results = {"meta": meta, "date": time.strftime("%Y-%m-%dT%H:%M:%S"), "summary": summary, "records": run.records}
    (out / "results.json").write_text(json.dumps(results, indent=1, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    return summary
