"""Knowledge base: add and remove documents, see what the index holds, train and switch models."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import streamlit as st

from arag.environment import offline_environment
from ui.shell import open_page, readable, reset, sidebar_settings

_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]")


def safe_upload_name(name: str) -> str:
    """A file name that stays inside the uploads folder: no directories, no '..', no odd characters."""
    base = _UNSAFE.sub("_", name.replace("\\", "/").rsplit("/", 1)[-1]).strip(" .")
    return base[:120] or "upload"


def ingest(shell, paths: list[Path]) -> None:
    from arag.ingestion.ingest import Ingestor

    bar = st.progress(0.0, text="Ingesting …")
    ingestor = Ingestor(shell.settings, shell.components.embedder, shell.components.store)
    try:
        report = ingestor.ingest(paths, progress=False,
                                 on_progress=lambda done, total: bar.progress(done / max(1, total), text=f"{done} of {total} files"))
    except Exception as exc:  # noqa: BLE001
        st.error(f"Ingestion failed: {readable(exc)}")
        return
    bar.progress(1.0, text="Done")
    st.success(report.summary())
    for failure in report.failures:
        st.warning(str(failure))


def show_stats(shell) -> None:
    from arag.index.catalog import collection_stats
    from arag.model_registry import ModelRegistry

    stats = collection_stats(shell.components.store, shell.settings)
    cols = st.columns(4)
    cols[0].metric("Files", stats["files"])
    cols[1].metric("Documents", stats["documents"])
    cols[2].metric("Chunks", stats["chunks"])
    cols[3].metric("Index on disk", f"{stats['index_mb']} MiB" if stats["index_mb"] is not None else "server")
    active = ModelRegistry(shell.settings).active()
    st.caption(f"Collection `{stats['collection']}` · embedding model `{stats['embedding_model']}`"
               + (f" · trained reranker `{Path(active['reranker']['dir']).name}`" if "reranker" in active else ""))


def add_documents(shell) -> None:
    st.subheader("Add documents")
    from arag.ingestion.loaders import INGESTED_SUFFIXES

    uploads = st.file_uploader("Upload files (Markdown, text, reST, HTML, PDF, Word, PowerPoint, JSONL; CSV and SQLite tables)",
                               accept_multiple_files=True, key="uploads",
                               type=sorted(INGESTED_SUFFIXES))  # with their dots: Streamlit reads a bare "text" as any text/* file
    if st.button("Ingest uploaded files", disabled=not uploads, key="ingest_uploads"):
        folder = shell.settings.data_dir / "uploads"
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for upload in uploads:
            path = folder / safe_upload_name(upload.name)
            path.write_bytes(upload.getvalue())
            paths.append(path)
        ingest(shell, paths)
    folder = st.text_input("…or a folder or file on this machine", key="folder", placeholder="/home/me/notes")
    if st.button("Ingest folder", disabled=not folder.strip(), key="ingest_folder"):
        path = Path(folder.strip()).expanduser()
        if not path.exists():
            st.error(f"{path} does not exist.")
        else:
            ingest(shell, [path])


def list_documents(shell) -> None:
    from arag.index.catalog import delete_file, list_files

    st.subheader("Documents")
    files = list_files(shell.components.store)
    if not files:
        st.caption("No documents yet.")
        return
    rows = [{"file": f["file"], "title": f["title"], "kind": f["kind"], "documents": f["documents"], "chunks": f["chunks"]}
            for f in files]
    st.dataframe(rows, hide_index=True, width="stretch")
    doomed = st.multiselect("Remove from the index", [f["file"] for f in files], key="doomed",
                            format_func=lambda p: Path(p).name)
    if st.button("Remove selected", disabled=not doomed, key="remove_files"):
        removed = sum(delete_file(shell.components.store, f) for f in doomed)
        st.success(f"Removed {len(doomed)} file(s), {removed} chunks.")
        st.rerun()


def list_tables(shell) -> None:
    tables = shell.components.tables.tables
    if not tables:
        return
    st.subheader("Tables")
    st.caption("Questions about these are answered by one checked, read-only SQL query (text-to-SQL).")
    rows = [{"table": name, "rows": t["rows"], "columns": ", ".join(c["name"] for c in t["columns"]),
             "file": Path(t["source"]).name} for name, t in sorted(tables.items())]
    st.dataframe(rows, hide_index=True, width="stretch")


def training_log(shell) -> Path:
    return shell.settings.data_dir / "training" / shell.settings.collection / "web-training.json"


def start_training(shell, kind: str, pairs: str, max_pairs: int) -> None:
    log_dir = training_log(shell).parent
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"web-train-{kind}.log"
    cmd = [sys.executable, "-m", "arag", "--data-dir", str(shell.settings.data_dir), "--collection", shell.settings.collection,
           f"train-{kind}", "--pairs", pairs, "--max-pairs", str(max_pairs)]
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                env=offline_environment(PYTHONUNBUFFERED="1"))
    training_log(shell).write_text(json.dumps({"pid": proc.pid, "kind": kind, "log": str(log), "started": time.time()}))


def _alive(pid: int) -> bool:
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()


@st.fragment(run_every=2)
def training_status(shell) -> None:
    state_file = training_log(shell)
    if not state_file.exists():
        return
    state = json.loads(state_file.read_text())
    text = Path(state["log"]).read_text(errors="replace") if Path(state["log"]).exists() else ""
    last = text.replace("\r", "\n").strip().splitlines()[-1:] or [""]
    percents = re.findall(r"(\d+)%\|", text)
    running = _alive(state["pid"])
    label = f"Training the {state['kind']} ({'running' if running else 'finished'}, {time.time() - state['started']:.0f} s)"
    st.progress(int(percents[-1]) / 100 if percents else 0.0, text=label)
    st.code(last[0][-300:], language=None)
    if running and st.button("Cancel training", key="cancel_training"):
        os.killpg(state["pid"], signal.SIGTERM)
        st.warning("Training cancelled; running it again resumes from its last checkpoint.")


def models(shell) -> None:
    from arag.model_registry import ModelRegistry

    st.subheader("Models trained on this collection")
    registry = ModelRegistry(shell.settings)
    active = registry.active()
    for kind in ("embedder", "reranker"):
        for model_dir in registry.versions(kind):
            card_file = model_dir / "card.json"
            card = json.loads(card_file.read_text()) if card_file.exists() else {}
            in_use = active.get(kind, {}).get("dir") == str(model_dir)
            trained = card.get("metrics", {}).get("trained", {})
            line = f"**{model_dir.name}**" + (" (in use)" if in_use else "")
            if trained:
                line += " · held-out nDCG@10 " + f"{trained.get('ndcg@10', 0):.3f}"
            st.markdown(line)
            if not in_use and st.button(f"Use {model_dir.name}", key=f"use_{model_dir.name}"):
                if kind == "embedder":
                    from arag.training.trainer import use_embedder

                    bar = st.progress(0.0, text="Re-embedding the collection …")
                    use_embedder(shell.components, model_dir, progress=False,
                                 on_progress=lambda done, total: bar.progress(done / max(1, total), text=f"{done} of {total} chunks"))
                else:
                    registry.activate("reranker", {"dir": str(model_dir)})
                reset()
                st.rerun()
    with st.form("train"):
        st.markdown("Train a model on the indexed documents (runs in the background; progress below).")
        kind = st.selectbox("Model", ["reranker", "embedder"], key="train_kind")
        pairs = st.selectbox("Training pairs", ["unsupervised", "auto"], key="train_pairs",
                             help="unsupervised: no LLM, minutes; auto: the LLM also writes queries (slower, better)")
        max_pairs = st.number_input("Most training pairs", 100, 20000, 1000, step=100, key="train_max_pairs")
        if st.form_submit_button("Start training"):
            if shell.components.store.count() < 4:
                st.error("Add documents first: training needs at least a few chunks.")
            else:
                start_training(shell, kind, pairs, int(max_pairs))
    training_status(shell)


def main() -> None:
    shell = open_page()
    sidebar_settings(shell.settings)
    st.title("Knowledge base")
    try:
        show_stats(shell)
        add_documents(shell)
        list_documents(shell)
        list_tables(shell)
        models(shell)
    except Exception as exc:  # noqa: BLE001 - a page never shows a traceback
        st.error(readable(exc))


# Streamlit runs a page as the module "__main__"; importing it (tests, tools) draws nothing.
if __name__ == "__main__":
    main()
