"""Embedding models: the packaged MiniLM or a trained one, pooled and token vectors."""
