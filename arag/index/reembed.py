"""Copy a collection's chunks into another collection with vectors from another embedding model.

Used when a newly trained embedder replaces the current one: the chunks (ids, text and
metadata unchanged) are written into the new model's own collection, and only then does the
model registry switch to it. Chunks already copied (a resumed run) are skipped, and vectors
computed earlier (say, while evaluating the model) are reused instead of embedded again.
"""

from __future__ import annotations

import numpy as np
from tqdm import tqdm

from arag.embeddings.embedder import embedding_text
from arag.index.store import ChunkRecord, ChunkStore
from arag.index.token_store import token_store_for

PAGE = 512


def reembed_collection(source: ChunkStore, target: ChunkStore, embedder, known: dict[str, np.ndarray] | None = None,
                       progress: bool = True, on_progress=None) -> int:
    """Fill ``target`` with every chunk of ``source``, embedded by ``embedder``; return chunks embedded.

    ``on_progress(done, total)`` is called after each page of chunks (for a progress bar in the web app).
    """
    known = known or {}
    tokens = token_store_for(target.settings, target)
    total = source.count()
    embedded = 0
    with tqdm(total=total, desc="re-embed", unit="chunk", disable=not progress) as bar:
        offset = 0
        while True:
            got = source.collection.get(include=["documents", "metadatas"], limit=PAGE, offset=offset)
            ids = got["ids"]
            if not ids:
                break
            offset += len(ids)
            present = set(target.collection.get(ids=ids, include=[])["ids"]) if target.count() else set()
            records = [ChunkRecord(i, d, m) for i, d, m in zip(ids, got["documents"], got["metadatas"]) if i not in present]
            todo = [r for r in records if r.id not in known]
            if todo:
                texts = [embedding_text(r.metadata.get("title", ""), r.metadata.get("heading", ""), r.text) for r in todo]
                vectors = tokens.fill(texts, embedder) if tokens is not None else embedder.embed_documents(texts, bulk=True)
                for r, v in zip(todo, vectors):
                    r.embedding = v
                embedded += len(todo)
            for r in records:
                if r.embedding is None:
                    r.embedding = known[r.id]
            if records:
                target.upsert(records)
            bar.update(len(ids))
            if on_progress:
                on_progress(min(offset, total), total)
    return embedded
