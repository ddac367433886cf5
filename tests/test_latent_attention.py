"""Latent-attention pooling (NV-Embed): the NumPy head the Embedder runs against its torch twin, a model
directory with a head on both backends, second-stage tasks, and tiny real runs of the training loop.
"""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from test_training import tutorial_records

from arag.embeddings.embedder import Embedder, packaged_minilm_dir
from arag.embeddings.pooling import LATENT_ATTENTION_FILE, LatentAttentionHead, mean_pool
from arag.training.finetune import MODEL_FILES, FineTuneConfig
from arag.training.latent_attention import LatentAttentionPooling, Stage, fine_tune_staged, resolved_config
from arag.training.negatives import attach_negatives
from arag.training.pairs import Passage, classification_pairs, clean_pairs, similarity_pairs, unsupervised_pairs

TEXTS = ["Grace Hopper built the first COBOL compiler in 1952 while working on the UNIVAC.",
         "Mount Etna is in Sicily.", "short", "The venv module creates virtual environments. " * 12]


def random_head(seed: int = 0) -> LatentAttentionPooling:
    """A head whose output projections are not zero (a trained head's are not), so it is not mean pooling."""
    torch.manual_seed(seed)
    head = LatentAttentionPooling(384, latents=64, heads=8)
    with torch.no_grad():
        for name, parameter in head.named_parameters():
            if name != "latents":
                parameter.normal_(0.0, 0.05)
    return head.eval()


def minilm_hidden_states(texts):
    """Real MiniLM last hidden states of ``texts`` as one padded batch (the Embedder's own batching)."""
    embedder = Embedder(packaged_minilm_dir(), backend="torch", batch_size=len(texts))
    [(members, ids, mask, _)] = list(embedder.batches(embedder._tokenise(texts, 256)))
    return members, embedder._encoder()(ids, mask), mask


def normalised(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_the_numpy_head_matches_the_torch_module_on_minilm_hidden_states(tmp_path):
    _, hidden, mask = minilm_hidden_states(TEXTS)
    assert (mask == 0).any()  # padded rows: the mean must skip their padding
    module = random_head()
    with torch.no_grad():
        expected = module(torch.from_numpy(hidden), torch.from_numpy(mask)).numpy()
    module.to_head().save(tmp_path)
    head = LatentAttentionHead.load(tmp_path)
    assert (head.latents, head.heads, head.dim) == (64, 8, 384)
    got = head(hidden, mask)
    assert np.abs(normalised(got) - normalised(expected)).max() < 1e-5
    assert np.abs(got - expected).max() < 1e-4 * np.abs(expected).max()
    # The head really changes the vectors, and an untrained one does not.
    assert np.abs(normalised(got) - normalised(mean_pool(hidden, mask))).max() > 1e-2
    untrained = LatentAttentionPooling(384).to_head()
    assert np.abs(untrained(hidden, mask) - mean_pool(hidden, mask)).max() < 1e-5
    assert LatentAttentionHead.load(tmp_path / "nowhere") is None


def model_with_head(folder, head: LatentAttentionPooling):
    """MiniLM's encoder files (linked, not copied) with ``head`` beside them."""
    folder.mkdir()
    for name in MODEL_FILES:
        if (packaged_minilm_dir() / name).exists():
            (folder / name).symlink_to(packaged_minilm_dir() / name)
    head.to_head().save(folder)
    return folder


def test_a_model_with_a_head_pools_through_it_on_both_backends_and_keeps_its_token_vectors(tmp_path):
    module = random_head(1)
    folder = model_with_head(tmp_path / "model", module)
    base = Embedder(packaged_minilm_dir(), models_dir=tmp_path / "cache")
    assert base.pooling_head is None
    members, hidden, mask = minilm_hidden_states(TEXTS)
    with torch.no_grad():
        pooled = module(torch.from_numpy(hidden), torch.from_numpy(mask)).numpy()
    expected = np.zeros_like(pooled)
    expected[members] = normalised(pooled)
    for backend in ("torch", "onnx"):
        emb = Embedder(folder, backend=backend, models_dir=tmp_path / "cache")
        vectors = emb.embed_documents(TEXTS)
        assert emb.pooling_head is not None and emb.dim == 384
        assert np.abs(np.linalg.norm(vectors, axis=1) - 1).max() < 1e-5
        assert np.abs(vectors - expected).max() < 1e-5, backend
        assert np.abs(vectors - base.embed_documents(TEXTS)).max() > 1e-2
        # The head shapes the pooled vector only: late interaction reads the encoder's token vectors.
        for mine, theirs in zip(emb.token_vectors(TEXTS), base.token_vectors(TEXTS)):
            assert mine.shape == theirs.shape and np.abs(mine - theirs).max() < 1e-5
    # The head is part of the model's identity: its vectors are not MiniLM's.
    assert Embedder(folder).weights_id != base.weights_id


def test_second_stage_tasks_pair_passages_of_one_document_and_titles_with_their_sections():
    doc = [Passage("a1", "tea.md", "Tea — Green", "Green tea is steamed soon after picking so it stays green."),
           Passage("a2", "tea.md", "Tea — Green", "Matcha is green tea ground into a fine powder for whisking."),
           Passage("a3", "tea.md", "Tea — Black", "Black tea is rolled and left to oxidise until it turns dark.")]
    single = Passage("b1", "rust.md", "Rust", "Iron rusts in water and air. Salt water speeds the reaction up a lot.")
    similar = similarity_pairs([*doc, single], random.Random(0))
    by_query = {p.query: p for p in similar}
    # Same section where there is one, else the same document; a one-passage document gives its halves.
    assert by_query[doc[0].text].positive_id == "a2" and by_query[doc[1].text].positive_id == "a1"
    assert by_query[doc[2].text].positive_id in {"a1", "a2"}
    halves = by_query["Iron rusts in water and air."]
    assert halves.positive == "Salt water speeds the reaction up a lot." and halves.positive_id == "b1"
    assert all(p.kind == "similarity" and "Tea" not in p.positive[:4] for p in similar)
    classes = classification_pairs([*doc, single], random.Random(0))
    assert sorted(p.query for p in classes) == ["Rust", "Tea"]
    tea = next(p for p in classes if p.query == "Tea")
    # The document's title is left out of its passage (the heading stays): it alone would make the pair.
    assert tea.positive.split("\n")[0] in {"Green", "Black"} and "Tea" not in tea.positive.split("\n")[0]


@pytest.fixture(scope="module")
def tiny_stages():
    """Retrieval pairs and second-stage tasks from 24 real paragraphs, with random negatives."""
    records = tutorial_records(24)
    passages = [Passage(r["id"], r["id"].rsplit("-", 1)[0], r["title"], r["text"]) for r in records]
    rng = random.Random(0)
    retrieval = attach_negatives(clean_pairs(unsupervised_pairs(passages, rng))[:24], passages, count=3, rng=rng)
    tasks = attach_negatives(similarity_pairs(passages, rng)[:8] + classification_pairs(passages, rng)[:8], passages,
                             count=3, rng=rng)
    assert retrieval and {p.kind for p in tasks} == {"similarity", "classification"}
    return [Stage("retrieval", retrieval, in_batch_negatives=True), Stage("blend", retrieval + tasks, in_batch_negatives=False)]


def tiny_config(**extra) -> FineTuneConfig:
    cfg = FineTuneConfig(max_steps=4, batch_size=4, group_size=2, query_max_len=24, passage_max_len=48,
                         warmup_steps=0, pooling="latent-attention", stages=2, **extra)
    return resolved_config(packaged_minilm_dir(), cfg)


def test_a_tiny_two_stage_run_writes_a_loadable_latent_attention_model(tiny_stages, tmp_path):
    cfg = tiny_config()
    assert (cfg.latents, cfg.heads) == (64, 8) and cfg.query_instruction.startswith("Instruct: ")
    summary = fine_tune_staged(packaged_minilm_dir(), tiny_stages, tmp_path / "run", tmp_path / "model", cfg, quiet=True)
    assert summary["steps"] == {"retrieval": 2, "blend": 2} and summary["resumed_from_step"] == 0
    assert set(summary["last_loss"]) == {"retrieval", "blend"} and not (tmp_path / "run").exists()
    model = tmp_path / "model"
    assert (model / LATENT_ATTENTION_FILE).is_file() and (model / "tokenizer.json").is_file()
    trained = Embedder(model, backend="torch", query_instruction=cfg.query_instruction)
    base = Embedder(packaged_minilm_dir(), backend="torch")
    vectors = trained.embed_documents(TEXTS)
    assert np.abs(np.linalg.norm(vectors, axis=1) - 1).max() < 1e-5
    assert np.abs(np.linalg.norm(trained.embed_queries(TEXTS), axis=1) - 1).max() < 1e-5
    # The trained head pools otherwise than the mean of the same (trained) encoder's states, and than MiniLM.
    encodings = trained._tokenise(TEXTS, 256)
    [(members, ids, mask, _)] = list(trained.batches(encodings))
    by_mean = np.zeros_like(vectors)
    by_mean[members] = normalised(mean_pool(trained._encoder()(ids, mask), mask))
    assert np.abs(vectors - by_mean).max() > 1e-3
    assert np.abs(vectors - base.embed_documents(TEXTS)).max() > 1e-3
    # A base that already has a head continues from it, and its shape is the one to keep.
    assert resolved_config(model, FineTuneConfig(pooling="latent-attention")).latents == 64
    with pytest.raises(ValueError, match="pools with 64 latents and 8 heads"):
        resolved_config(model, FineTuneConfig(pooling="latent-attention", latents=16))


def test_mean_pooling_in_two_stages_trains_in_the_loop_and_writes_no_head(tiny_stages, tmp_path):
    cfg = resolved_config(packaged_minilm_dir(), FineTuneConfig(max_steps=2, batch_size=4, group_size=2, query_max_len=24,
                                                                passage_max_len=48, stages=2))
    assert cfg.own_loop and cfg.latents is None
    fine_tune_staged(packaged_minilm_dir(), tiny_stages, tmp_path / "run", tmp_path / "model", cfg, quiet=True)
    assert not (tmp_path / "model" / LATENT_ATTENTION_FILE).exists()
    assert Embedder(tmp_path / "model", backend="torch").pooling_head is None
    assert not FineTuneConfig().own_loop  # mean pooling in one stage stays with FlagEmbedding


def test_an_interrupted_run_resumes_from_its_checkpoint(tiny_stages, tmp_path, monkeypatch):
    from arag.training import latent_attention

    cfg = tiny_config(save_steps=1)
    real, calls = latent_attention.contrastive_loss, []

    def dies_at_the_third_step(*args):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(latent_attention, "contrastive_loss", dies_at_the_third_step)
    with pytest.raises(KeyboardInterrupt):
        fine_tune_staged(packaged_minilm_dir(), tiny_stages, tmp_path / "run", tmp_path / "model", cfg, quiet=True)
    assert (tmp_path / "run" / latent_attention.CHECKPOINT).is_file()
    monkeypatch.setattr(latent_attention, "contrastive_loss", real)
    summary = fine_tune_staged(packaged_minilm_dir(), tiny_stages, tmp_path / "run", tmp_path / "model", cfg, quiet=True)
    assert summary["resumed_from_step"] == 2 and (tmp_path / "model" / LATENT_ATTENTION_FILE).is_file()
    # Other settings are another run: its checkpoint is not this one's.
    monkeypatch.setattr(latent_attention, "contrastive_loss", dies_at_the_third_step)
    calls.clear()
    with pytest.raises(KeyboardInterrupt):
        fine_tune_staged(packaged_minilm_dir(), tiny_stages, tmp_path / "run", tmp_path / "model", cfg, quiet=True)
    monkeypatch.setattr(latent_attention, "contrastive_loss", real)
    other = tiny_config(save_steps=1, temperature=0.1)
    assert fine_tune_staged(packaged_minilm_dir(), tiny_stages, tmp_path / "run", tmp_path / "other", other,
                            quiet=True)["resumed_from_step"] == 0
    assert json.loads((tmp_path / "other" / "config.json").read_text())["hidden_size"] == 384


def test_bases_the_loop_cannot_train_and_bad_head_shapes_are_refused(tmp_path):
    from test_embedder_presets import tiny_sentence_transformer

    folder, _ = tiny_sentence_transformer(tmp_path)
    with pytest.raises(ValueError, match="Dense layers or prompts"):
        resolved_config(folder, FineTuneConfig(pooling="latent-attention"))
    with pytest.raises(ValueError, match="must divide the hidden size 384"):
        resolved_config(packaged_minilm_dir(), FineTuneConfig(pooling="latent-attention", heads=7))
    with pytest.raises(ValueError, match="at least 1"):
        resolved_config(packaged_minilm_dir(), FineTuneConfig(stages=2, group_size=1))
