"""Ingestion into a real Chroma collection with the real embedding model."""

from __future__ import annotations

import numpy as np
import pytest
from documents import pdf_bytes, slide_deck, word_document, write_corpus

from arag.index.store import ChunkStore, IndexMismatch
from arag.ingestion.ingest import Ingestor


def chunks_by_file(store: ChunkStore) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for _, meta in store.iter_metadata():
        out.setdefault(meta["file"], []).append(meta)
    return out


def assert_consistent(store: ChunkStore) -> None:
    """Every file's chunks share one hash, number exactly file_chunks, and positions do not repeat."""
    for file, metas in chunks_by_file(store).items():
        assert {m["file_hash"] for m in metas} == {metas[0]["file_hash"]}, file
        assert len(metas) == metas[0]["file_chunks"], file
        keys = [(m["source"], m["position"]) for m in metas]
        assert len(keys) == len(set(keys)), file


def test_each_format_is_ingested_and_reingest_embeds_nothing(tmp_path, ingestor):
    write_corpus(tmp_path / "docs")
    first = ingestor.ingest([tmp_path / "docs"], progress=False)
    assert first.added == 5 and not first.failures
    kinds = {m["kind"] for metas in chunks_by_file(ingestor.store).values() for m in metas}
    assert kinds == {"markdown", "html", "text", "jsonl", "pdf"}
    total = ingestor.store.count()
    assert total == first.chunks_written == first.chunks_embedded

    again = ingestor.ingest([tmp_path / "docs"], progress=False)
    assert (again.added, again.updated, again.unchanged, again.chunks_embedded) == (0, 0, 5, 0)
    assert ingestor.store.count() == total
    assert_consistent(ingestor.store)


def test_each_chunk_records_the_word_pieces_the_encoder_counts_in_it(tmp_path, ingestor):
    # Paragraphs are counted in one batch, the sentences of an over-long one one at a time; both
    # must give the count of the chunk as stored.
    long_paragraph = " ".join(f"Sentence {i} names the lighthouse keeper's tenth cousin." for i in range(60))
    doc = tmp_path / "keepers.md"
    doc.write_text(f"# Keepers\n\nA short opening.\n\n{long_paragraph}\n\nA short ending.\n")
    report = ingestor.ingest([doc], progress=False)
    got = ingestor.store.collection.get(include=["documents", "metadatas"])
    assert report.chunks_written == len(got["ids"]) >= 3
    budget = max(ingestor.settings.chunk_tokens, ingestor.settings.paragraph_tokens)
    for text, meta in zip(got["documents"], got["metadatas"]):
        assert meta["tokens"] == ingestor.embedder.count_tokens(text) <= budget


def test_changed_file_replaces_its_chunks_and_reuses_unchanged_vectors(tmp_path, ingestor):
    paths = write_corpus(tmp_path / "docs")
    ingestor.ingest([tmp_path / "docs"], progress=False)
    before = chunks_by_file(ingestor.store)[str(paths["markdown"])]
    paths["markdown"].write_text(paths["markdown"].read_text().replace("twenty nautical miles", "twenty-two nautical miles"))
    report = ingestor.ingest([tmp_path / "docs"], progress=False)
    assert (report.updated, report.unchanged) == (1, 4)
    after = chunks_by_file(ingestor.store)[str(paths["markdown"])]
    assert len(after) == len(before)
    # Only the edited section is embedded again; the others reuse their stored vectors.
    assert report.chunks_embedded == 1 and report.chunks_reused == len(after) - 1
    texts = [ingestor.store.collection.get(where={"file": str(paths["markdown"])})["documents"]]
    assert any("twenty-two" in t for t in texts[0]) and not any("twenty nautical" in t for t in texts[0])
    assert_consistent(ingestor.store)


def test_a_new_chunk_size_rechunks_every_file_at_the_next_ingest(tmp_path, settings, embedder, ingestor):
    from arag.index.store import ChunkStore

    write_corpus(tmp_path / "docs")
    sentences = " ".join(f"Keeper {i} logged the lamp's oil at dusk and again at dawn." for i in range(12))
    (tmp_path / "docs" / "log.md").write_text(f"# Lamp log\n\n{sentences}\n")
    ingestor.ingest([tmp_path / "docs"], progress=False)
    before = ingestor.store.count()
    smaller = settings.model_copy(update={"chunk_tokens": 48, "paragraph_tokens": 48})
    again = Ingestor(smaller, embedder, ChunkStore(smaller, embedder.model_id, embedder.dim))
    report = again.ingest([tmp_path / "docs"], progress=False)
    assert (report.updated, report.unchanged) == (6, 0) and not report.failures
    metas = [meta for _, meta in again.store.iter_metadata()]
    assert len(metas) == again.store.count() > before
    assert max(meta["tokens"] for meta in metas) <= 48 < ingestor.settings.paragraph_tokens
    assert_consistent(again.store)


def test_a_size_the_parent_strategy_does_not_read_rechunks_nothing(tmp_path, settings, embedder):
    from arag.index.store import ChunkStore

    write_corpus(tmp_path / "docs")
    parent = settings.model_copy(update={"index_strategy": "parent", "chunk_tokens": 64, "parent_tokens": 300})
    first = Ingestor(parent, embedder, ChunkStore(parent, embedder.model_id, embedder.dim)).ingest(
        [tmp_path / "docs"], progress=False)
    assert first.added >= 4 and not first.failures
    other_paragraphs = parent.model_copy(update={"paragraph_tokens": 96})
    again = Ingestor(other_paragraphs, embedder, ChunkStore(other_paragraphs, embedder.model_id, embedder.dim))
    report = again.ingest([tmp_path / "docs"], progress=False)
    assert (report.updated, report.unchanged, report.chunks_written) == (0, first.added, 0) and not report.failures
    smaller = parent.model_copy(update={"chunk_tokens": 48})
    report = Ingestor(smaller, embedder, ChunkStore(smaller, embedder.model_id, embedder.dim)).ingest(
        [tmp_path / "docs"], progress=False)
    assert (report.updated, report.unchanged) == (first.added, 0)  # a size it reads still re-chunks


def test_prune_removes_chunks_of_deleted_files_only_under_given_folders(tmp_path, ingestor):
    paths = write_corpus(tmp_path / "docs")
    other = tmp_path / "elsewhere.md"
    other.write_text("# Kept\nThis file lives outside the pruned folder.")
    ingestor.ingest([tmp_path / "docs", other], progress=False)
    paths["text"].unlink()
    other_chunks = len(chunks_by_file(ingestor.store)[str(other)])
    report = ingestor.ingest([tmp_path / "docs"], prune=True, progress=False)
    assert report.removed == 1
    files = chunks_by_file(ingestor.store)
    assert str(paths["text"]) not in files
    assert len(files[str(other)]) == other_chunks


def test_without_prune_deleted_files_stay(tmp_path, ingestor):
    paths = write_corpus(tmp_path / "docs")
    ingestor.ingest([tmp_path / "docs"], progress=False)
    paths["text"].unlink()
    assert ingestor.ingest([tmp_path / "docs"], progress=False).removed == 0
    assert str(paths["text"]) in chunks_by_file(ingestor.store)


def test_bad_files_fail_alone_and_lose_nothing(tmp_path, ingestor):
    paths = write_corpus(tmp_path / "docs")
    ingestor.ingest([tmp_path / "docs"], progress=False)
    count = ingestor.store.count()
    paths["markdown"].write_bytes(b"\xff\xfe broken \x00 bytes")
    (tmp_path / "docs" / "new.md").write_text("# New\nA new note about comets.")
    report = ingestor.ingest([tmp_path / "docs", tmp_path / "missing"], progress=False)
    reasons = sorted(f.reason for f in report.failures)
    assert reasons == ["binary content in a text file (NUL bytes); not ingested", "no such file or directory"]
    assert report.added == 1
    # The markdown file's previous chunks are still there, untouched.
    assert str(paths["markdown"]) in chunks_by_file(ingestor.store)
    assert ingestor.store.count() == count + 1


def test_a_sphinx_html_build_is_read_once_not_with_its_page_sources(tmp_path, ingestor):
    """Sphinx writes each page's source beside the HTML (``_sources/page.rst.txt``): the folder's pages are
    read and the copies skipped, which the report says; named itself, the ``_sources`` folder is read.
    """
    site = tmp_path / "html"
    (site / "_sources").mkdir(parents=True)
    (site / "objects.inv").write_bytes(b"# Sphinx inventory version 2\n")
    (site / "tides.html").write_text("<nav>Home</nav><main><h1>Tides</h1><p>The moon pulls the sea.</p></main>")
    (site / "_sources" / "tides.rst.txt").write_text("Tides\n=====\n\nThe moon pulls the sea.\n")
    report = ingestor.ingest([site], progress=False)
    assert (report.added, report.failures, report.skipped) == (1, [], [str(site.resolve() / "_sources")])
    assert "skipped the page sources Sphinx copies" in report.summary()
    assert [m["kind"] for _, m in ingestor.store.iter_metadata()] == ["html"]
    sources = ingestor.ingest([site / "_sources"], progress=False)
    assert (sources.added, sources.skipped) == (1, [])


def test_exclude_patterns_leave_out_names_globs_and_paths_and_prune_drops_what_they_now_leave_out(tmp_path, ingestor):
    """A name matches at any depth, a glob any file, a path only from the folder given; a file named
    itself is read; a pattern that matches nothing is reported; ``prune`` removes files now excluded
    and Sphinx page sources indexed before, and keeps files outside the folders given.
    """
    docs = tmp_path / "docs"
    notes = {
        "guide.md": "# Guide\nThe guide explains tides.",
        "drafts/idea.md": "# Idea\nA draft about comets.",
        "team/drafts/plan.md": "# Plan\nA nested draft.",
        "team/log.txt": "A plain log of the week.",
        "archive/2019/old.md": "# Old\nNotes from 2019.",
        "team/archive/2019/kept.md": "# Kept\nAnchored patterns miss this one.",
    }
    for name, text in notes.items():
        (docs / name).parent.mkdir(parents=True, exist_ok=True)
        (docs / name).write_text(text)
    everything = ingestor.ingest([docs], progress=False)
    assert everything.added == 6 and everything.excluded == []

    report = ingestor.ingest([docs, docs / "team" / "log.txt"], prune=True, progress=False,
                             exclude=["drafts", "*.txt", "/archive/2019", "misspelt"])
    root = docs.resolve()
    assert sorted(report.excluded) == sorted(str(root / p) for p in ("drafts", "team/drafts", "team/log.txt",
                                                                     "archive/2019"))
    assert report.unmatched_patterns == ["misspelt"]
    assert "left out by exclude patterns: 3 folder(s), 1 file(s)" in report.summary()
    assert "exclude pattern(s) matching nothing: 'misspelt'" in report.summary()
    # log.txt is excluded inside the folder but named itself, so it stays; three files go.
    assert (report.removed, report.unchanged) == (3, 3)
    assert sorted(chunks_by_file(ingestor.store)) == sorted(
        str(root / p) for p in ("guide.md", "team/log.txt", "team/archive/2019/kept.md"))

    site = tmp_path / "html"
    (site / "_sources").mkdir(parents=True)
    (site / "searchindex.js").write_text("Search.setIndex({})")
    (site / "tides.html").write_text("<main><h1>Tides</h1><p>The moon pulls the sea.</p></main>")
    (site / "_sources" / "tides.rst.txt").write_text("Tides\n=====\n\nThe moon pulls the sea.\n")
    ingestor.ingest([site / "_sources"], progress=False)
    pruned = ingestor.ingest([site], prune=True, progress=False)
    assert (pruned.added, pruned.removed) == (1, 1)
    assert [m["kind"] for m in chunks_by_file(ingestor.store)[str(site.resolve() / "tides.html")]] == ["html"]
    assert str(site.resolve() / "_sources" / "tides.rst.txt") not in chunks_by_file(ingestor.store)
    assert str(root / "guide.md") in chunks_by_file(ingestor.store)

    with pytest.raises(ValueError, match="exclude pattern '/'"):
        ingestor.ingest([docs], progress=False, exclude=["/"])


def test_file_over_size_limit_is_refused(tmp_path, settings, embedder):
    small = settings.model_copy(update={"max_file_mb": 0.001})
    big = tmp_path / "big.txt"
    big.write_text("word " * 2000)
    report = Ingestor(small, embedder, ChunkStore(small, embedder.model_id, embedder.dim)).ingest([big], progress=False)
    assert "exceeds the 0.001 MiB limit" in report.failures[0].reason


def test_interrupted_update_is_completed_by_the_next_run(tmp_path, ingestor, monkeypatch):
    paths = write_corpus(tmp_path / "docs")
    ingestor.ingest([tmp_path / "docs"], progress=False)
    paths["markdown"].write_text("# Lighthouses\n\nCompletely rewritten.\n\n## New part\n\nFresh text.")

    def crash(ids):
        raise KeyboardInterrupt("killed between upsert and delete")

    monkeypatch.setattr(ingestor.store, "delete_ids", crash)
    with pytest.raises(KeyboardInterrupt):
        ingestor.ingest([paths["markdown"]], progress=False)
    monkeypatch.undo()
    # Old and new chunks coexist now; the next run must notice and finish the job.
    report = ingestor.ingest([paths["markdown"]], progress=False)
    assert report.updated == 1 and report.chunks_embedded == 0
    assert_consistent(ingestor.store)
    texts = ingestor.store.collection.get(where={"file": str(paths["markdown"])})["documents"]
    assert not any("Fresnel" in t for t in texts)


def test_collection_survives_restart_and_searches(tmp_path, settings, embedder, ingestor):
    write_corpus(tmp_path / "docs")
    ingestor.ingest([tmp_path / "docs"], progress=False)
    count = ingestor.store.count()
    del ingestor
    from arag.retrieval.retriever import DenseRetriever

    reopened = ChunkStore(settings, embedder.model_id, embedder.dim)
    assert reopened.count() == count
    hits = DenseRetriever(embedder, reopened).search("Who built the first COBOL compiler?", k=2)
    assert hits[0]["title"] == "Grace Hopper"
    assert 0.0 < hits[0]["score"] <= 1.0
    # Cosine distance, and the search breadth for its size rather than Chroma's narrower default.
    hnsw = reopened.collection.configuration["hnsw"]
    assert hnsw["space"] == "cosine" and hnsw["ef_search"] == 256 and settings.hnsw_search_ef == "auto"


@pytest.mark.parametrize(("write", "name", "question", "heading", "words"), [
    (word_document, "guide.docx", "How much does a mooring cost a night?", "Tides", "7 pounds a night"),
    (slide_deck, "guide.pptx", "What does a night cost for a 12 m boat?", "Slide 3: Prices", "12 m | 380 kroner"),
])
def test_an_office_document_is_ingested_found_and_skipped_when_unchanged(tmp_path, embedder, ingestor, write, name,
                                                                          question, heading, words):
    from arag.retrieval.retriever import DenseRetriever

    path = tmp_path / name
    write(path)
    first = ingestor.ingest([tmp_path], progress=False)
    assert (first.added, first.failures) == (1, [])
    hits = DenseRetriever(embedder, ingestor.store).search(question, k=1)
    assert (hits[0]["title"], hits[0]["source"], hits[0]["heading"]) == ("Harbour handbook", str(path.resolve()), heading)
    assert words in hits[0]["text"]
    assert ingestor.ingest([tmp_path], progress=False).unchanged == 1


def test_an_ingest_gives_a_collection_the_search_breadth_of_its_size(tmp_path, settings, embedder):
    from arag.index.store import search_breadth_for

    assert [search_breadth_for(n) for n in (0, 100_000, 100_001, 5_000_000)] == [256, 256, 512, 512]
    # A collection made with the breadth of earlier versions (64) is raised at its next ingest...
    old = ChunkStore(settings.model_copy(update={"hnsw_search_ef": 64}), embedder.model_id, embedder.dim)
    assert old.collection.configuration["hnsw"]["ef_search"] == 64
    write_corpus(tmp_path / "docs")
    Ingestor(settings, embedder, ChunkStore(settings, embedder.model_id, embedder.dim)).ingest([tmp_path / "docs"], progress=False)
    # ... for the processes that open it afterwards.
    assert ChunkStore(settings, embedder.model_id, embedder.dim).fit_search_breadth() is None
    assert ChunkStore(settings, embedder.model_id, embedder.dim).collection.configuration_json["hnsw"]["ef_search"] == 256
    # A fixed breadth is kept.
    fixed = ChunkStore(settings.model_copy(update={"hnsw_search_ef": 100, "collection": "fixed"}), embedder.model_id, embedder.dim)
    assert fixed.search_breadth(5_000_000) == 100


def test_other_embedding_model_is_refused(settings, embedder):
    ChunkStore(settings, embedder.model_id, embedder.dim).upsert([])
    ChunkStore(settings, embedder.model_id, embedder.dim).count()
    with pytest.raises(IndexMismatch, match="was built with embedding model"):
        ChunkStore(settings, "other-model@123", embedder.dim).count()


def test_same_weights_run_by_another_backend_names_the_backend_that_built_the_index(settings, embedder):
    fp32 = embedder.weights_id
    ChunkStore(settings, fp32, embedder.dim).count()
    with pytest.raises(IndexMismatch, match=r"ARAG_EMBEDDING_BACKEND=auto \(or onnx\) to use it"):
        ChunkStore(settings, fp32 + "+int8s", embedder.dim).count()


def test_the_auto_backend_gives_a_new_collection_fp32_and_keeps_an_existing_ones(tmp_path, settings):
    from arag.runtime.components import Components

    write_corpus(tmp_path / "docs")
    assert settings.embedding_backend == "auto"
    new = Ingestor.from_settings(settings)
    assert (new.embedder.backend, new.embedder.model_id) == ("onnx", new.embedder.weights_id)
    assert new.ingest([tmp_path / "docs"], progress=False).added > 0
    # A collection made with int8 weights is read and extended with them.
    int8 = settings.model_copy(update={"collection": "made-with-int8", "embedding_backend": "onnx-int8"})
    Ingestor.from_settings(int8).ingest([tmp_path / "docs"], progress=False)
    for collection, backend in (("made-with-int8", "onnx-int8"), (settings.collection, "onnx")):
        auto = settings.model_copy(update={"collection": collection})
        assert Ingestor.from_settings(auto).embedder.backend == backend
        parts = Components(auto)
        assert parts.embedder.backend == backend
        hits, error, _ = parts.search(auto, ["When was the lighthouse built?"], 3)
        assert error is None and hits, collection
    # A store handed in decides for the embedder built beside it.
    handed = ChunkStore(int8, new.embedder.weights_id + "+int8s", new.embedder.dim, name="made-with-int8")
    assert Components(settings, store=handed).embedder.backend == "onnx-int8"


def test_a_fixed_backend_chooses_its_embedder_without_opening_chroma(settings):
    from arag.runtime.components import Components

    parts = Components(settings.model_copy(update={"embedding_backend": "onnx"}))
    assert parts.embedder.backend == "onnx"
    assert "client" not in vars(parts)  # the cached client: opened only when the store needs it
    assert parts.store.count() == 0 and "client" in vars(parts)


def test_an_index_of_the_earlier_unsigned_int8_export_asks_for_a_reingest(settings, embedder):
    ChunkStore(settings, embedder.weights_id + "+int8", embedder.dim).count()
    with pytest.raises(IndexMismatch, match="earlier int8 export"):
        ChunkStore(settings, embedder.weights_id + "+int8s", embedder.dim).count()


def test_embeddings_are_normalised_and_batched_in_order(embedder):
    texts = ["short", "a much longer sentence about volcanoes and their eruptions", "medium length text"]
    together = embedder.embed_documents(texts)
    alone = np.stack([embedder.embed_documents([t])[0] for t in texts])
    assert np.allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-4)
    assert np.allclose(together, alone, atol=1e-4)


def test_files_read_another_way_since_are_redone_once(tmp_path, ingestor, monkeypatch):
    """An index made when page.rst.txt was read as plain text, reST and Markdown markup kept, HTML
    read with the site around its content, PDF pages with their frame and headings without text of
    their own dropped, reads those files again as rendered once, then skips them; a plain text file
    is not redone.
    """
    import arag.ingestion.ingest as ingest_module
    import arag.ingestion.loaders as loaders

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "venv.rst.txt").write_text("Virtual Environments\n====================\n\n"
                                       "Create one with :mod:`venv`::\n\n   python3 -m venv tutorial-env\n")
    (docs / "notes.md").write_text("# Notes\n\nKeep them [short](https://example.org/short).\n")
    (docs / "plain.txt").write_text("Plain words, read as they stand.\n")
    (docs / "tides.html").write_text("<nav>Home</nav><main><h1>Tides</h1><p>The moon pulls the sea.</p></main>")
    (docs / "locks.pdf").write_bytes(pdf_bytes(["Lock Guide", "Open the upper gate last.", "1"], title="Locks", more_pages=[
        ["Lock Guide", "Close the sluices first.", "2"], ["Lock Guide", "Wait for level water.", "3"]]))
    word_document(docs / "berths.docx")
    with monkeypatch.context() as old_version:
        old_version.setattr(loaders, "text_format", lambda path: "text")
        old_version.setattr(ingest_module, "reading_revision", lambda path: b"")
        first = ingestor.ingest([docs], progress=False)
    assert first.added == 6
    titles = {m["title"] for _, m in ingestor.store.iter_metadata()}
    assert "venv.rst" in titles
    second = ingestor.ingest([docs], progress=False)
    assert (second.updated, second.unchanged) == (5, 1)
    by_title = {m["title"]: (m["kind"], doc) for doc, m in zip(*_documents(ingestor.store))}
    kind, text = by_title["Virtual Environments"]
    assert kind == "rst" and ":mod:" not in text and "`venv`:" in text and "    python3 -m venv tutorial-env" in text
    assert by_title["Notes"] == ("markdown", "Keep them short.")
    assert by_title["Tides"] == ("html", "The moon pulls the sea.")
    assert "Lock Guide" not in " ".join(text for text, meta in zip(*_documents(ingestor.store)) if meta["kind"] == "pdf")
    third = ingestor.ingest([docs], progress=False)
    assert (third.updated, third.unchanged) == (0, 6)


def _documents(store: ChunkStore) -> tuple[list[str], list[dict]]:
    got = store.collection.get(include=["documents", "metadatas"])
    return got["documents"], got["metadatas"]
