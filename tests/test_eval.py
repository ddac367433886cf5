"""`arag eval`: metrics against hand-computed values, the three dataset formats, and whole runs."""

from __future__ import annotations

import json
import math

import pytest
from scripted_llm import ScriptedChatModel

from arag.evaluation.configs import ConfigError, load_configs, select
from arag.evaluation.datasets import DatasetError, load_dataset
from arag.evaluation.metrics import (
    contains_answer,
    exact_match,
    ndcg_at,
    ndcg_from_scores,
    normalize_answer,
    recall_at,
    token_f1,
)
from graphs import build_graph

# --- metrics, computed by hand -------------------------------------------------------------


def test_answer_normalisation_and_scores():
    assert normalize_answer("  The  Eiffel-Tower, in PARIS! ") == "eiffeltower in paris"
    assert exact_match("An apple.", ["apple"]) == 1.0 and exact_match("apples", ["apple"]) == 0.0
    # prediction "new york city" vs gold "new york": precision 2/3, recall 1 -> F1 0.8
    assert token_f1("New York City", ["new york"]) == pytest.approx(0.8)
    # articles go before counting ("the the cat" -> "cat"); against "cat cat": precision 1, recall 1/2
    assert token_f1("the the cat", ["dog", "cat cat"]) == pytest.approx(2 * 1 * 0.5 / 1.5)
    assert token_f1("", ["Paris"]) == 0.0 and token_f1("the", ["a"]) == 1.0  # "the" and "a" both normalise to empty
    assert contains_answer("It was Chief of Protocol [1].", ["chief of protocol"]) == 1.0
    assert contains_answer("Protocols", ["protocol"]) == 0.0


def test_recall_counts_repeated_chunks_of_a_document_once():
    ranked = ["d1", "d1", "d3", "d2", "d2"]
    assert recall_at(ranked, {"d1", "d2"}, 2) == 0.5  # distinct top 2: d1, d3
    assert recall_at(ranked, {"d1", "d2"}, 3) == 1.0
    assert recall_at(ranked, set(), 3) == 0.0


def test_ndcg_by_hand_including_ties():
    # relevant at ranks 2 and 3 of distinct items: (1/log2 3 + 1/log2 4) / (1 + 1/log2 3)
    expected = (1 / math.log2(3) + 0.5) / (1 + 1 / math.log2(3))
    assert ndcg_at(["x", "a", "a", "b"], {"a", "b"}) == pytest.approx(expected)
    assert ndcg_at(["a"], {"a", "b", "c"}, k=10) == pytest.approx(1 / (1 + 1 / math.log2(3) + 0.5))
    # ties: the relevant item shares first place with one other -> mean of the two discounts
    assert ndcg_from_scores([2.0, 2.0, 1.0], ["x", "a", "y"], {"a"}) == pytest.approx((1 + 1 / math.log2(3)) / 2)
    # a scorer that ties everything gets the expected value, whatever the input order
    flat = [ndcg_from_scores([0.0] * 4, ids, {"a"}) for ids in (["a", "b", "c", "d"], ["d", "c", "b", "a"])]
    assert flat[0] == flat[1] == pytest.approx(sum(1 / math.log2(i + 2) for i in range(4)) / 4)
    # beyond k a tie group's positions count with discount 0
    assert ndcg_from_scores([1.0, 1.0], ["x", "a"], {"a"}, k=1) == pytest.approx(0.5)


# --- dataset formats ------------------------------------------------------------------------

PARAGRAPHS = {
    "Mara Olsen": "Mara Olsen was a Norwegian engineer who designed the Harbour Lighthouse in 1887.",
    "Harbour Lighthouse": "The Harbour Lighthouse stands on the north pier of Tromvik and still guides ships.",
    "Bergen Academy": "Bergen Academy trained engineers and painters from 1850 until a fire in 1921.",
    "Whale Oil": "Whale oil was the common lamp fuel until kerosene replaced it late in the century.",
    "Tromvik": "Tromvik is a fishing town in northern Norway with about two thousand inhabitants.",
    "Kerosene": "Kerosene lamps spread quickly after 1860 because the fuel was cheap and clean.",
}


def hotpot_row(qid, question, answer, supporting, others):
    contexts = [{"id": t, "title": t, "paragraph_text": PARAGRAPHS[t], "is_supporting": t in supporting}
                for t in supporting + others]
    return {"question_id": qid, "question_text": question, "answers_objects": [{"spans": [answer]}], "contexts": contexts}


HOTPOT = [
    hotpot_row("q1", "Who designed the lighthouse on the north pier of Tromvik?", "Mara Olsen",
               ["Mara Olsen", "Harbour Lighthouse"], ["Bergen Academy", "Whale Oil"]),
    hotpot_row("q2", "When did the academy that trained engineers burn down?", "1921",
               ["Bergen Academy"], ["Mara Olsen", "Kerosene"]),
    hotpot_row("q3", "What fuel replaced whale oil in lamps?", "kerosene",
               ["Whale Oil", "Kerosene"], ["Tromvik", "Harbour Lighthouse"]),
]


def write_jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def test_hotpotqa_format_pools_paragraphs_by_title(tmp_path):
    data = load_dataset(write_jsonl(tmp_path / "hotpot.jsonl", HOTPOT))
    assert data.format == "hotpotqa" and len(data.questions) == 3
    assert {d["id"] for d in data.corpus} == set(PARAGRAPHS)  # 12 contexts, 6 distinct titles
    q1 = data.questions[0]
    assert (q1.id, q1.answers, q1.relevant) == ("q1", ["Mara Olsen"], {"Mara Olsen", "Harbour Lighthouse"})
    assert data.corpus_hash() == load_dataset(tmp_path / "hotpot.jsonl").corpus_hash()


def test_flashrag_and_beir_formats(tmp_path):
    qa = load_dataset(write_jsonl(tmp_path / "qa.jsonl", [{"id": "a", "question": "Who?", "golden_answers": ["Ada", "Ada L."]}]))
    assert qa.format == "flashrag" and qa.questions[0].answers == ["Ada", "Ada L."] and not qa.has_judgments

    beir = tmp_path / "scifact"
    (beir / "qrels").mkdir(parents=True)
    write_jsonl(beir / "corpus.jsonl", [{"_id": "d1", "title": "T1", "text": "one"}, {"_id": 2, "title": "", "text": "two"}])
    write_jsonl(beir / "queries.jsonl", [{"_id": "q1", "text": "first?"}, {"_id": "q2", "text": "second?"}])
    (beir / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\t2\t0\nq2\t2\t2\n")
    data = load_dataset(beir)
    assert data.format == "beir" and data.name == "scifact"
    assert {q.id: q.relevant for q in data.questions} == {"q1": {"d1"}, "q2": {"2"}}  # grade 0 is not relevant
    with pytest.raises(DatasetError, match="no split 'dev'"):
        load_dataset(beir, split="dev")


@pytest.mark.parametrize("lines, message", [
    (['{"question": "Who?", "golden_answers": ["x"]}', "{not json"], r"bad\.jsonl:2: not valid JSON"),
    (['{"question": "Who?", "golden_answers": "x"}'], r"bad\.jsonl:1: field 'golden_answers' should be list"),
    (['{"question": "Who?", "golden_answers": ["x"]}', "", '{"question": "Why?"}'], r"bad\.jsonl:3: missing field 'golden_answers'"),
    (['["a list"]'], r"bad\.jsonl:1: expected a JSON object"),
    (['{"prompt": "hi"}'], r"bad\.jsonl:1: unknown format"),
    ([""], r"no questions"),
    (['{"question_text": "Q", "contexts": [{"title": "T"}], "answers_objects": []}'], r"bad\.jsonl:1: each context needs"),
])
def test_malformed_files_are_refused_with_the_line(tmp_path, lines, message):
    with pytest.raises(DatasetError, match=message):
        load_dataset(write_jsonl(tmp_path / "bad.jsonl", lines))


def test_malformed_beir_qrels_name_the_line(tmp_path):
    beir = tmp_path / "b"
    (beir / "qrels").mkdir(parents=True)
    write_jsonl(beir / "corpus.jsonl", [{"_id": "d1", "text": "one"}])
    write_jsonl(beir / "queries.jsonl", [{"_id": "q1", "text": "first?"}])
    (beir / "qrels" / "test.tsv").write_text("q1\td1\t1\nq1\td9\t1\n")
    with pytest.raises(DatasetError, match=r"test\.tsv:2: document 'd9' is not in corpus"):
        load_dataset(beir)
    (beir / "qrels" / "test.tsv").write_text("q1\td1\n")
    with pytest.raises(DatasetError, match=r"test\.tsv:1: expected query-id"):
        load_dataset(beir)
    (tmp_path / "notbeir").mkdir()
    with pytest.raises(DatasetError, match="BEIR form"):
        load_dataset(tmp_path / "notbeir")
    with pytest.raises(DatasetError, match="no such file"):
        load_dataset(tmp_path / "missing.jsonl")


def test_configuration_files_are_checked(tmp_path):
    assert {"naive", "fast", "agentic"} <= set(load_configs())
    bad = tmp_path / "c.toml"
    for text, message in [('[x]\nprofile = "warp"', "unknown profile"), ('[x]\ntop_kk = 3', "unknown setting"),
                          ('[x]\ntop_k = 0', "invalid"), ("[x", "not valid TOML"), ('x = 1', "must be a table")]:
        bad.write_text(text)
        with pytest.raises(ConfigError, match=message):
            load_configs(bad)
    with pytest.raises(ConfigError, match="unknown configuration"):
        select(load_configs(), "naive,turbo")


# --- whole runs -----------------------------------------------------------------------------


@pytest.fixture
def hotpot(tmp_path, settings):
    return settings, load_dataset(write_jsonl(tmp_path / "hotpot.jsonl", HOTPOT))


def test_each_token_vector_coding_is_measured_on_an_index_built_with_it(hotpot, monkeypatch):
    """A token-vector file keeps its first codebook, so an index built under another codec (or an
    earlier default) must not stand in for the one a configuration or the settings ask for.
    """
    from arag.evaluation.runner import EvalIndexes
    from arag.index import token_store

    settings, data = hotpot
    llm = ScriptedChatModel(default="Mara Olsen [1]")
    indexes = EvalIndexes(settings, data, llm=llm, progress=False)
    default = indexes.for_config({}).components.settings
    int8 = indexes.for_config({"token_vector_codec": "int8"}).components.settings
    assert default.token_vector_codec == settings.token_vector_codec and int8.token_vector_codec == "int8"
    assert default.collection != int8.collection
    assert indexes.for_config({"profile": "naive"}).components.settings.collection == default.collection
    # The settings' own codec changed (as a new default would): their index is the int8 one, not the default's.
    moved = EvalIndexes(settings.model_copy(update={"token_vector_codec": "int8"}), data, llm=llm, progress=False)
    assert moved.for_config({}).components.settings.collection == int8.collection
    # A bare "residual" names the store's default shape, which has changed before: the name follows the shape.
    assert settings.token_vector_codec == "residual"
    monkeypatch.setitem(token_store.RESIDUAL_DEFAULTS, "residual_bits", 2)
    assert EvalIndexes(settings, data, llm=llm, progress=False).for_config({}).components.settings.collection \
        not in (default.collection, int8.collection)


def test_eval_run_writes_records_table_and_plot_and_resumes(tmp_path, hotpot):
    from arag.evaluation.runner import EvalIndexes, EvalRun, RunExists, run_eval

    settings, data = hotpot
    llm = ScriptedChatModel(default="Mara Olsen [1]")
    indexes = EvalIndexes(settings, data, llm=llm, progress=False)
    configs = select(load_configs(), "naive,fast")
    out = tmp_path / "run"
    summary = run_eval(EvalRun(out, data, configs, limit=2), indexes, build_graph, progress=False)
    indexed = indexes.for_config({})
    assert indexed.components.settings.collection.startswith("eval-") and indexed.components.store.count() == 6
    assert settings.collection == "documents"  # the user's collection is untouched
    assert [row["config"] for row in summary] == ["naive", "fast"]
    naive = summary[0]
    assert naive["questions"] == 2 and naive["failed"] == 0 and naive["llm_calls"] == 1.0
    # q1 answered exactly; q2 ("1921") not: EM 0.5, contains 0.5
    assert naive["em"] == 0.5 and naive["contains"] == 0.5
    assert 0 < naive["first_recall@10"] <= 1 and 0 < naive["context_ndcg@10"] <= 1
    assert naive["median_s"] > 0 and naive["peak_rss_mb"] > 100 and naive["context_words"] > 10
    assert naive["index_chunks"] == 6 and naive["ingest_llm_calls"] == 0
    results = json.loads((out / "results.json").read_text())
    records = results["records"]
    assert len(records) == 4 and {r["config"] for r in records} == {"naive", "fast"}
    first = records[0]
    assert first["answer"].startswith("Mara Olsen") and first["citations"] and first["trace"]
    assert first["relevant"] == ["Harbour Lighthouse", "Mara Olsen"]
    # [1] supports "Mara Olsen" exactly when the first source given to the model names her.
    given = next(e for e in first["trace"] if e["node"] == "retrieve")["ranking"][0]
    first_source_names_her = "Mara Olsen" in indexed.components.store.collection.get(ids=[given])["documents"][0]
    assert first["cited_support"] == float(first_source_names_her)
    table = (out / "summary.md").read_text()
    assert "| naive | 2 | 0 |" in table and "context nDCG@10" in table
    assert (out / "quality_vs_cost.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # A second run into the same folder must say how to proceed.
    with pytest.raises(RunExists, match="--resume"):
        run_eval(EvalRun(out, data, configs, limit=3), indexes, build_graph, progress=False)
    # Resuming with one more question asks only that question of each configuration.
    calls_before = len(llm.prompts)
    summary = run_eval(EvalRun(out, data, configs, limit=3), indexes, build_graph, resume=True, progress=False)
    assert [row["questions"] for row in summary] == [3, 3]
    asked = llm.prompts[calls_before:]
    assert asked and all("What fuel replaced whale oil" in p for p in asked)
    assert len((out / "records.jsonl").read_text().splitlines()) == 6


def test_configurations_that_index_differently_get_their_own_index(tmp_path, hotpot):
    from arag.evaluation.runner import EvalIndexes, EvalRun, run_eval

    settings, data = hotpot
    llm = ScriptedChatModel(default="Mara Olsen [1]")
    indexes = EvalIndexes(settings, data, llm=llm, progress=False)
    configs = [("plain", {"profile": "naive"}), ("tree", {"profile": "naive", "tree": True}),
               ("parent", {"profile": "naive", "index_strategy": "parent", "chunk_tokens": 32})]
    summary = {r["config"]: r for r in run_eval(EvalRun(tmp_path / "v", data, configs, limit=1), indexes, build_graph, progress=False)}
    names = {key: i.components.settings.collection for key, i in indexes.built.items()}
    assert len(set(names.values())) == 3
    assert summary["plain"]["ingest_llm_calls"] == 0 and summary["tree"]["ingest_llm_calls"] >= 1
    assert summary["tree"]["index_chunks"] > summary["plain"]["index_chunks"]  # the summaries joined the chunks
    parent = indexes.for_config({"index_strategy": "parent", "chunk_tokens": 32})
    assert parent.components.store.index_strategy == "parent"
    assert all(r["failed"] == 0 for r in summary.values())


def test_a_failing_question_is_recorded_and_the_run_goes_on(tmp_path, hotpot):
    from arag.evaluation.runner import EvalIndexes, EvalRun, run_eval
    from arag.llms.gguf import ModelUnavailable

    settings, data = hotpot
    llm = ScriptedChatModel(script=["Mara Olsen [1].", ModelUnavailable("local-1.5b.gguf is missing"), "Kerosene [1]."])
    out = tmp_path / "failing"
    indexes = EvalIndexes(settings, data, llm=llm, progress=False)
    summary = run_eval(EvalRun(out, data, select(load_configs(), "naive")), indexes, build_graph,
                       progress=False)
    assert summary[0]["questions"] == 3 and summary[0]["errors"] == 1
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    assert [r["status"] for r in records] == ["ok", "failed", "ok"]
    assert "ModelUnavailable" in records[1]["error"] and "missing" in records[1]["error"]
    assert summary[0]["em"] == pytest.approx(2 / 3, abs=1e-4)  # the failed question counts as a wrong answer
    assert "| naive | 3 | 1 |" in (out / "summary.md").read_text()


@pytest.mark.parametrize("answer_style, prompt_says, traced", [
    ("dataset", "Only give me the answer", None),  # gold answers: short, whatever the setting
    ("sentence", "Answer in one short sentence", None),
    ("auto", "Only give me the answer", "short"),  # who, when, "what fuel": each asks for a phrase
])
def test_eval_asks_for_the_answer_style_it_is_told(tmp_path, hotpot, answer_style, prompt_says, traced):
    from arag.evaluation.runner import EvalIndexes, EvalRun, run_eval

    settings, data = hotpot
    llm = ScriptedChatModel(default="Mara Olsen")
    out = tmp_path / answer_style
    run_eval(EvalRun(out, data, select(load_configs(), "naive")), EvalIndexes(settings, data, llm=llm, progress=False),
             build_graph, progress=False, answer_style=answer_style)
    assert len(llm.prompts) == 3 and all(prompt_says in prompt for prompt in llm.prompts)
    records = json.loads((out / "results.json").read_text())["records"]
    generated = [next(e for e in r["trace"] if e["node"] == "generate") for r in records]
    assert [e.get("answer_style") for e in generated] == [traced] * 3


def test_a_question_whose_graph_raises_is_an_error_scored_zero_not_a_success(tmp_path, hotpot):
    from arag.evaluation.runner import EvalIndexes, EvalRun, run_eval

    settings, data = hotpot
    # A bug in the model's wrapper: not a failed model call, so it is not turned into a note and
    # propagates out of the graph; the run records it and goes on.
    llm = ScriptedChatModel(script=["Mara Olsen [1].", TypeError("bad keyword argument 'max_tokens'"), "Kerosene [1]."])
    out = tmp_path / "raising"
    summary = run_eval(EvalRun(out, data, select(load_configs(), "naive")), EvalIndexes(settings, data, llm=llm, progress=False),
                       build_graph, progress=False)
    row = summary[0]
    assert row["questions"] == 3 and row["errors"] == 1
    records = json.loads((out / "results.json").read_text())["records"]
    failed = records[1]
    assert failed["status"] == "failed" and failed["error"] == "TypeError: bad keyword argument 'max_tokens'"
    assert "answer" not in failed and "scripted_llm.py" in failed["where"][0] and failed["where"][1] == failed["error"]
    assert (failed["em"], failed["f1"], failed["contains"], failed["cited_support"]) == (0.0, 0.0, 0.0, 0.0)
    assert failed["first_recall@10"] == failed["context_ndcg@10"] == 0.0
    assert [r["em"] for r in records] == [1.0, 0.0, 1.0]
    assert row["em"] == pytest.approx(2 / 3, abs=1e-4) and row["f1"] == pytest.approx(2 / 3, abs=1e-4)
    # Retrieval is averaged over all three too; cost only over the two that ran.
    ran = [r for r in records if r["status"] == "ok"]
    assert row["context_ndcg@10"] == pytest.approx(sum(r["context_ndcg@10"] for r in ran) / 3, abs=1e-4)
    assert row["llm_calls"] == 1.0
    table = (out / "summary.md").read_text()
    assert "| configuration | questions | errors | EM |" in table and "| naive | 3 | 1 | 0.667 |" in table


def test_eval_command_line_errors(tmp_path):
    from arag.cli import main

    bad = write_jsonl(tmp_path / "bad.jsonl", ['{"prompt": 1}'])
    assert main(["--data-dir", str(tmp_path / "d"), "eval", "--dataset", str(bad)]) == 2
    good = write_jsonl(tmp_path / "qa.jsonl", [{"id": "a", "question": "Who?", "golden_answers": ["x"]}])
    assert main(["--data-dir", str(tmp_path / "d"), "eval", "--dataset", str(good), "--configs", "turbo"]) == 2
    # FlashRAG questions need an ingested collection to ask.
    assert main(["--data-dir", str(tmp_path / "d"), "eval", "--dataset", str(good), "--configs", "naive"]) == 2
    assert main(["--data-dir", str(tmp_path / "d"), "eval", "--dataset", str(good), "--limit", "0"]) == 2


def test_retrieval_only_stops_at_the_context_and_writes_no_answer(tmp_path, hotpot):
    from arag.evaluation.runner import EvalIndexes, EvalRun, run_eval

    settings, data = hotpot
    llm = ScriptedChatModel()  # any call would raise: none may be made (naive writes no query either)
    out = tmp_path / "retrieval"
    summary = run_eval(EvalRun(out, data, select(load_configs(), "naive")), EvalIndexes(settings, data, llm=llm, progress=False),
                       build_graph, progress=False, retrieval_only=True)
    assert llm.prompts == [] and all(row["errors"] == 0 and row["llm_calls"] == 0 for row in summary)
    for row in summary:
        assert row["f1"] is None and row["em"] is None and row["context_recall@10"] is not None
        assert 0.0 <= row["context_all_supporting"] <= 1.0
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    generate = [e for r in records for e in r["trace"] if e["node"] == "generate"]
    assert generate and all(e["skipped"].startswith("retrieval only") for e in generate)


def test_the_machine_record_names_only_kernels_this_cpu_has():
    """A run's machine record says which of llama.cpp's kernels the build uses; a build that used one
    the CPU lacks would die on its first prompt (``make install`` compiles for the CPU at hand).
    """
    from pathlib import Path

    from arag.evaluation.runner import machine
    from arag.llms.llamacpp import LLAMA_CPP_KERNELS

    record = machine()
    kernels = record["llama_cpp_kernels"]
    assert kernels is not None, "llama-cpp-python is installed by make install"
    assert set(kernels) <= set(LLAMA_CPP_KERNELS)
    flags = set(next(line.split(":", 1)[1].split() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("flags")))
    cpu_flag = {"AVX2": "avx2", "AVX512": "avx512f", "AVX512_VNNI": "avx512_vnni", "AMX_INT8": "amx_int8"}
    assert {cpu_flag[name] for name in kernels} <= flags
    if "avx2" in flags:
        assert "AVX2" in kernels, "llama.cpp is compiled for the CPU at hand"


def test_a_copied_data_directory_indexes_the_corpus_once(tmp_path, hotpot):
    """The eval collection is keyed by the corpus file's path inside the data directory; a copy of the
    directory must not keep the original path's chunks beside the copy's (every paragraph twice).
    """
    import shutil

    from arag.evaluation.runner import index_corpus

    settings, data = hotpot
    first = index_corpus(settings, data, progress=False)
    assert first.components.store.count() == 6
    copy = settings.model_copy(update={"data_dir": tmp_path / "copied-data"})
    shutil.copytree(settings.data_dir, copy.data_dir)
    again = index_corpus(copy, data, progress=False)
    store = again.components.store
    assert store.count() == 6
    files = {meta["file"] for _, meta in store.iter_metadata()}
    assert files == {str((copy.data_dir / "eval" / f"{data.corpus_hash()}.jsonl").resolve())}
    assert set(again.chunk_docs.values()) == set(first.chunk_docs.values())


def test_the_context_is_scored_for_holding_the_gold_answer_except_yes_or_no():
    from types import SimpleNamespace

    from arag.evaluation.runner import failure_record, score_record

    out = {"answer": "", "documents": [{"source": "a", "text": "The Harbour Lighthouse was designed by Mara Olsen."},
                                       {"source": "b", "text": "Kerosene lamps spread after 1860."}], "trace": []}

    def question(answers):
        return SimpleNamespace(question="Who?", answers=answers, relevant={"a"})

    assert score_record(out, question(["Mara Olsen"]), {}, None, answers=False)["context_answer"] == 1.0
    assert score_record(out, question(["1921"]), {}, None, answers=False)["context_answer"] == 0.0
    # A yes or a no is never quoted by a source, so it has no such score; nor has a failed run of one.
    assert "context_answer" not in score_record(out, question(["yes"]), {}, None, answers=False)
    assert "context_answer" not in failure_record(RuntimeError("x"), question(["no"]))
    assert failure_record(RuntimeError("x"), question(["1921"]))["context_answer"] == 0.0
