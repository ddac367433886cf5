"""Measuring answers and retrieval: datasets, configurations, metrics and the eval runner."""
