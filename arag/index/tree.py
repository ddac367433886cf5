"""Hierarchical summaries (RAPTOR): chunks clustered by embedding, each cluster summarised by the LLM,
and the summaries clustered and summarised again, into a tree stored beside the chunks.

Summary nodes are ordinary records of the collection (``kind`` "summary", ``level`` 1, 2, …,
``children`` the ids below them), so the default retrieval is RAPTOR's *collapsed tree*: a
question is matched against chunks and summaries of every level at once, and a summary that
covers several chunks can answer a question no single chunk does. ``tree_search="traversal"``
walks down instead (:func:`traverse`): the best top-level summaries, then their best children,
down to chunks; ``"leaves"`` leaves the summaries out.

Clustering is spherical k-means (RAPTOR uses soft Gaussian-mixture clusters over UMAP-reduced
vectors; hard clusters of a bounded size keep every summary prompt short). Building is
incremental: a cluster is named by the ids it summarises, so clusters whose members did not
change keep their summary (no LLM call); new chunks join the nearest existing cluster when it
is close enough and not full, and only clusters that changed are summarised again. Summaries
of clusters that no longer exist are deleted.

Example:
    >>> import numpy as np
    >>> v = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], dtype=np.float32)
    >>> sorted(sorted(c) for c in kmeans_clusters(v / np.linalg.norm(v, axis=1, keepdims=True), 2))
    [[0, 1], [2, 3]]
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from arag.index.store import ChunkRecord, ChunkStore
from arag.llms.usage import LLMCallFailed, LLMUsage, invoke_counted

#: The ``file`` of summary records: no file on disk, so ingestion never prunes or rewrites them.
TREE_FILE = "arag-tree://summaries"
SUMMARY_PROMPT = ("Summarise these passages in two to four sentences for someone searching them later. "
                  "Keep the names, numbers and dates that matter. Write only the summary.\n\n{passages}")
#: Words of each member shown to the summariser; bounds the prompt.
WORDS_PER_MEMBER = 90


@dataclass
class TreeReport:
    levels: list[dict] = field(default_factory=list)
    llm_calls: int = 0
    prompt_tokens: int = 0
    removed: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        parts = [f"level {lv['level']}: {lv['clusters']} clusters ({lv['summarised']} summarised, {lv['kept']} kept)"
                 for lv in self.levels]
        return (f"{'; '.join(parts) or 'nothing to summarise'}; {self.removed} stale summaries removed; "
                f"{self.llm_calls} LLM calls in {self.seconds:.1f}s")


def kmeans_clusters(vectors: np.ndarray, k: int, iterations: int = 25, seed: int = 7) -> list[list[int]]:
    """Spherical k-means (cosine) with k-means++ seeding; non-empty clusters of row indices."""
    n = len(vectors)
    k = max(1, min(k, n))
    rng = np.random.default_rng(seed)
    centres = [vectors[rng.integers(n)]]
    for _ in range(1, k):
        distance = 1.0 - np.max(vectors @ np.array(centres).T, axis=1)
        weights = np.clip(distance, 0, None) ** 2
        centres.append(vectors[rng.choice(n, p=weights / weights.sum())] if weights.sum() > 0 else vectors[rng.integers(n)])
    centres = np.array(centres)
    labels = np.zeros(n, dtype=int)
    for _ in range(iterations):
        labels = np.argmax(vectors @ centres.T, axis=1)
        for j in range(k):
            members = vectors[labels == j]
            if len(members):
                mean = members.mean(axis=0)
                centres[j] = mean / (np.linalg.norm(mean) + 1e-9)
    return [np.flatnonzero(labels == j).tolist() for j in range(k) if (labels == j).any()]


def _bounded(vectors: np.ndarray, members: list[int], limit: int) -> list[list[int]]:
    """Split a cluster in two until no part is larger than ``limit``."""
    if len(members) <= limit:
        return [members]
    halves = kmeans_clusters(vectors[members], 2)
    if len(halves) < 2:  # identical vectors: split by position
        halves = [list(range(len(members) // 2)), list(range(len(members) // 2, len(members)))]
    return [part for half in halves for part in _bounded(vectors, [members[i] for i in half], limit)]


def node_id(level: int, children: list[str]) -> str:
    return "tree-" + hashlib.sha256((f"{level}\x00" + "\x00".join(sorted(children))).encode()).hexdigest()[:28]


def _plan(ids: list[str], vectors: np.ndarray, previous: list[list[str]], size: int, join_at: float) -> list[list[str]]:
    """Clusters of ``ids``: previous clusters kept where they can be, newcomers joined or clustered anew."""
    index = {cid: i for i, cid in enumerate(ids)}
    clusters = [[c for c in members if c in index] for members in previous]
    clusters = [c for c in clusters if c]
    placed = {c for members in clusters for c in members}
    newcomers = [c for c in ids if c not in placed]
    if clusters and newcomers:
        centres = np.array([vectors[[index[c] for c in members]].mean(axis=0) for members in clusters])
        centres /= np.linalg.norm(centres, axis=1, keepdims=True) + 1e-9
        left = []
        for c in newcomers:
            similarity = centres @ vectors[index[c]]
            best = int(np.argmax(similarity))
            if similarity[best] >= join_at and len(clusters[best]) < 2 * size:
                clusters[best] = clusters[best] + [c]
            else:
                left.append(c)
        newcomers = left
    if newcomers:
        rows = [index[c] for c in newcomers]
        fresh = kmeans_clusters(vectors[rows], math.ceil(len(rows) / size))
        for group in fresh:
            for part in _bounded(vectors[rows], group, 2 * size):
                clusters.append([newcomers[i] for i in part])
    return clusters


def build_tree(store: ChunkStore, embedder, llm, *, cluster_size: int = 6, max_levels: int = 3, join_at: float = 0.55,
               progress: bool = True) -> TreeReport:
    """Build or update the summary tree of the collection; return what it cost."""
    started = time.perf_counter()
    report, usage = TreeReport(), LLMUsage()
    got = store.collection.get(include=["documents", "metadatas", "embeddings"])
    records = {cid: (text, meta or {}, np.asarray(vec, dtype=np.float32))
               for cid, text, meta, vec in zip(got["ids"], got["documents"], got["metadatas"], got["embeddings"])}
    summaries = {cid: r for cid, r in records.items() if r[1].get("kind") == "summary"}
    level_ids = [cid for cid, r in records.items() if r[1].get("kind") != "summary"]
    keep: set[str] = set()
    for level in range(1, max_levels + 1):
        if len(level_ids) <= (1 if level == 1 else cluster_size):
            break
        vectors = np.array([records[c][2] for c in level_ids])
        previous = [json.loads(r[1].get("children", "[]")) for r in summaries.values() if r[1].get("level") == level]
        clusters = _plan(level_ids, vectors, previous, cluster_size, join_at)
        stats = {"level": level, "clusters": len(clusters), "summarised": 0, "kept": 0}
        next_ids, fresh = [], []
        for members in tqdm(clusters, desc=f"summaries, level {level}", unit="cluster", disable=not progress):
            nid = node_id(level, members)
            next_ids.append(nid)
            keep.add(nid)
            if nid in summaries:
                stats["kept"] += 1
                continue
            passages = "\n\n".join(f"[{i}] {' '.join(records[c][0].split()[:WORDS_PER_MEMBER])}" for i, c in enumerate(members, 1))
            try:
                reply = invoke_counted(llm, SUMMARY_PROMPT.format(passages=passages), usage, max_tokens=160)
                text = " ".join(str(reply.content).split())
            except LLMCallFailed:
                text = ""
            if not text:  # a failed summary still joins its members: their leading sentences
                text = " ".join(" ".join(records[c][0].split()[:25]) for c in members[:4])
            titles = list(dict.fromkeys(records[c][1].get("title", "") for c in members if records[c][1].get("title")))
            meta = {"file": TREE_FILE, "source": f"summary of {len(members)} passages", "kind": "summary",
                    "title": "Summary: " + "; ".join(titles[:3]) + (" …" if len(titles) > 3 else ""), "heading": "",
                    "level": level, "children": json.dumps(members), "position": 0, "tokens": len(text.split()),
                    "text_hash": hashlib.sha256(text.encode()).hexdigest()[:32], "file_hash": "tree", "file_chunks": 1}
            fresh.append(ChunkRecord(nid, text, meta))
            stats["summarised"] += 1
        if fresh:
            vectors = embedder.embed_documents([f"{r.metadata['title']}\n{r.text}" for r in fresh])
            for record, vector in zip(fresh, vectors):
                record.embedding = vector
                records[record.id] = (record.text, record.metadata, vector)
            store.upsert(fresh)
        for nid in next_ids:
            if nid in summaries:
                records[nid] = summaries[nid]
        report.levels.append(stats)
        level_ids = next_ids
    stale = [cid for cid in summaries if cid not in keep]
    store.delete_ids(stale)
    report.removed = len(stale)
    report.llm_calls, report.prompt_tokens = usage.calls, usage.prompt_tokens
    report.seconds = time.perf_counter() - started
    return report


def traverse(store: ChunkStore, embedder, question: str, k: int, beam: int = 3) -> list[dict]:
    """Tree traversal: the ``beam`` best top-level summaries, then the best of their children, down to
    chunks; returns the ``k`` best chunks reached (and summaries, if the tree ends early) as search hits.
    """
    query = embedder.embed_queries([question])[0]
    top = store.collection.get(where={"kind": "summary"}, include=["metadatas"])
    if not top["ids"]:
        return []
    highest = max(m.get("level", 0) for m in top["metadatas"])
    frontier = [cid for cid, m in zip(top["ids"], top["metadatas"]) if m.get("level") == highest]
    reached: dict[str, dict] = {}
    while frontier:
        got = store.collection.get(ids=frontier, include=["documents", "metadatas", "embeddings"])
        scored = sorted(((float(np.dot(np.asarray(v), query)), cid, text, meta) for cid, text, meta, v in
                         zip(got["ids"], got["documents"], got["metadatas"], got["embeddings"])), reverse=True)
        chosen = scored[: beam if any(m.get("kind") == "summary" for _, _, _, m in scored) else k]
        frontier = []
        for score, cid, text, meta in chosen:
            if meta.get("kind") == "summary":
                frontier += json.loads(meta.get("children", "[]"))
            else:
                reached[cid] = {"id": cid, "text": text, "metadata": meta, "score": score}
    return sorted(reached.values(), key=lambda h: -h["score"])[:k]
