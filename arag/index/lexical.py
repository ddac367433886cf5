"""BM25 over the chunks of the collection, persisted beside it and never stale.

The index covers what the encoder sees (title, heading and text, through
:func:`knowledge.ingest.embedding_text`), tokenised by bm25s: lower-cased words, its English
stopwords dropped, stemmed by PyStemmer's English (Snowball) stemmer. Scores are bm25s's
defaults (Lucene variant, k1 1.5, b 0.75).

Freshness. The index is keyed by a fingerprint of the collection: a hash over its sorted
chunk ids. Ingestion makes ids content addresses (they hash source, position and the embedded
text), so any chunk added, changed or removed changes the fingerprint (new text upserted under
an old id, which ingestion never does, would go unnoticed). Listing every id to compute it costs
about 5-8 s at a million chunks, so it is done only when the collection may have changed since the
last listing, as the store's write stamp tells (:meth:`ChunkStore.write_stamp`: Chroma's own
numbering of writes, read in a fraction of a millisecond; on a Chroma server, a token the app
renews after each of its writes). The stamp a listing was taken at, with the fingerprint it gave, is also
written down beside the indexes, so a new process (each ``arag ask``) loads the index without
listing. Where the store has no stamp every search lists.

Persistence. One complete index per fingerprint::

    <data_dir>/lexical/<collection>/<fingerprint>/   bm25s arrays, vocabulary, chunk ids
    <data_dir>/lexical/<collection>/listing.json     the last listing: its write stamp and fingerprint
    <data_dir>/lexical/<collection>/.tmp-*           one being written, or one being deleted

An index is written into a temporary folder, flushed to disk and renamed into place, so a
crash or a concurrent reader never sees half of one, and another process (the CLI after an
ingest, the UI) loads it instead of building again. Publishing one deletes the others.

Example:
    >>> query_terms("The lighthouses were guiding ships")
    ['lighthous', 'were', 'guid', 'ship']
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
import threading
import time
from array import array
from pathlib import Path

import numpy as np
import Stemmer

from arag.embeddings.embedder import embedding_text
from arag.index.store import ChunkStore

log = logging.getLogger(__name__)

#: Hashed into every fingerprint: changing tokenisation, scoring or layout orphans old indexes.
FORMAT = "arag-bm25/1 bm25s-lucene en-stopwords snowball-english"
#: Ids come in pages this large. Chroma's cost grows with the offset: at a million chunks, pages
#: of 50k took 32-37 s to list them all, one page 5.2-8.4 s (a million ids are about 90 MB).
ID_PAGE = 1_000_000
#: Documents are read this many ids at a time while building, so memory stays flat. By id, not by
#: offset: paging by offset re-reads what it skips (2.4 s against 1.6 s at 100k chunks).
DOC_PAGE = 5_000
#: Temporary folders older than this are leftovers of a crash and get deleted.
STALE_TMP_S = 3600
_TMP = ".tmp-"
#: The last listing of the collection: the write stamp it is valid for and the fingerprint it gave.
LISTING = "listing.json"


def _stemmer():
    # PyStemmer objects are not thread-safe; one per call costs microseconds.
    return Stemmer.Stemmer("english")


def query_terms(text: str) -> list[str]:
    """The terms of ``text`` as the index knows them: lower-cased, stopwords out, stemmed."""
    import bm25s  # here, not at the top: with scipy it takes about 0.2 s to import, and only BM25 work needs it

    tokens = bm25s.tokenize([text], stopwords="en", stemmer=_stemmer(), return_ids=False, show_progress=False)[0]
    return [t for t in tokens if t]


def fingerprint(ids: list[str]) -> str:
    """Identity of a collection's content: the hash of its sorted chunk ids and of FORMAT.

    Example:
        >>> fingerprint(["b", "a"]) == fingerprint(["a", "b"]) != fingerprint(["a"])
        True
    """
    digest = hashlib.sha256(FORMAT.encode())
    for cid in sorted(ids):
        digest.update(b"\x00" + cid.encode())
    return digest.hexdigest()[:32]


class LexicalIndex:
    """BM25 ranking of a :class:`ChunkStore`'s chunks, built on first use, rebuilt on change.

    Example (the vectors do not matter to BM25):
        >>> import tempfile, numpy as np
        >>> from arag.index.store import ChunkRecord
        >>> from arag.settings import Settings
        >>> store = ChunkStore(Settings(data_dir=tempfile.mkdtemp()), model_id="demo@1", dim=2)
        >>> store.upsert([ChunkRecord("hopper", "Her team built the first COBOL compiler.", {"title": "Grace Hopper"},
        ...                           np.ones(2, np.float32)),
        ...               ChunkRecord("lovelace", "She wrote the first program.", {"title": "Ada Lovelace"}, np.ones(2, np.float32))])
        >>> [chunk_id for chunk_id, score in LexicalIndex(store).search("first COBOL compiler", k=2)]
        ['hopper', 'lovelace']
    """

    def __init__(self, store: ChunkStore, path: Path | str | None = None):
        self.store = store
        settings = store.settings
        self.path = Path(path) if path is not None else settings.data_dir / "lexical" / settings.collection
        #: Indexes this instance built, and id listings it made (a rebuild shows in the first).
        self.builds = 0
        self.listings = 0
        self._lock = threading.Lock()
        self._bm25 = None
        self._ids: list[str] = []
        self._fingerprint: str | None = None
        #: The write stamp the index in memory was listed at.
        self._listed_at: tuple | None = None

    # -- querying ---------------------------------------------------------------------------

    def search(self, query: str, k: int) -> list[tuple[str, float]]:
        """The ``k`` best chunks for ``query`` as (chunk id, BM25 score), best first.

        Only chunks sharing a term with the query are returned; score ties go to the smaller id.
        """
        return self.search_many([query], k)[0]

    def search_many(self, queries: list[str], k: int) -> list[list[tuple[str, float]]]:
        """:meth:`search` for each query, checking the index's freshness once."""
        with self._lock:
            self._refresh()
            bm25, ids = self._bm25, self._ids
        if bm25 is None:
            return [[] for _ in queries]
        return [self._rank(bm25, ids, query, k) for query in queries]

    def refresh(self) -> None:
        """Bring the index in line with the collection now, as the next search would."""
        with self._lock:
            self._refresh()

    def idf(self, terms) -> dict[str, float]:
        """BM25 inverse document frequency of each of ``terms`` (already tokenised by
        :func:`query_terms`) over the collection; a term no chunk holds gets the largest value.
        """
        with self._lock:
            self._refresh()
            bm25 = self._bm25
        if bm25 is None:
            return {t: 0.0 for t in terms}
        n, indptr = bm25.scores["num_docs"], bm25.scores["indptr"]
        out = {}
        for term in terms:
            token = bm25.vocab_dict.get(term)
            df = 0 if token is None else int(indptr[token + 1] - indptr[token])
            out[term] = math.log(1 + (n - df + 0.5) / (df + 0.5))
        return out

    @staticmethod
    def _rank(bm25, ids: list[str], query: str, k: int) -> list[tuple[str, float]]:
        terms = [t for t in query_terms(query) if t in bm25.vocab_dict]
        if not terms or k <= 0:
            return []
        scores = bm25.get_scores(terms)
        hits = np.flatnonzero(scores > 0)
        if hits.size > k:
            # Keep everything tied with the k-th score, so the id tie-break below decides.
            kth = np.partition(scores[hits], hits.size - k)[hits.size - k]
            hits = hits[scores[hits] >= kth]
        best = sorted(hits.tolist(), key=lambda i: (-scores[i], ids[i]))[:k]
        return [(ids[i], float(scores[i])) for i in best]

    # -- freshness --------------------------------------------------------------------------

    def _refresh(self) -> None:
        """Bring the in-memory index in line with the collection: keep, load or build."""
        stamp = self.store.write_stamp()
        if stamp is not None and stamp == self._listed_at:
            return
        if self._fingerprint is None and stamp is not None and self._adopt_listing(stamp):
            return
        ids = self._list_ids()
        current = fingerprint(ids)
        if current != self._fingerprint:
            if not ids:
                self._bm25, self._ids = None, []
            elif not self._load(current):
                current = self._build(ids)
            self._fingerprint = current
        self._listed_at = stamp
        if stamp is not None and self._bm25 is not None:
            self._record_listing(stamp, current)

    def _record_listing(self, stamp: tuple[str, int], key: str) -> None:
        record = {"format": FORMAT, "stamp": list(stamp), "fingerprint": key}
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=_TMP, suffix=".json", dir=self.path)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(record, out)
            os.replace(tmp, self.path / LISTING)  # whole or absent, whoever reads it
        except OSError as exc:
            log.debug("cannot record the listing under %s: %s", self.path, exc)

    def _adopt_listing(self, stamp: tuple[str, int]) -> bool:
        """Load the index an earlier listing (maybe another process's) found, if nothing was written since."""
        try:
            record = json.loads((self.path / LISTING).read_text(encoding="utf-8"))
            if record["format"] != FORMAT or tuple(record["stamp"]) != stamp:
                return False
            key = str(record["fingerprint"])
        except (OSError, ValueError, KeyError, TypeError):
            return False
        if not self._load(key):
            return False
        self._fingerprint, self._listed_at = key, stamp
        return True

    def _list_ids(self) -> list[str]:
        self.listings += 1
        ids: list[str] = []
        offset = 0
        while True:
            page = self.store.collection.get(include=[], limit=ID_PAGE, offset=offset)["ids"]
            if not page:
                return ids
            ids.extend(page)
            offset += len(page)

    # -- loading and building ---------------------------------------------------------------

    def _load(self, key: str) -> bool:
        import bm25s

        folder = self.path / key
        try:
            ids = json.loads((folder / "ids.json").read_text(encoding="utf-8"))
            bm25 = bm25s.BM25.load(folder, show_progress=False)
        except FileNotFoundError:
            return False  # never built, or pruned by another process while we looked
        except (OSError, ValueError, KeyError, EOFError) as exc:
            log.warning("lexical index %s is unreadable (%s); rebuilding it", folder, exc)
            self._discard(folder)
            return False
        if len(ids) != bm25.scores["num_docs"]:
            log.warning("lexical index %s is inconsistent; rebuilding it", folder)
            self._discard(folder)
            return False
        self._bm25, self._ids = bm25, ids
        return True

    def _build(self, listed: list[str]) -> str:
        """Index the chunks of a listing as they are now; return the fingerprint of what was indexed.

        Chunks deleted since the listing are left out; chunks added since wait for the next listing,
        which the write stamp asks for.
        """
        import bm25s

        tokenizer = bm25s.tokenization.Tokenizer(stopwords="en", stemmer=_stemmer())
        ids: list[str] = []
        # array('i') holds a chunk's term ids in 4 bytes each (a list takes 8 plus its header):
        # about 40 MB for 100k chunks of 100 indexed terms.
        rows: list[array] = []
        for start in range(0, len(listed), DOC_PAGE):
            got = self.store.collection.get(ids=listed[start : start + DOC_PAGE], include=["documents", "metadatas"])
            texts = []
            for cid, text, meta in zip(got["ids"], got["documents"], got["metadatas"]):
                ids.append(cid)
                meta = meta or {}
                texts.append(embedding_text(meta.get("title", ""), meta.get("heading", ""), text or ""))
            rows.extend(array("i", terms) for terms in tokenizer.streaming_tokenize(texts, update_vocab=True))
        key = fingerprint(ids)
        self.builds += 1
        if not ids:
            self._bm25, self._ids = None, []
            return key
        # scipy builds the sparse matrix in int32 where bm25s's numpy path sorts int64 keys:
        # at 100k chunks the build peaks about 130 MB lower, and is faster.
        bm25 = bm25s.BM25(csc_backend="scipy")
        bm25.index((rows, tokenizer.get_vocab_dict()), show_progress=False)
        del rows, tokenizer
        self._bm25, self._ids = bm25, ids
        try:
            self._publish(key, bm25, ids)
        except OSError as exc:
            # A read-only or full disk costs the next process a rebuild, not this search.
            log.warning("cannot save the lexical index under %s: %s", self.path, exc)
        return key

    def _publish(self, key: str, bm25, ids: list[str]) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=_TMP, dir=self.path))
        try:
            bm25.save(tmp, show_progress=False)
            (tmp / "ids.json").write_text(json.dumps(ids), encoding="utf-8")
            (tmp / "meta.json").write_text(
                json.dumps({"format": FORMAT, "fingerprint": key, "chunks": len(ids), "built_at": time.time()}),
                encoding="utf-8",
            )
            # Flushed before the rename, so a power cut cannot publish empty files.
            for f in tmp.iterdir():
                _fsync(f)
            try:
                os.rename(tmp, self.path / key)
            except OSError:
                # Another process published the same content first; theirs is as good.
                if not (self.path / key).is_dir():
                    raise
                shutil.rmtree(tmp, ignore_errors=True)
            _fsync(self.path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self._prune(keep=key)

    def _prune(self, keep: str) -> None:
        """Delete the other indexes (renamed first, so none is ever seen half-deleted)."""
        now = time.time()
        for entry in self.path.iterdir():
            if entry.name in (keep, LISTING):
                continue
            if entry.name.startswith(_TMP):
                # Possibly another process's build in progress: only old ones are crash leftovers.
                try:
                    if now - entry.stat().st_mtime > STALE_TMP_S:
                        if entry.is_dir():
                            shutil.rmtree(entry, ignore_errors=True)
                        else:
                            entry.unlink()
                except OSError:
                    pass
                continue
            if entry.is_dir():
                self._discard(entry)

    def _discard(self, folder: Path) -> None:
        trash = self.path / f"{_TMP}old-{folder.name}-{os.getpid()}-{time.time_ns()}"
        try:
            os.rename(folder, trash)
        except OSError:
            return  # already gone: another process removed it
        shutil.rmtree(trash, ignore_errors=True)


def _fsync(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        if path.is_dir():
            return  # some systems cannot open folders; the files inside are flushed already
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not path.is_dir():
            raise
    finally:
        os.close(fd)
