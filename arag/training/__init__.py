"""Training the embedder and the reranker on the user's own corpus."""
