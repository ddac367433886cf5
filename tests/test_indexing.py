"""Indexing strategies and query construction on a real small corpus (the bundled tutorial pages):
parent-document retrieval, the summary tree (RAPTOR), self-query filters, context compression.
"""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import REPO
from scripted_llm import ScriptedChatModel

from arag.index.store import ChunkStore, IndexMismatch
from arag.runtime.components import Components
from graphs import build_graph

TUTORIAL = REPO / "arag" / "samples" / "python-tutorial"


def ingest(settings, embedder, paths, **kwargs):
    from arag.ingestion.ingest import Ingestor

    store = ChunkStore(settings, embedder.model_id, embedder.dim)
    report = Ingestor(settings, embedder, store).ingest(paths, progress=False, **kwargs)
    return store, report


def trace_of(out, node):
    return next(e for e in out["trace"] if e["node"] == node)


# --- parent documents ---------------------------------------------------------------------


def test_parent_strategy_matches_small_chunks_and_gives_their_sections(settings, embedder):
    parent_settings = settings.model_copy(update={"index_strategy": "parent", "chunk_tokens": 64, "parent_tokens": 300})
    store, report = ingest(parent_settings, embedder, [TUTORIAL])
    assert report.added == 7 and store.index_strategy == "parent"
    got = store.collection.get(include=["documents", "metadatas"])
    parents = {}
    for text, meta in zip(got["documents"], got["metadatas"]):
        assert meta["parent_id"] and text.split()[0] in meta["parent_text"]
        # Matched chunks are cut to chunk_tokens, paragraphs too (no paragraph kept whole past it).
        assert meta["tokens"] <= 64 < parent_settings.paragraph_tokens
        parents.setdefault(meta["parent_id"], []).append(text)
    assert len(parents) < len(got["ids"])  # parents hold several chunks
    # The collection keeps its strategy: ingesting it as plain chunks is refused.
    with pytest.raises(IndexMismatch, match="'parent' strategy"):
        ingest(settings, embedder, [TUTORIAL])

    llm = ScriptedChatModel(default="Use python3 -m venv [1].")
    graph = build_graph(components=Components(parent_settings.model_copy(update={"reflect": False}), llm=llm,
                                              embedder=embedder, store=store))
    out = graph.invoke({"question": "How do I create a virtual environment?"})
    rerank = trace_of(out, "rerank")
    assert rerank["parents"]["parents"] <= rerank["parents"]["chunks"]
    given = out["documents"]
    assert len({d["parent_id"] for d in given}) == len(given)  # each parent once
    first = given[0]
    assert first["text"] != first["matched"] and first["matched"].split()[0] in first["text"]
    assert first["text"][:60] in llm.prompts[-1]  # the model read the section, not the small chunk


# --- summary tree -------------------------------------------------------------------------


def test_summary_tree_builds_incrementally_and_is_searched(settings, embedder, tmp_path):
    from arag.index.tree import build_tree, traverse

    corpus = tmp_path / "tutorial"
    shutil.copytree(TUTORIAL, corpus)
    (corpus / "modules.rst").unlink()  # added later, to grow the tree
    store, _ = ingest(settings, embedder, [corpus])
    leaves = store.count()
    llm = ScriptedChatModel(default="A summary of how Python's tools and statements work.")
    report = build_tree(store, embedder, llm, cluster_size=5, progress=False)
    level1 = report.levels[0]
    assert level1["clusters"] >= leaves // 10 and report.llm_calls == sum(lv["summarised"] for lv in report.levels)
    assert len(report.levels) >= 2  # summaries of summaries
    summaries = store.collection.get(where={"kind": "summary"}, include=["metadatas"])
    ids = set(store.collection.get(include=[])["ids"])
    for meta in summaries["metadatas"]:
        children = json.loads(meta["children"])
        assert children and set(children) <= ids and meta["level"] >= 1
    covered = {c for m in summaries["metadatas"] if m["level"] == 1 for c in json.loads(m["children"])}
    assert len(covered) == leaves  # every chunk is under one level-1 summary

    again = build_tree(store, embedder, llm, cluster_size=5, progress=False)
    assert again.llm_calls == 0 and again.removed == 0  # nothing changed, nothing summarised

    shutil.copy(TUTORIAL / "modules.rst", corpus / "modules.rst")
    _, report_add = ingest(settings, embedder, [corpus], prune=True)
    assert report_add.added == 1 and report_add.removed == 0  # pruning leaves the summaries alone
    grown = build_tree(store, embedder, llm, cluster_size=5, progress=False)
    assert 0 < grown.llm_calls < report.llm_calls  # only the clusters that changed
    covered = {c for m in store.collection.get(where={"kind": "summary"}, include=["metadatas"])["metadatas"]
               if m["level"] == 1 for c in json.loads(m["children"])}
    assert len(covered) == store.count() - len(store.collection.get(where={"kind": "summary"}, include=[])["ids"])

    hits = traverse(store, embedder, "How do I import a module?", 4)
    assert hits and all(h["metadata"].get("kind") != "summary" for h in hits)
    parts = Components(settings.model_copy(update={"reflect": False}), llm=ScriptedChatModel(default="See [1]."),
                       embedder=embedder, store=store)
    graph = build_graph(components=parts)
    for mode in ("collapsed", "traversal", "leaves"):
        out = graph.invoke({"question": "What is the tutorial about overall?"}, {"configurable": {"tree_search": mode}})
        kinds = [store.collection.get(ids=[c])["metadatas"][0].get("kind") for c in trace_of(out, "retrieve")["ranking"]]
        assert kinds, mode
        if mode != "collapsed":
            assert "summary" not in kinds, mode
    collapsed = graph.invoke({"question": "What is the tutorial about overall?"}, {"configurable": {"tree_search": "collapsed"}})
    ranking = trace_of(collapsed, "retrieve")["ranking"]
    assert any(c.startswith("tree-") for c in ranking)  # summaries compete with chunks


# --- self-query -----------------------------------------------------------------------------


@pytest.fixture
def handbooks(settings, embedder, tmp_path):
    for year, leave in ((2022, "twenty"), (2023, "twenty-five")):
        (tmp_path / f"handbook-{year}.md").write_text(
            f"# Staff handbook {year}\n\nEvery employee gets {leave} days of paid leave a year. "
            "Leave is booked in the staff portal.")
    (tmp_path / "sales.md").write_text("# Sales playbook\n\nSales staff book leave with their regional manager.")
    ingest(settings, embedder, [tmp_path / "handbook-2022.md", tmp_path / "handbook-2023.md"], tags={"team": "hr"})
    store, _ = ingest(settings, embedder, [tmp_path / "sales.md"], tags={"team": "sales"})
    return store


def test_the_filter_schema_is_read_again_after_a_write_that_keeps_the_number_of_chunks(
        settings, embedder, tmp_path, handbooks, monkeypatch):
    parts = Components(settings, llm=ScriptedChatModel(default="-"), embedder=embedder, store=handbooks)
    assert parts.filter_schema()["team"]["values"] == ["hr", "sales"]
    monkeypatch.setattr(handbooks, "count", lambda: pytest.fail("counted: the write stamp should have answered"))
    assert parts.filter_schema()["team"]["values"] == ["hr", "sales"]
    monkeypatch.undo()
    before = handbooks.count()

    # The same file under another tag: the same chunk ids with new metadata, as many chunks as before.
    store, report = ingest(settings, embedder, [tmp_path / "sales.md"], tags={"team": "marketing"})
    assert report.chunks_written >= 1 and handbooks.count() == before
    assert parts.filter_schema()["team"]["values"] == ["hr", "marketing"]


def test_questions_become_filters_on_the_collections_own_fields(settings, embedder, handbooks):
    parts = Components(settings.model_copy(update={"reflect": False, "self_query": "rules"}), llm=ScriptedChatModel(default="25 days [1]."),
                       embedder=embedder, store=handbooks)
    assert parts.filter_schema()["year"] == {"type": "int", "values": [2022, 2023]}
    assert parts.filter_schema()["team"]["values"] == ["hr", "sales"]
    graph = build_graph(components=parts)
    out = graph.invoke({"question": "How many days of leave did the 2023 handbook give?"})
    where = trace_of(out, "self_query")["where"]
    # The year, and the one title it names; both point at the same document.
    assert where == {"$and": [{"title": {"$eq": "Staff handbook 2023"}}, {"year": {"$eq": 2023}}]}
    assert {d["title"] for d in out["candidates"]} == {"Staff handbook 2023"}
    out = graph.invoke({"question": "How do sales staff book leave?"})
    assert trace_of(out, "self_query")["where"] == {"team": {"$eq": "sales"}}
    assert {d["source"].rsplit("/", 1)[-1] for d in out["candidates"]} == {"sales.md"}
    # A question that names nothing filterable searches everything.
    out = graph.invoke({"question": "How is leave booked?"})
    assert trace_of(out, "self_query")["where"] is None and len({d["title"] for d in out["candidates"]}) == 3
    # Turned off per call.
    out = graph.invoke({"question": "What did the 2023 handbook say?"}, {"configurable": {"self_query": "off"}})
    assert trace_of(out, "self_query")["where"] is None


def test_llm_proposed_filters_are_validated_and_unsafe_ones_dropped(settings, embedder, handbooks):
    proposal = json.dumps({"conditions": [
        {"field": "salary", "op": "$gt", "value": 100},
        {"field": "team", "op": "$regex", "value": ".*"},
        {"field": "year", "op": "$eq", "value": "2023; DROP TABLE"},
        {"field": "team", "op": "$eq", "value": "hr"},
    ]})
    llm = ScriptedChatModel(script=[proposal], default="Twenty-five days [1].")
    graph = build_graph(components=Components(settings.model_copy(update={"reflect": False, "self_query": "llm"}),
                                              llm=llm, embedder=embedder, store=handbooks))
    out = graph.invoke({"question": "How much leave do HR people get?"})
    event = trace_of(out, "self_query")
    assert event["where"] == {"team": {"$eq": "hr"}} and len(event["dropped"]) == 3
    assert any("unknown field 'salary'" in n and "unsupported operator '$regex'" in n for n in out["notes"])
    assert {d["title"] for d in out["candidates"]} == {"Staff handbook 2022", "Staff handbook 2023"}


def test_a_filter_that_matches_nothing_is_lifted_with_a_note(settings, embedder, handbooks):
    llm = ScriptedChatModel(script=[json.dumps({"conditions": [{"field": "year", "op": "$gt", "value": 2030}]})],
                            default="I don't know.")
    graph = build_graph(components=Components(settings.model_copy(update={"reflect": False, "self_query": "llm"}),
                                              llm=llm, embedder=embedder, store=handbooks))
    out = graph.invoke({"question": "How is leave booked?"})
    assert any("no document matches the filter" in n for n in out["notes"]) and out["candidates"]


def test_ingest_tags_are_checked(settings, embedder, tmp_path):
    (tmp_path / "a.md").write_text("# A\n\nSome text about lighthouses and their keepers.")
    with pytest.raises(ValueError, match="reserved"):
        ingest(settings, embedder, [tmp_path / "a.md"], tags={"title": "x"})
    with pytest.raises(ValueError, match="lower-case"):
        ingest(settings, embedder, [tmp_path / "a.md"], tags={"Team": "x"})
    store, report = ingest(settings, embedder, [tmp_path / "a.md"], tags={"team": "ops"})
    # Changing a file's tags rewrites its chunks, without embedding them again.
    store, report = ingest(settings, embedder, [tmp_path / "a.md"], tags={"team": "sea"})
    assert report.updated == 1 and report.chunks_embedded == 0
    assert store.collection.get(include=["metadatas"])["metadatas"][0]["team"] == "sea"


# --- context compression ----------------------------------------------------------------------


def test_compression_keeps_the_relevant_sentences_and_fits_more_chunks(settings, embedder):
    store, _ = ingest(settings, embedder, [TUTORIAL])
    question = "How do I create a virtual environment?"

    def run(compression):
        llm = ScriptedChatModel(default="python3 -m venv [1].")
        graph = build_graph(components=Components(
            settings.model_copy(update={"reflect": False, "compression": compression, "top_k": 6, "context_tokens": 400}),
            llm=llm, embedder=embedder, store=store))
        return graph.invoke({"question": question}), llm

    plain, _ = run(False)
    squeezed, llm = run(True)
    stats = trace_of(squeezed, "rerank")["compression"]
    assert stats["tokens_after"] < stats["tokens_before"] and 0 < stats["saved"] < 1
    assert len(squeezed["documents"]) >= len(plain["documents"])  # the budget fits at least as many chunks
    for doc in squeezed["documents"]:
        if "full_text" in doc:  # compressed: whole sentences of the original, in order
            position = 0
            for sentence in doc["text"].split(". "):
                found = doc["full_text"].find(sentence.strip(), position)
                assert found >= 0
                position = found
    assert any("venv" in d["text"] for d in squeezed["documents"])
