"""Relevance without LLM calls: scorers, their calibration into probabilities, passage links and
context compression.
"""
