"""The local LLM's yes-probability as a relevance scorer, on the real small models."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import MODELS_DIR


@pytest.mark.parametrize("preset", ["local-0.5b", "local-270m"])  # chat template, and a base model's plain prompt
def test_llm_yes_scorer_gives_finite_log_odds_per_passage(preset):
    from arag.llms.factory import make_chat_model
    from arag.relevance.scorers import LLMYesScorer
    from arag.settings import Settings

    if not (MODELS_DIR / f"{preset}.gguf").exists():
        pytest.skip(f"{preset} is not assembled (make install does it)")
    chat = make_chat_model(Settings(llm=f"llamacpp:{preset}", models_dir=MODELS_DIR, llm_context_tokens=1024), progress=False)
    scorer = LLMYesScorer(chat)
    passages = ["The Harbour Lighthouse was designed by Mara Olsen in 1887.", "Gulls nest on the cliffs every spring."]
    scores = scorer.score("Who designed the Harbour Lighthouse?", passages)
    assert scores.shape == (2,) and np.isfinite(scores).all()
    # The same question and passage give the same score, whatever was evaluated before (the prefix cache is exact).
    again = scorer.score("Who designed the Harbour Lighthouse?", passages[:1])
    assert again[0] == pytest.approx(scores[0], abs=1e-3)
    assert scorer.score("Who?", []).shape == (0,)
