"""Metric code against hand-computed cases."""

from __future__ import annotations

import math

import pytest

from arag.evaluation.metrics import contains_answer, exact_match, ndcg_at, normalize_answer, recall_at, token_f1


def test_normalisation_drops_case_punctuation_and_articles():
    assert normalize_answer("  The  Chief of Protocol. ") == "chief of protocol"
    assert exact_match("an Apple", ["apple"]) == 1.0
    assert exact_match("apples", ["apple"]) == 0.0


def test_token_f1_hand_computed():
    # prediction: "united states army" vs gold "the us army": common {army} -> p=1/3, r=1/2, f1=0.4
    assert token_f1("United States Army", ["the US Army"]) == pytest.approx(0.4)
    assert token_f1("yes", ["no", "yes"]) == 1.0
    assert token_f1("", ["x"]) == 0.0
    assert token_f1("the", ["a"]) == 1.0  # both normalise to nothing


def test_contains_answer_respects_word_boundaries():
    assert contains_answer("She was Chief of Protocol [1].", ["Chief of Protocol"]) == 1.0
    assert contains_answer("1990s music", ["1990"]) == 0.0


def test_recall_counts_duplicates_once():
    assert recall_at(["a", "a", "a", "b"], {"a", "b"}, 2) == 1.0
    assert recall_at(["a", "a", "c"], {"a", "b"}, 10) == 0.5
    assert recall_at(["x"], set(), 10) == 0.0


def test_ndcg_with_ties_and_order():
    # relevant at ranks 1 and 3: dcg = 1 + 1/log2(4) = 1.5; ideal = 1 + 1/log2(3)
    assert ndcg_at(["a", "x", "b"], {"a", "b"}) == pytest.approx(1.5 / (1 + 1 / math.log2(3)))
    assert ndcg_at(["a", "b", "x"], {"a", "b"}) == pytest.approx(1.0)
    # a repeated item does not count twice nor push the next one down
    assert ndcg_at(["a", "a", "b"], {"a", "b"}) == pytest.approx(1.0)
