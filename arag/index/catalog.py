"""What the collection holds, file by file, and removing a file's chunks.

Example:
    >>> import tempfile, pathlib
    >>> from arag.ingestion.ingest import Ingestor
    >>> s = Settings(data_dir=tempfile.mkdtemp())
    >>> doc = pathlib.Path(s.data_dir, "note.md"); _ = doc.write_text("# Note\\nCats purr.")
    >>> ing = Ingestor.from_settings(s); _ = ing.ingest([doc], progress=False)
    >>> [(f["title"], f["chunks"]) for f in list_files(ing.store)]
    [('Note', 1)]
    >>> delete_file(ing.store, str(doc)), ing.store.count()
    (1, 0)
"""

from __future__ import annotations

from pathlib import Path

from arag.index.store import ChunkStore
from arag.index.token_store import token_store_for
from arag.settings import Settings


def list_files(store: ChunkStore) -> list[dict]:
    """One row per ingested file: path, title, kind, chunks, documents (JSONL files hold several)."""
    files: dict[str, dict] = {}
    for _, meta in store.iter_metadata():
        row = files.setdefault(meta.get("file", ""), {"file": meta.get("file", ""), "title": meta.get("title", ""),
                                                     "kind": meta.get("kind", ""), "chunks": 0, "sources": set()})
        row["chunks"] += 1
        row["sources"].add(meta.get("source", ""))
    out = []
    for row in sorted(files.values(), key=lambda r: r["file"]):
        sources = row.pop("sources")
        out.append(row | {"documents": len(sources)})
    return out


def delete_file(store: ChunkStore, file: str) -> int:
    """Remove every chunk of ``file`` (and token vectors no other chunk shares); return how many chunks."""
    ids, kept_texts = [], set()
    for cid, meta in store.iter_metadata():
        if meta.get("file") == file:
            ids.append(cid)
        else:
            kept_texts.add(meta.get("text_hash", ""))
    store.delete_ids(ids)
    tokens = token_store_for(store.settings, store)
    if ids and tokens is not None:
        tokens.retain(kept_texts)
    return len(ids)


def directory_bytes(path: Path) -> int:
    """Bytes of the files under ``path`` (0 where it does not exist)."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


def directory_mb(path: Path) -> float:
    return round(directory_bytes(path) / 2**20, 1)


def collection_stats(store: ChunkStore, settings: Settings) -> dict:
    """Files, documents and chunks in the collection, the embedding model that built it, index size on disk."""
    files = list_files(store)
    return {
        "collection": store.name,
        "files": len(files),
        "documents": sum(f["documents"] for f in files),
        "chunks": sum(f["chunks"] for f in files),
        "embedding_model": store.model_id,
        "index_mb": directory_mb(settings.chroma_path) if not getattr(settings, "chroma_url", None) else None,
    }
