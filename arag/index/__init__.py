"""Where chunks are kept: the Chroma store, its BM25 index, token vectors, the catalog of
ingested files, re-embedding and the summary tree.
"""
