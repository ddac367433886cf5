"""Training pairs, hard negatives, real (tiny) fine-tunes, calibration and the swap rule."""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys

import numpy as np
import pytest
from conftest import MODELS_DIR, REPO
from scripted_llm import ScriptedChatModel

from arag.llms.usage import LLMUsage
from arag.model_registry import ModelRegistry
from arag.relevance.calibration import Calibrator, threshold_metrics
from arag.runtime.components import Components
from arag.training.pairs import (
    Passage,
    TrainingPair,
    clean_pairs,
    passages_from_store,
    sample_passages,
    split_pairs,
    synthetic_pairs,
    unsupervised_pairs,
)

TUTORIAL = REPO / "arag" / "samples" / "python-tutorial"


def tutorial_records(limit: int = 40) -> list[dict]:
    """Real paragraphs (of the bundled tutorial pages) as JSONL records, one document each."""
    records = []
    for page in sorted(TUTORIAL.glob("*.rst")):
        for n, block in enumerate(page.read_text(encoding="utf-8").split("\n\n")):
            text = " ".join(block.split())
            if len(text.split()) >= 25 and not re.match(r"^[.:=*-]", text):
                records.append({"id": f"{page.stem}-{n}", "title": f"{page.stem} {n}", "text": text})
    return records[:limit]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A 40-paragraph collection ingested once for the module, copied per test that changes it."""
    from arag.embeddings.embedder import Embedder, packaged_minilm_dir
    from arag.index.store import ChunkStore
    from arag.ingestion.ingest import Ingestor
    from arag.settings import Settings

    root = tmp_path_factory.mktemp("corpus")
    path = root / "tutorial.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in tutorial_records()), encoding="utf-8")
    settings = Settings(data_dir=root / "data", models_dir=MODELS_DIR)
    embedder = Embedder(packaged_minilm_dir())
    Ingestor(settings, embedder, ChunkStore(settings, embedder.model_id, embedder.dim)).ingest([path], progress=False)
    return settings


def copy_corpus(corpus, tmp_path):
    import shutil

    shutil.copytree(corpus.data_dir, tmp_path / "data")
    return corpus.model_copy(update={"data_dir": tmp_path / "data"})


def test_unsupervised_pairs_come_in_three_kinds_without_copies():
    text = ("The interpreter reads commands from a terminal. It prints a prompt before each line. "
            "A blank line ends a multi-line statement. Typing an end-of-file character exits it.")
    passages = [Passage(f"c{i}", f"doc{i}", f"Interpreter {i}", text) for i in range(3)]
    pairs = clean_pairs(unsupervised_pairs(passages, random.Random(1)))
    assert {p.kind for p in pairs} == {"ict", "crop", "title"}
    for pair in pairs:
        if pair.kind == "ict":
            # Inverse cloze: the query sentence is no longer in its positive.
            assert pair.query not in pair.positive and pair.query in text
        if pair.kind != "title":
            assert pair.query.lower() not in pair.positive.lower()
    assert len({p.query.lower() for p in pairs}) == len(pairs)


def test_clean_pairs_drops_short_long_duplicate_and_copied_queries():
    positive = "Virtual environments keep the packages of one project apart from another's."
    pairs = [
        TrainingPair("packages", "a", positive, "d", "synthetic"),  # too short
        TrainingPair("why " * 50, "a", positive, "d", "synthetic"),  # too long
        TrainingPair("keep the packages of one project", "a", positive, "d", "synthetic"),  # copied
        TrainingPair("How do I isolate project dependencies?", "a", positive, "d", "synthetic"),
        TrainingPair("how do I isolate project dependencies", "a", positive, "d", "synthetic"),  # duplicate
    ]
    assert [p.query for p in clean_pairs(pairs)] == ["How do I isolate project dependencies?"]


def test_held_out_split_keeps_documents_apart():
    pairs = [TrainingPair(f"query number {i}", f"c{i}", "text", f"doc{i % 10}", "ict") for i in range(50)]
    train, held = split_pairs(pairs, 0.2, random.Random(0))
    assert len(train) + len(held) == 50 and held
    assert not {p.source for p in train} & {p.source for p in held}


def test_sample_is_a_stable_prefix():
    passages = [Passage(f"c{i}", "d", "", "x") for i in range(50)]
    assert sample_passages(passages, 20, 7)[:10] == sample_passages(passages, 10, 7)


def test_synthetic_pairs_ask_the_llm_once_per_passage_and_resume_from_cache(tmp_path):
    passages = [Passage("c1", "d1", "venv", "The venv module creates lightweight virtual environments with their own site directories."),
                Passage("c2", "d2", "pip", "pip installs packages from the Python Package Index into the active environment.")]
    llm = ScriptedChatModel(script=['{"query": "how do I make an isolated python environment"}',
                                    'not json at all', '{"query": "which tool installs packages from PyPI"}'])
    usage = LLMUsage()
    cache = tmp_path / "queries.jsonl"
    pairs = synthetic_pairs(passages, llm, random.Random(0), usage, cache=cache, progress=False)
    assert [p.query for p in pairs] == ["how do I make an isolated python environment", "which tool installs packages from PyPI"]
    assert all(p.kind == "synthetic" and p.positive.startswith(("venv\n", "pip\n")) for p in pairs)
    assert "Write " in llm.prompts[0] and "venv module" in llm.prompts[0]
    assert usage.calls == 3  # the invalid reply was repaired by a second call
    again = ScriptedChatModel()  # no script: any call would fail the test
    assert synthetic_pairs(passages, again, random.Random(0), LLMUsage(), cache=cache, progress=False) == pairs
    assert again.prompts == []


def test_negatives_come_from_below_the_skipped_top_ranks():
    from arag.training.negatives import attach_negatives

    passages = [Passage(f"c{i}", f"d{i}", "", f"text {i}") for i in range(12)]
    pair = TrainingPair("a query about text", "c0", "text 0", "d0", "ict")
    lexical = [["c0", "c1", "c2", "c3", "c4", "c5"]]
    dense = [["c6", "c7", "c0", "c8", "c9"]]
    for seed in range(20):
        [mined] = attach_negatives([pair], passages, lexical, dense, skip=2, count=5, rng=random.Random(seed))
        # Below rank 2 of either ranking, never the positive: six candidates for five places.
        assert set(mined.negative_ids) < {"c2", "c3", "c4", "c5", "c8", "c9"} and len(mined.negative_ids) == 5
        assert mined.negatives == [f"text {n[1:]}" for n in mined.negative_ids]


def test_hard_negatives_mined_from_the_index_avoid_the_positive_document(corpus):
    from arag.training.negatives import mine_hard_negatives

    parts = Components(corpus)
    passages = passages_from_store(parts.store)
    pairs = clean_pairs(unsupervised_pairs(passages, random.Random(0)))[:30]
    mined = mine_hard_negatives(pairs, passages, parts.embedder, parts.store, parts.lexical,
                                skip=2, count=4, rng=random.Random(0), progress=False)
    source = {p.id: p.source for p in passages}
    text = {p.id: p.text for p in passages}
    for pair in mined:
        assert len(pair.negatives) == 4 and pair.positive_id not in pair.negative_ids
        assert all(source[n] != pair.source for n in pair.negative_ids)
        assert all(neg.endswith(text[n]) for n, neg in zip(pair.negative_ids, pair.negatives))


def test_calibration_is_monotone_and_bounded():
    rng = np.random.default_rng(0)
    scores = np.concatenate([rng.normal(2, 1, 200), rng.normal(-1, 1, 200)])
    labels = np.array([1] * 200 + [0] * 200)
    grid = np.linspace(-6, 6, 61)
    for method in ("platt", "isotonic"):
        cal = Calibrator.fit(scores, labels, method=method)
        p = cal(grid)
        assert ((0 <= p) & (p <= 1)).all() and (np.diff(p) >= -1e-12).all()
        assert cal([4.0])[0] > 0.9 and cal([-3.0])[0] < 0.1
    with pytest.raises(ValueError, match="both relevant and irrelevant"):
        Calibrator.fit([0.1, 0.2], [1, 1])


def score_lists(rng, n: int, with_positive: bool = True):
    """Candidate lists of 10 whose scores sit at a level of their own (as questions' do); one positive."""
    lists = []
    for _ in range(n):
        level = rng.normal(0, 2)
        scores = level + rng.normal(0, 1, 10)
        if with_positive:
            scores[0] = level + 3 + rng.normal(0, 0.5)
        lists.append(scores)
    return lists


def test_set_aware_calibration_grades_lists_better_and_stays_monotone_within_one():
    from types import SimpleNamespace

    from arag.training.trainer import calibrate

    rng = np.random.default_rng(4)
    train = score_lists(rng, 150)
    candidates = [(SimpleNamespace(positive_id="c0"), [f"c{i}" for i in range(10)], []) for _ in train]
    set_aware, _ = calibrate(candidates, train)
    absolute = Calibrator.fit(np.concatenate(train), np.tile([1] + [0] * 9, len(train)))
    assert set_aware.set_weight > 0 and set_aware.slope >= 0

    test = score_lists(rng, 150)
    labels = np.tile([1] + [0] * 9, len(test))
    aware = threshold_metrics(np.concatenate([set_aware(s) for s in test]), labels)
    plain = threshold_metrics(np.concatenate([absolute(s) for s in test]), labels)
    assert aware["accuracy"] > plain["accuracy"] + 0.05 and aware["accuracy"] > 0.95
    # Without a relevant candidate the best of a list is no longer a sure yes.
    empty = score_lists(rng, 150, with_positive=False)
    assert np.mean([set_aware(s).max() >= 0.5 for s in empty]) < 0.5
    one = test[0]
    p = set_aware(one)
    assert ((0 <= p) & (p <= 1)).all() and (np.diff(p[np.argsort(one)]) >= -1e-12).all()
    saved = Calibrator(**set_aware.__dict__)
    assert np.allclose(saved(one), p)


def train_cli(settings, kind, *extra):
    env = {"ARAG_MODELS_DIR": str(MODELS_DIR), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "OMP_WAIT_POLICY": "PASSIVE", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.run(
        [sys.executable, "-m", "arag", "--data-dir", str(settings.data_dir), f"train-{kind}", "--pairs", "unsupervised",
         "--steps", "2", "--batch-size", "4", "--negatives-per-step", "1", "--query-max-len", "24",
         "--passage-max-len", "64", "--json", "--quiet", *extra],
        capture_output=True, text=True, timeout=600, env=env,
    )


@pytest.fixture(scope="module")
def trained_reranker(corpus, tmp_path_factory):
    """A reranker fine-tuned for 2 steps through the CLI, kept aside (not activated)."""
    settings = copy_corpus(corpus, tmp_path_factory.mktemp("reranker"))
    done = train_cli(settings, "reranker", "--eval-queries", "8", "--no-activate")
    assert done.returncode == 0, done.stderr[-2000:]
    return settings, json.loads(done.stdout)


def test_tiny_reranker_fine_tune_writes_a_loadable_calibrated_model(trained_reranker):
    from arag.relevance.scorers import CrossEncoderScorer

    settings, result = trained_reranker
    model_dir = ModelRegistry(settings).versions("reranker")[-1]
    assert str(model_dir) == result["model_dir"] and result["in_use"] is False
    card = json.loads((model_dir / "card.json").read_text())
    assert card["kind"] == "reranker" and card["data"]["mode"] == "unsupervised" and card["config"]["max_steps"] == 2
    assert set(card["metrics"]["trained"]) >= {"ndcg@10", "recall@1", "mrr@10"}
    assert (model_dir / "CARD.md").read_text().startswith("# reranker reranker-v1") and "in use: no." in (model_dir / "CARD.md").read_text()
    assert card["inference"] == "onnxruntime int8" and (model_dir / "model.int8.onnx").exists()
    passages = ["Type quit() to exit.", "Lists hold items.", "The interpreter prints a prompt before each line. " * 4]
    onnx = CrossEncoderScorer(model_dir)
    torch_scores = CrossEncoderScorer(model_dir, backend="torch").score("how do I exit the interpreter", passages)
    scores = onnx.score("how do I exit the interpreter", passages)
    assert onnx.backend == "onnx" and scores.shape == (3,) and np.isfinite(scores).all()
    assert np.abs(scores - torch_scores).max() < 0.5  # int8 weights: close to, not equal to, the fp32 logits
    cal = Calibrator.load(model_dir / "calibration.json")
    assert 0.0 <= cal([scores.max()])[0] <= 1.0
    assert ModelRegistry(settings).active_dir("reranker") is None  # --no-activate
    assert "link_weights" in card["metrics"] and card["seconds"]["fit_links"] >= 0


def test_graph_grades_and_reranks_with_the_trained_reranker(trained_reranker):
    from graphs import build_graph

    settings, result = trained_reranker
    ModelRegistry(settings).activate("reranker", {"dir": result["model_dir"]})
    llm = ScriptedChatModel(default="The interpreter exits on an end-of-file character [1].")
    graph = build_graph(components=Components(settings.model_copy(update={"reflect": False, "relevance_threshold": 0.0}), llm=llm))
    out = graph.invoke({"question": "How do I leave the interactive interpreter?"})
    grade = next(e for e in out["trace"] if e["node"] == "grade_documents")
    rerank = next(e for e in out["trace"] if e["node"] == "rerank")
    assert grade["scorer"] == "cross-encoder" and rerank["scorer"] == "cross-encoder"
    assert all(0.0 <= g["relevance"] <= 1.0 for g in grade["grades"])
    order = [d["relevance"] for d in rerank["order"]]
    assert order == sorted(order, reverse=True) and rerank["scored_here"] == 0
    assert llm.unexpected == 0


def force_ndcg(monkeypatch, ndcg_of):
    """Make the trainer's dense evaluation report ``ndcg_of(model directory)`` as nDCG@10."""
    from arag.training import trainer

    real = trainer.evaluate_dense
    monkeypatch.setattr(trainer, "evaluate_dense",
                        lambda emb, *a: {**real(emb, *a), "ndcg@10": ndcg_of(str(emb.model_dir))})


def test_embedder_replaces_the_index_model_only_when_it_wins(corpus, tmp_path, monkeypatch):
    from arag.index.token_store import TokenVectorStore, token_store_path
    from arag.training import trainer
    from arag.training.finetune import FineTuneConfig

    settings = copy_corpus(corpus, tmp_path)
    chunks = Components(settings).store.count()
    old_tokens = token_store_path(settings.data_dir, Components(settings).store.name)
    assert old_tokens.exists()
    cfg = FineTuneConfig(max_steps=2, batch_size=4, group_size=2, query_max_len=24, passage_max_len=64)
    options = trainer.PairOptions(mode="unsupervised")

    registry = ModelRegistry(settings)
    # Force the verdict both ways: the rule, not the tiny model's luck, is under test here.
    force_ndcg(monkeypatch, lambda model_dir: 1.0 if "embedder-v" in model_dir else 0.5)
    won = trainer.train_embedder(Components(settings), options, cfg, progress=False)
    assert won.won and registry.active_dir("embedder") == won.model_dir
    parts = Components(settings)
    new_embedder = parts.embedder
    # The trained model runs as the fp32 model it replaced did, and its collection records so.
    assert new_embedder.model_dir == won.model_dir and new_embedder.backend == "onnx"
    assert parts.store.name == f"{settings.collection}--{won.model_dir.name}" and parts.store.count() == chunks
    # The new model's token vectors were kept from the re-embedding pass; the old model's went with its collection.
    texts = {meta["text_hash"] for _, meta in parts.store.iter_metadata()}
    tokens = TokenVectorStore(token_store_path(settings.data_dir, parts.store.name), new_embedder.model_id)
    assert len(tokens) == len(texts) and set(tokens.get(texts)) == texts
    assert not old_tokens.exists()
    hits = parts.retriever.search("How do I leave the interactive interpreter?", 3)
    assert hits and all(h["chunk_id"] for h in hits)
    card = json.loads((won.model_dir / "card.json").read_text())
    assert card["won"] and card["active"] and card["seconds"]["reembed"] >= 0
    assert "Verdict: it beat the model in use; in use: yes." in (won.model_dir / "CARD.md").read_text()

    force_ndcg(monkeypatch, lambda model_dir: 0.0 if "v3" in model_dir else 0.9)
    lost = trainer.train_embedder(Components(settings), options, cfg, progress=False)
    assert not lost.won and registry.active_dir("embedder") == won.model_dir  # the winner stays


def test_latent_attention_in_two_stages_through_the_cli_writes_its_head_tasks_and_card(corpus, tmp_path):
    from arag.embeddings.embedder import Embedder

    settings = copy_corpus(corpus, tmp_path)
    done = train_cli(settings, "embedder", "--pooling", "latent-attention", "--stages", "2", "--no-activate")
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    model_dir = ModelRegistry(settings).versions("embedder")[-1]
    assert str(model_dir) == result["model_dir"] and result["in_use"] is False
    card = json.loads((model_dir / "card.json").read_text())
    assert card["pooling"] == "latent-attention" and card["config"]["stages"] == 2
    assert (card["config"]["latents"], card["config"]["heads"]) == (64, 8)
    assert card["query_instruction"].startswith("Instruct: ")
    tasks = card["data"]["stage_two"]["tasks"]
    assert tasks["retrieval"] == card["data"]["train"] and tasks["similarity"] > 0 and tasks["classification"] > 0
    assert card["data"]["loop"]["steps"] == {"retrieval": 1, "blend": 1}
    assert set(card["metrics"]["trained"]) >= {"ndcg@10", "recall@1", "mrr@10"}
    markdown = (model_dir / "CARD.md").read_text()
    assert "- pooling: latent-attention (64 latents, 8 heads); stages: 2" in markdown
    assert f"similarity {tasks['similarity']}, classification {tasks['classification']}" in markdown
    trained = Embedder(model_dir)
    assert trained.pooling_head is not None
    vectors = trained.embed_documents(["Type quit() to exit.", "Lists hold items."])
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_a_latent_attention_embedder_replaces_the_index_model_only_when_it_wins(corpus, tmp_path, monkeypatch):
    from arag.embeddings.embedder import Embedder
    from arag.training import trainer
    from arag.training.finetune import FineTuneConfig

    settings = copy_corpus(corpus, tmp_path)
    cfg = FineTuneConfig(max_steps=2, batch_size=4, group_size=2, query_max_len=24, passage_max_len=64,
                         pooling="latent-attention")
    options = trainer.PairOptions(mode="unsupervised")
    registry = ModelRegistry(settings)
    force_ndcg(monkeypatch, lambda model_dir: 0.0 if "embedder-v" in model_dir else 0.9)
    lost = trainer.train_embedder(Components(settings), options, cfg, progress=False)
    assert not lost.won and registry.active_dir("embedder") is None
    assert json.loads((lost.model_dir / "card.json").read_text())["pooling"] == "latent-attention"

    force_ndcg(monkeypatch, lambda model_dir: 1.0 if "embedder-v2" in model_dir else 0.5)
    won = trainer.train_embedder(Components(settings), options, cfg, progress=False)
    assert won.won and registry.active_dir("embedder") == won.model_dir
    in_use = Embedder.from_settings(settings)
    assert in_use.model_dir == won.model_dir and in_use.pooling_head is not None
    assert in_use.query_instruction == json.loads((won.model_dir / "card.json").read_text())["query_instruction"]
    parts = Components(settings)
    assert parts.store.name == f"{settings.collection}--{won.model_dir.name}"
    hits = parts.retriever.search("How do I leave the interactive interpreter?", 3)
    assert hits and all(h["chunk_id"] for h in hits)


def test_bad_pooling_options_are_usage_errors(corpus, tmp_path, settings):
    bad = train_cli(settings, "embedder", "--latents", "16")
    assert bad.returncode == 2 and "add --pooling latent-attention" in bad.stderr
    bad = train_cli(settings, "embedder", "--stages", "3")
    assert bad.returncode == 2 and "invalid choice: 3" in bad.stderr
    bad = train_cli(settings, "embedder", "--pooling", "cls")
    assert bad.returncode == 2 and "invalid choice: 'cls'" in bad.stderr
    bad = train_cli(settings, "embedder", "--stages", "2", "--negatives-per-step", "0")
    assert bad.returncode == 2 and "--negatives-per-step must be at least 1" in bad.stderr
    # What depends on the base model is checked before any pair is made.
    copy = copy_corpus(corpus, tmp_path)
    bad = train_cli(copy, "embedder", "--pooling", "latent-attention", "--heads", "7")
    assert bad.returncode == 2 and "must divide the hidden size 384" in bad.stderr
    assert not ModelRegistry(copy).versions("embedder")


def test_training_an_empty_collection_or_with_bad_options_is_a_usage_error(tmp_path, settings):
    empty = train_cli(settings, "embedder")
    assert empty.returncode == 2 and "is empty: run `arag ingest` first" in empty.stderr
    bad = train_cli(settings, "reranker", "--held-out", "0.9")
    assert bad.returncode == 2 and "--held-out must be in [0, 0.5)" in bad.stderr
    missing = train_cli(settings, "reranker", "--base", str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and "not a model directory" in missing.stderr


def test_user_qrels_are_evaluated_whatever_names_the_documents(corpus, tmp_path):
    from arag.training.negatives import dense_matrix
    from arag.training.trainer import evaluate_dense, load_qrels

    parts = Components(corpus)
    passages = passages_from_store(parts.store)
    matrix = dense_matrix(parts.store, [p.id for p in passages])
    target, other = passages[0], passages[1]
    query = " ".join(target.text.split()[:20])
    for name in (target.id, target.source, target.title):
        path = tmp_path / "qrels.jsonl"
        path.write_text(json.dumps({"query": query, "relevant": [name]}) + "\n")
        metrics = evaluate_dense(parts.embedder, matrix, passages, [], load_qrels(path))
        assert metrics["qrels recall@10"] == 1.0 and metrics["qrels mrr@10"] > 0.5
    path.write_text(json.dumps({"query": query, "relevant": [other.source]}) + "\n")
    assert evaluate_dense(parts.embedder, matrix, passages, [], load_qrels(path))["qrels mrr@10"] < 1.0
    path.write_text('{"query": "no judgments"}\n')
    with pytest.raises(ValueError, match=r"qrels.jsonl:1: expected"):
        load_qrels(path)
