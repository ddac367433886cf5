"""Link expansion for multi-hop questions: the rule, its fitted weight, two-hop pairs, the grade node."""

from __future__ import annotations

import random

import numpy as np
import pytest

from arag.relevance.calibration import Calibrator
from arag.relevance.judge import RelevanceJudge
from arag.relevance.links import expand_links, mentions, subject_of
from arag.training.link_weights import fit_link_weight
from arag.training.pairs import Passage, bridge_pairs, clean_pairs


def chunk(cid, title, text, relevance):
    return {"chunk_id": cid, "title": title, "text": text, "relevance": relevance}


FILM = chunk("film", "Kiss and Tell (1945 film)", "Kiss and Tell starred Shirley Temple as Corliss Archer.", 0.9)
ACTRESS = chunk("actress", "Shirley Temple", "She later served as Chief of Protocol of the United States.", 0.2)
OTHER = chunk("other", "Janet Waldo", "Janet Waldo voiced Corliss Archer on the radio.", 0.3)


def test_subject_names_drop_qualifiers_and_refuse_generic_words():
    assert subject_of("Army (Ellie Goulding song)") == "Army"
    assert subject_of("Venv — Creating Virtual Environments") == "Venv"
    assert subject_of("Run") is None and subject_of("history of data") == "history of data"
    assert subject_of("data") is None and subject_of("") is None
    assert mentions("starring Shirley Temple.", "Shirley Temple")
    assert not mentions("starring Shirley Templeton", "Shirley Temple")
    assert not mentions("starring shirley temple", "Shirley Temple")


def test_a_named_candidate_gains_relevance_and_stays_a_probability():
    out = {c["chunk_id"]: c for c in expand_links([FILM, ACTRESS, OTHER], weight=0.5)}
    raised = out["actress"]
    assert raised["linked_from"] == "film" and raised["relevance_own"] == 0.2
    assert raised["relevance"] == pytest.approx(0.2 + 0.5 * 0.9 * 0.8, abs=1e-4)
    # Unnamed candidates and the source itself are unchanged.
    assert out["other"]["relevance"] == 0.3 and "linked_from" not in out["other"]
    assert out["film"]["relevance"] == 0.9
    for weight in (0.1, 1.0, 5.0):
        assert all(0.0 <= c["relevance"] <= 1.0 for c in expand_links([FILM, ACTRESS, OTHER], min(weight, 1.0)))
    # Weight 0 is a no-op, and the input is never modified.
    assert expand_links([FILM, ACTRESS], 0.0) == [FILM, ACTRESS]
    assert ACTRESS["relevance"] == 0.2 and "linked_from" not in ACTRESS


def test_only_the_most_relevant_candidates_lend_and_never_within_a_document():
    weak_source = chunk("weak", "Notes", "A list that mentions Shirley Temple.", 0.05)
    out = {c["chunk_id"]: c for c in expand_links([FILM, OTHER, weak_source, dict(ACTRESS, relevance=0.1)], 0.5, top=2)}
    assert out["actress"]["linked_from"] == "film"
    # With the film out of the top two, the weak list cannot lend.
    low_film = dict(FILM, relevance=0.01)
    out = {c["chunk_id"]: c for c in expand_links([low_film, OTHER, weak_source, dict(ACTRESS, relevance=0.4)], 0.5, top=2)}
    assert "linked_from" not in out["actress"]
    same_doc = [chunk("a1", "Shirley Temple", "Shirley Temple was an actress.", 0.9),
                chunk("a2", "Shirley Temple", "Later a diplomat.", 0.1)]
    assert [c["relevance"] for c in expand_links(same_doc, 1.0)] == [0.9, 0.1]


def test_the_fitted_weight_follows_the_data():
    two_hop = [([FILM, ACTRESS, OTHER], {"film", "actress"})]
    assert fit_link_weight(two_hop).weight > 0
    # When the named passage is never the relevant one, expansion only hurts: weight 0.
    one_hop = [([FILM, ACTRESS, OTHER], {"film", "other"})]
    fitted = fit_link_weight(one_hop)
    assert fitted.weight == 0.0 and fitted.fitted_on == 1 and set(fitted.ndcg_by_weight) >= {"0.0", "0.5"}
    with pytest.raises(ValueError):
        fit_link_weight([])


def test_bridge_pairs_hide_the_second_hops_name():
    film = Passage("film-0", "film.jsonl#film", "Kiss and Tell (1945 film)",
                   "Kiss and Tell is a 1945 American comedy film. It starred Shirley Temple as the teenager Corliss Archer.")
    actress = Passage("actress-0", "film.jsonl#actress", "Shirley Temple",
                      "Shirley Temple was an American actress and singer. "
                      "She was appointed Chief of Protocol of the United States in 1976.")
    unrelated = Passage("song-0", "film.jsonl#song", "Stay",
                        "Stay is a song recorded by a band in 1994. It was released as a single in Europe and Asia.")
    pairs = bridge_pairs([film, actress, unrelated], random.Random(3))
    assert len(pairs) == 1
    pair = pairs[0]
    assert (pair.kind, pair.positive_id, pair.related_ids) == ("bridge", "actress-0", ["film-0"])
    assert pair.relevant_ids == {"actress-0", "film-0"}
    assert "Shirley Temple" not in pair.query and "Corliss Archer" in pair.query
    assert pair.positive.startswith("Shirley Temple\n")
    # Cleaning keeps the first hop; the source filter keeps links out of other documents.
    assert clean_pairs(pairs)[0].related_ids == ["film-0"]
    assert bridge_pairs([film, actress], random.Random(3), sources={"film.jsonl#actress"}) == []
    assert len(bridge_pairs([film, actress, unrelated] * 1, random.Random(3), limit=0)) == 0


class _Overlap:
    """Scores a passage by the share of question words it contains."""

    name = "overlap"

    def score(self, query, passages):
        words = set(query.lower().split())
        return np.array([len(words & set(p.lower().split())) / len(words) for p in passages])


def test_grade_node_keeps_the_second_hop_through_its_link(settings):
    from arag.runtime.components import Components
    from nodes.grade_documents import grade_documents

    parts = Components(settings)
    parts._judges["auto"] = RelevanceJudge(_Overlap(), Calibrator(slope=20.0, intercept=-6.0), link_weight=0.8)
    state = {"standalone_question": "which position did the star of kiss and tell hold",
             "candidates": [dict(FILM, text="Kiss and Tell: star of it was Shirley Temple. Which position, hold"),
                            dict(ACTRESS), dict(OTHER)]}
    for c in state["candidates"]:
        c.pop("relevance")
    with_links = grade_documents(state, {"configurable": {"min_relevant": 1, "fill_context": False}}, components=parts)
    kept = {d["chunk_id"] for d in with_links["documents"]}
    assert kept == {"film", "actress"}
    grades = {g["chunk_id"]: g for g in with_links["trace"][0]["grades"]}
    assert grades["actress"]["linked_from"] == "film" and grades["actress"]["kept"]
    without = grade_documents(state, {"configurable": {"link_expansion": False, "fill_context": False}}, components=parts)
    assert {d["chunk_id"] for d in without["documents"]} == {"film"}
    # Filling the context (the default) adds the rest after the graded ones, best first, and says so.
    filled = grade_documents(state, {"configurable": {"link_expansion": False, "top_k": 2}}, components=parts)
    assert [d["chunk_id"] for d in filled["documents"]] == ["film", "actress"]
    assert filled["trace"][0]["filled"] == ["actress"] and filled["trace"][0]["kept"] == 1


LINKED = [
    ("Harbour Lighthouse", "Harbour Lighthouse stands on the north pier. It was designed by Mara Olsen in 1887. "
                           "Its lamp burned whale oil until the town bought electric light."),
    ("Mara Olsen", "Mara Olsen was a Norwegian engineer and painter. She studied in Bergen and later taught drawing. "
                   "Her brother sailed with the whaling fleet for twenty years."),
    ("Bergen Academy", "Bergen Academy trained engineers and painters from 1850. Mara Olsen taught drawing there. "
                       "The academy closed its doors after a fire in 1921."),
    ("North Pier", "North Pier protects the harbour from winter storms. Harbour Lighthouse stands at its end. "
                   "Fishing boats unload their catch along its inner wall."),
    ("Whale Oil", "Whale Oil was the common lamp fuel of the century. North Pier stored barrels of it. "
                  "Kerosene replaced it in most lamps by the end of the century."),
    ("Winter Storms", "Winter Storms batter the coast from November to March. Bergen Academy recorded them daily. "
                      "Waves over ten metres high were measured in the great storm."),
]


def test_trainer_fits_link_weights_on_two_hop_pairs_of_held_out_documents(settings, embedder):
    import json as jsonlib

    from arag.index.store import ChunkStore
    from arag.ingestion.ingest import Ingestor
    from arag.relevance.scorers import LateInteractionScorer
    from arag.runtime.components import Components
    from arag.training.pairs import TrainingPair, passages_from_store
    from arag.training.trainer import fit_links

    path = settings.data_dir.parent / "linked.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(jsonlib.dumps({"id": t, "title": t, "text": x}) + "\n" for t, x in LINKED))
    store = ChunkStore(settings, embedder.model_id, embedder.dim)
    Ingestor(settings, embedder, store).ingest([path], progress=False)
    parts = Components(settings, embedder=embedder, store=store)
    passages = passages_from_store(store)
    held = [TrainingPair("q", p.id, p.text, p.source, "title") for p in passages]  # every document held out
    weights = fit_links(parts, passages, held, {"late": (LateInteractionScorer(embedder), Calibrator(slope=14.0, intercept=-8.4))},
                        limit=20, seed=1, progress=False)
    fitted = weights["late"]
    assert fitted.fitted_on >= 3 and 0.0 <= fitted.weight <= 1.0
    assert set(fitted.ndcg_by_weight) == {"0.0", "0.1", "0.2", "0.3", "0.4", "0.5", "0.75", "1.0"}
    # No link starts in a held-out document: nothing to fit on, no weight.
    assert fit_links(parts, passages, [], {"late": (LateInteractionScorer(embedder), Calibrator())}, 20, 1, False) == {}
