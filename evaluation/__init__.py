"""Measuring answers and retrieval: SQuAD-style answer scores and ranking metrics."""
