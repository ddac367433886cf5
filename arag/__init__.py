"""arag: agentic RAG over your own documents, offline.

The library the graph runs on. Its sub-packages, from the ground up: ``settings`` (one typed
settings object), ``llms`` (chat models), ``embeddings`` (encoders), ``ingestion`` (files to
chunks), ``index`` (Chroma, BM25 and token-vector stores), ``retrieval`` (search, filters, the
web), ``relevance`` (scorers and calibration), ``runtime`` (what a graph runs with: components,
state, tracing), ``sessions`` (threads, checkpoints, streaming a turn), ``training`` and
``evaluation``. ``arag.cli`` is the command line; it sits above ``graphs`` and ``nodes``, and
nothing else in the library imports them.
"""
