"""Hybrid retrieval: reciprocal-rank fusion, the persisted BM25 index and the fused retriever."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import pytest
from documents import write_corpus

from arag.index.lexical import LexicalIndex
from arag.index.store import ChunkStore
from arag.retrieval.retriever import DenseRetriever, HybridRetriever, as_retrieved, reciprocal_rank_fusion

REPO = Path(__file__).resolve().parent.parent

# The identifier sits in release notes about other things, while another section is all about
# a near-namesake: the encoder prefers that section, BM25 matches the exact token.
API = """# HTTP toolkit

## Parsing headers

Call parse_header on a raw header block to split it into a dictionary of header names and
values; parse_headers_strict does the same but rejects malformed header lines.

## Sending requests

A session keeps connections open between requests and retries idempotent ones.

## Release notes

Version 2.4 starts faster, fixes a crash on empty configuration files, adds Windows
installers and deprecates parse_quux_header, to be removed in 3.0.
"""


@pytest.fixture
def settings(settings):
    # Most tests here build and check BM25 themselves, so ingestion must leave it unbuilt, as it
    # does for dense retrieval; with hybrid retrieval (the default) it builds it (tested below).
    return settings.model_copy(update={"retrieval": "dense"})


@pytest.fixture
def corpus(tmp_path, ingestor) -> dict[str, Path]:
    paths = write_corpus(tmp_path / "docs")
    paths["api"] = tmp_path / "docs" / "api.md"
    paths["api"].write_text(API)
    ingestor.ingest([tmp_path / "docs"], progress=False)
    return paths


@pytest.fixture
def hybrid(corpus, ingestor, embedder) -> HybridRetriever:
    return HybridRetriever(embedder, ingestor.store, LexicalIndex(ingestor.store))


def chunk_with_heading(store: ChunkStore, heading: str) -> str:
    return store.collection.get(where={"heading": heading}, include=[])["ids"][0]


def search_in_new_process(settings, embedder, query: str, cwd: Path) -> dict:
    """A BM25 search by a new process on the same data directory: its listings, builds and hits."""
    script = (
        "import json, sys\n"
        "from arag.settings import Settings\n"
        "from arag.index.store import ChunkStore\n"
        "from arag.index.lexical import LexicalIndex\n"
        "index = LexicalIndex(ChunkStore(Settings(data_dir=sys.argv[1]), sys.argv[2], int(sys.argv[3])))\n"
        "hits = index.search(sys.argv[4], k=3)\n"
        "print(json.dumps({'listings': index.listings, 'builds': index.builds, 'hits': hits}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(settings.data_dir), embedder.model_id, str(embedder.dim), query],
        cwd=cwd, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=300, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def published(index: LexicalIndex) -> list[str]:
    """The index folders, without the record of the last listing."""
    return sorted(p.name for p in index.path.iterdir() if p.is_dir()) if index.path.exists() else []


# -- reciprocal-rank fusion -----------------------------------------------------------------


def test_rrf_sums_reciprocal_ranks():
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["c", "a"]], k=10)
    assert [doc for doc, _ in fused] == ["a", "c", "b"]
    scores = dict(fused)
    assert scores["a"] == pytest.approx(1 / 11 + 1 / 12)
    assert scores["c"] == pytest.approx(1 / 13 + 1 / 11)
    # In one list only: that list's share, nothing from the other.
    assert scores["b"] == pytest.approx(1 / 12)


def test_rrf_breaks_ties_by_best_rank_then_by_earlier_list():
    # x and y mirror each other: equal scores, both best at rank 1; x gets there in the first list.
    assert [doc for doc, _ in reciprocal_rank_fusion([["x", "y"], ["y", "x"]], k=60)] == ["x", "y"]
    # With k=0, p (2nd twice) ties q and z (1st once) at exactly 1.0; their rank 1 beats p's 2.
    fused = reciprocal_rank_fusion([["q", "p"], ["z", "p"]], k=0)
    assert fused == [("q", 1.0), ("z", 1.0), ("p", 1.0)]


def test_rrf_is_independent_of_summation_order_and_ignores_repeats():
    lists = [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"]]
    # Every id has ranks {1, 2, 3}: bit-equal scores whatever the order they are summed in.
    assert len({score for _, score in reciprocal_rank_fusion(lists, k=60)}) == 1
    assert reciprocal_rank_fusion([["a", "a", "b"]], k=60) == [("a", 1 / 61), ("b", 1 / 63)]
    assert reciprocal_rank_fusion([], k=60) == reciprocal_rank_fusion([[], []], k=60) == []
    with pytest.raises(ValueError):
        reciprocal_rank_fusion([["a"]], k=-1)


# -- the lexical index ----------------------------------------------------------------------


def test_bm25_finds_an_exact_identifier_the_encoder_misses(corpus, ingestor, embedder, hybrid):
    target = chunk_with_heading(ingestor.store, "Release notes")
    dense = DenseRetriever(embedder, ingestor.store).search("parse_quux_header", k=3)
    assert dense[0]["chunk_id"] != target and dense[0]["heading"] == "Parsing headers"
    lexical = LexicalIndex(ingestor.store).search("parse_quux_header", k=3)
    assert [cid for cid, _ in lexical] == [target] and lexical[0][1] > 0
    top = hybrid.search("parse_quux_header", k=3)[0]
    assert top["chunk_id"] == target and top["lexical_rank"] == 1 and top["dense_rank"] > 1


def test_lexical_index_covers_title_and_heading_and_ignores_stopwords(corpus, ingestor):
    index = LexicalIndex(ingestor.store)
    # Neither word is in the section's text, only in its heading.
    assert index.search("release notes", k=2)[0][0] == chunk_with_heading(ingestor.store, "Release notes")
    # The title is in every chunk of its document, and only there.
    api = ingestor.store.collection.get(where={"title": "HTTP toolkit"}, include=[])["ids"]
    assert sorted(cid for cid, _ in index.search("toolkit", k=10)) == sorted(api) and len(api) == 3
    # Inflections meet through the stemmer.
    assert index.search("waggle dancing", k=1)[0][0] == chunk_with_heading(ingestor.store, "Waggle dance")
    assert index.search("the of and", k=5) == []
    assert index.search("xylophone", k=5) == []
    assert index.search("lighthouse", k=0) == []


def test_hybrid_results_have_the_retriever_shape_and_both_ranks(hybrid):
    results = hybrid.search("Who built the first COBOL compiler?", k=4)
    assert len(results) == 4
    for r in results:
        assert set(r) == set(as_retrieved({"id": "", "text": "", "metadata": {}, "score": 0})) | {"dense_rank", "lexical_rank"}
        assert r["dense_rank"] is not None or r["lexical_rank"] is not None
    top = results[0]
    assert (top["title"], top["dense_rank"], top["lexical_rank"]) == ("Grace Hopper", 1, 1)
    assert top["score"] == pytest.approx(2 / 61, abs=1e-6)
    assert [r["score"] for r in results] == sorted((r["score"] for r in results), reverse=True)
    # A chunk that BM25 did not bring says so; its score is the dense side's share alone.
    dense_only = [r for r in results if r["lexical_rank"] is None]
    assert dense_only and all(r["score"] == pytest.approx(1 / (60 + r["dense_rank"]), abs=1e-6) for r in dense_only)


def test_where_filter_applies_to_both_sides(hybrid):
    results = hybrid.search("lighthouse keepers and the COBOL compiler", k=10, where={"title": "Lighthouses"})
    assert results and {r["title"] for r in results} == {"Lighthouses"}
    # Ranks on the lexical side count among the chunks that passed the filter.
    assert sorted(r["lexical_rank"] for r in results if r["lexical_rank"] is not None)[0] == 1


def test_search_many_fuses_queries_embedded_in_one_batch(hybrid, ingestor, embedder, monkeypatch):
    batches = []
    original = embedder.embed_queries
    monkeypatch.setattr(embedder, "embed_queries", lambda texts: batches.append(len(texts)) or original(texts))
    queries = ["Who built the first COBOL compiler?", "How do bees tell each other where flowers are?"]
    # Every chunk is a candidate of both queries in so small a corpus; take them all.
    fused = hybrid.search_many(queries, k=20)
    assert batches == [2]
    assert [r["score"] for r in fused] == sorted((r["score"] for r in fused), reverse=True)
    # Each query's best chunk is first on both sides; ranks are the best over the queries.
    best = {(r["title"], r["heading"]): (r["dense_rank"], r["lexical_rank"]) for r in fused}
    assert best[("Grace Hopper", "")] == best[("Honey bees", "Waggle dance")] == (1, 1)
    dense = DenseRetriever(embedder, ingestor.store).search_many(queries, k=20)
    assert batches == [2, 2]
    ranks = {(r["title"], r["heading"]): r["dense_rank"] for r in dense}
    assert ranks[("Grace Hopper", "")] == ranks[("Honey bees", "Waggle dance")] == 1
    assert hybrid.search_many([], k=4) == []


def test_index_is_rebuilt_after_a_change_and_reused_otherwise(tmp_path, corpus, ingestor):
    index = LexicalIndex(ingestor.store)
    assert index.search("Fresnel", k=1) and index.builds == 1
    first = published(index)
    assert len(first) == 1
    stamp = (index.path / first[0] / "ids.json").stat().st_mtime_ns

    assert index.search("Fresnel", k=1) and index.builds == 1
    assert published(index) == first and (index.path / first[0] / "ids.json").stat().st_mtime_ns == stamp

    # A changed file: same number of chunks, new text, so a new fingerprint.
    corpus["markdown"].write_text(corpus["markdown"].read_text().replace("Augustin-Jean Fresnel", "Augustin-Jean Fresnel and Arago"))
    ingestor.ingest([tmp_path / "docs"], progress=False)
    assert index.search("Arago", k=1)[0][0] == chunk_with_heading(ingestor.store, "Fresnel lens")
    assert index.builds == 2

    # A new file.
    (tmp_path / "docs" / "tides.md").write_text("# Tides\nSpring tides follow the new and the full moon.")
    ingestor.ingest([tmp_path / "docs"], progress=False)
    assert index.search("tides", k=1) and index.builds == 3
    # Only the current index is kept.
    assert len(published(index)) == 1 and published(index) != first

    assert index.search("tides", k=1) and index.builds == 3


def test_a_collection_not_written_since_is_not_listed_again(tmp_path, corpus, ingestor):
    index = LexicalIndex(ingestor.store)
    index.search("Fresnel", k=1)
    stamp = ingestor.store.write_stamp()
    assert stamp is not None and stamp[0] == str(ingestor.store.collection.id)
    index.search("Fresnel", k=1)
    assert index.listings == 1 and ingestor.store.write_stamp() == stamp
    (tmp_path / "docs" / "tides.md").write_text("# Tides\nSpring tides follow the new and the full moon.")
    ingestor.ingest([tmp_path / "docs"], progress=False)
    assert ingestor.store.write_stamp()[1] > stamp[1]
    assert index.search("tides", k=1) and index.listings == 2 and index.builds == 2

    # Deleting moves the stamp too: the file's chunks leave the index.
    (tmp_path / "docs" / "tides.md").unlink()
    report = ingestor.ingest([tmp_path / "docs"], progress=False, prune=True)
    assert report.chunks_removed >= 1
    assert not [hit for hit in index.search("spring tides moon", k=5)
                if "tides" in (ingestor.store.collection.get(ids=[hit[0]])["documents"][0] or "").lower()]
    assert index.listings == 3


def test_without_a_write_stamp_every_search_lists(corpus, ingestor, monkeypatch):
    index = LexicalIndex(ingestor.store)
    monkeypatch.setattr(ingestor.store, "write_stamp", lambda: None)  # as for a Chroma server
    index.search("Fresnel", k=1)
    index.search("Fresnel", k=1)
    assert index.listings == 2 and index.builds == 1
    assert not (index.path / "listing.json").exists()


def test_another_instance_and_another_process_read_the_saved_index(tmp_path, corpus, ingestor, settings, embedder):
    first = LexicalIndex(ingestor.store)
    expected = first.search("COBOL compiler", k=3)
    assert expected and first.builds == 1

    again = LexicalIndex(ChunkStore(settings, embedder.model_id, embedder.dim))
    assert again.search("COBOL compiler", k=3) == expected and again.builds == 0

    got = search_in_new_process(settings, embedder, "COBOL compiler", tmp_path)
    assert got["builds"] == 0
    assert [tuple(h) for h in got["hits"]] == [(cid, pytest.approx(score)) for cid, score in expected]


def test_a_new_process_takes_the_last_listing_while_nothing_was_written_since(
        tmp_path, corpus, ingestor, settings, embedder):
    first = LexicalIndex(ingestor.store)
    expected = first.search("COBOL compiler", k=3)
    assert expected and first.listings == 1 and (first.path / "listing.json").is_file()
    new_process = partial(search_in_new_process, settings, embedder, cwd=tmp_path)

    # Opening the client writes to Chroma's database file, but no chunk: the recorded listing holds.
    got = new_process("COBOL compiler")
    assert (got["listings"], got["builds"]) == (0, 0)
    assert [tuple(h) for h in got["hits"]] == [(cid, pytest.approx(score)) for cid, score in expected]

    # After a write the record no longer matches: the next process lists, finds the new chunk, records anew.
    (tmp_path / "docs" / "tides.md").write_text("# Tides\nSpring tides follow the new and the full moon.")
    ingestor.ingest([tmp_path / "docs"], progress=False)
    got = new_process("tides")
    assert (got["listings"], got["builds"]) == (1, 1) and got["hits"]
    assert got["hits"][0][0] == chunk_with_heading(ingestor.store, "Tides")
    again = new_process("tides")
    assert (again["listings"], again["builds"]) == (0, 0)

    # A record naming an index that is gone (pruned, or never saved) sends the process back to listing.
    record = json.loads((first.path / "listing.json").read_text())
    (first.path / "listing.json").write_text(json.dumps({**record, "fingerprint": "0" * 32}))
    got = new_process("tides")
    assert got["listings"] == 1 and got["builds"] == 0 and got["hits"][0][0] == chunk_with_heading(ingestor.store, "Tides")


def test_searches_in_another_process_do_not_get_in_the_way_of_an_ingest(tmp_path, corpus, ingestor, settings, embedder):
    # The other process reads Chroma's database for its write stamp before each search, as fast as it can.
    script = (
        "import json, sys, time\n"
        "from arag.settings import Settings\n"
        "from arag.index.store import ChunkStore\n"
        "from arag.index.lexical import LexicalIndex\n"
        "index = LexicalIndex(ChunkStore(Settings(data_dir=sys.argv[1]), sys.argv[2], int(sys.argv[3])))\n"
        "searches, until = 0, time.time() + float(sys.argv[4])\n"
        "while time.time() < until:\n"
        "    index.search('tides of the moon', k=3)\n"
        "    searches += 1\n"
        "print(json.dumps({'searches': searches, 'listings': index.listings}))\n"
    )
    searcher = subprocess.Popen(
        [sys.executable, "-c", script, str(settings.data_dir), embedder.model_id, str(embedder.dim), "12"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(4)  # past the searcher's imports, so the writes below meet its reads
        for n in range(8):
            (tmp_path / "docs" / f"tides-{n}.md").write_text(f"# Tides {n}\nSpring tide number {n} follows the moon.")
            report = ingestor.ingest([tmp_path / "docs"], progress=False)
            assert report.chunks_written >= 1 and not report.failures
        out, err = searcher.communicate(timeout=120)
    finally:
        if searcher.poll() is None:
            searcher.kill()
            searcher.wait()
    assert searcher.returncode == 0, err
    got = json.loads(out.strip().splitlines()[-1])
    assert got["searches"] > got["listings"] >= 2  # it saw the writes, and skipped listing in between
    assert ingestor.store.collection.get(where={"heading": "Tides 7"}, include=[])["ids"]


def test_an_ingest_for_hybrid_search_leaves_bm25_ready_for_the_next_question(tmp_path, settings, embedder):
    from arag.ingestion.ingest import Ingestor

    hybrid_settings = settings.model_copy(update={"retrieval": "hybrid"})
    store = ChunkStore(hybrid_settings, embedder.model_id, embedder.dim)
    ingestor = Ingestor(hybrid_settings, embedder, store)
    write_corpus(tmp_path / "docs")
    report = ingestor.ingest([tmp_path / "docs"], progress=False)
    assert report.chunks_written and 0 < report.lexical_seconds <= report.seconds
    assert "BM25 index" in report.summary()
    question = LexicalIndex(ChunkStore(hybrid_settings, embedder.model_id, embedder.dim))
    assert question.search("Fresnel lens", k=1)[0][0] == chunk_with_heading(store, "Fresnel lens")
    assert (question.listings, question.builds) == (0, 0)

    # Nothing changed: nothing to bring up to date.
    again = ingestor.ingest([tmp_path / "docs"], progress=False)
    assert again.unchanged and again.lexical_seconds == 0.0


def test_concurrent_first_searches_build_once(corpus, ingestor):
    index = LexicalIndex(ingestor.store)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: index.search("Fresnel lens", k=2), range(4)))
    assert index.builds == 1 and all(r == results[0] for r in results)


def test_a_failed_save_publishes_nothing_and_search_still_works(corpus, ingestor, monkeypatch):
    import bm25s

    def crash(self, save_dir, **kwargs):
        (Path(save_dir) / "data.csc.index.npy").write_bytes(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(bm25s.BM25, "save", crash)
    index = LexicalIndex(ingestor.store)
    assert index.search("Fresnel", k=1)
    assert published(index) == []
    monkeypatch.undo()
    fresh = LexicalIndex(ingestor.store)
    assert fresh.search("Fresnel", k=1) and fresh.builds == 1 and len(published(fresh)) == 1


def test_a_damaged_index_is_rebuilt_and_crash_leftovers_are_cleared(corpus, ingestor):
    index = LexicalIndex(ingestor.store)
    expected = index.search("Fresnel", k=2)
    (folder,) = published(index)
    (index.path / folder / "vocab.index.json").write_text("{not json")
    leftover = index.path / ".tmp-crashed"
    leftover.mkdir()
    (leftover / "data.csc.index.npy").write_bytes(b"half")
    os.utime(leftover, (0, 0))

    fresh = LexicalIndex(ingestor.store)
    assert fresh.search("Fresnel", k=2) == expected and fresh.builds == 1
    assert published(fresh) == [folder]


def test_empty_collection_gives_nothing(settings, embedder, tmp_path, ingestor):
    store = ChunkStore(settings, embedder.model_id, embedder.dim)
    index = LexicalIndex(store)
    assert index.search("anything", k=5) == []
    assert HybridRetriever(embedder, store, index).search("anything", k=5) == []
    assert HybridRetriever(embedder, store, index).search_many(["a", "b"], k=5) == []
    assert DenseRetriever(embedder, store).search_many(["anything"], k=5) == []
    assert published(index) == []

    # Emptied after it was indexed: the index follows, nothing stale comes back.
    (tmp_path / "note.md").write_text("# Note\nCats purr.")
    ingestor.ingest([tmp_path / "note.md"], progress=False)
    assert index.search("cats", k=5)
    store.delete_ids([cid for cid, _ in store.iter_metadata()])
    assert index.search("cats", k=5) == []


def test_searches_count_the_collection_once_and_an_emptied_one_still_gives_nothing(settings, embedder, tmp_path,
                                                                                    ingestor, monkeypatch):
    # Chroma counts by a scan (49 ms at 1,000,000 chunks, a query 2.4 ms): a search must not count each time.
    (tmp_path / "note.md").write_text("# Note\nCats purr.")
    ingestor.ingest([tmp_path / "note.md"], progress=False)
    store = ChunkStore(settings, embedder.model_id, embedder.dim)
    hybrid, dense = HybridRetriever(embedder, store, LexicalIndex(store)), DenseRetriever(embedder, store)
    assert hybrid.search("cats", k=2) and dense.search("cats", k=2)
    counts = []
    monkeypatch.setattr(type(store.collection), "count", lambda self: counts.append(1) or 1, raising=False)
    assert hybrid.search("cats", k=2) and dense.search_many(["cats", "purr"], k=2)
    assert store.query(embedder.embed_queries(["cats"])[0], 2)
    assert counts == []
    monkeypatch.undo()

    # Another process empties the collection: this store still believes it holds chunks, and finds none.
    ingestor.store.delete_ids([cid for cid, _ in ingestor.store.iter_metadata()])
    assert not store.is_empty() and ingestor.store.is_empty()
    assert store.query(embedder.embed_queries(["cats"])[0], 2) == []
    assert hybrid.search("cats", k=2) == [] and dense.search("cats", k=2) == []


def test_components_pick_the_retriever_from_settings(settings, embedder):
    from arag.runtime.components import Components

    assert type(settings).model_fields["retrieval"].default == "hybrid"
    hybrid = Components(settings.model_copy(update={"retrieval": "hybrid"}), embedder=embedder).retriever
    assert isinstance(hybrid, HybridRetriever)
    dense = Components(settings.model_copy(update={"retrieval": "dense"}), embedder=embedder).retriever
    assert isinstance(dense, DenseRetriever)


def test_idf_comes_from_the_collection_and_feeds_the_multi_scorer(corpus, ingestor, settings, embedder):
    from arag.relevance.scorers import MultiScorer
    from arag.runtime.components import Components

    index = LexicalIndex(ingestor.store)
    n = ingestor.store.count()
    idf = index.idf(["toolkit", "xylophon"])
    # "toolkit" is in the three chunks of its document; a term no chunk holds weighs most.
    assert idf["toolkit"] == pytest.approx(math.log(1 + (n - 3 + 0.5) / 3.5))
    assert idf["xylophon"] > idf["toolkit"] > 0

    parts = Components(settings.model_copy(update={"scorer": "multi"}), embedder=embedder, store=ingestor.store)
    judge = parts.judge_for(parts.settings.model_copy(update={"scorer": "multi"}))
    assert isinstance(judge.scorer, MultiScorer) and judge.link_weight > 0
    chunks = DenseRetriever(embedder, ingestor.store).search("deprecated parse_quux_header removal", k=5)
    judged = judge.judge("deprecated parse_quux_header removal", chunks, links=False)
    assert all(0.0 <= c["relevance"] <= 1.0 for c in judged)
    best = max(judged, key=lambda c: c["relevance"])
    assert best["heading"] == "Release notes"
    # The lexical part is the share of the query's IDF found in the passage: all of it for the
    # release notes, which hold the identifier itself.
    features = judge.scorer.features("parse_quux_header", [c["text"] for c in chunks])
    assert features[[c["heading"] for c in chunks].index("Release notes"), 1] == pytest.approx(1.0)
