"""Chat: ask questions about the indexed documents, in threads that survive a restart."""

from __future__ import annotations

import html
import re

import streamlit as st

from arag.text import citation_name
from ui.shell import open_page, readable, sidebar_settings

#: Trace details worth a word in the live status, per node.
STATUS_KEYS = ("route", "reason", "found", "kept", "scorer", "verdict", "support", "index", "question", "answer",
               "results", "error", "note")


def node_line(node: str, event: dict) -> str:
    details = ", ".join(f"{k}: {event[k]}" for k in STATUS_KEYS if k in event and event[k] not in (None, "", []))
    cost = f", {event['llm_calls']} LLM call(s)" if event.get("llm_calls") else ""
    return f"**{node}** · {event.get('ms', 0):.0f} ms{cost}" + (f" — {details}" if details else "")


def link_citations(answer: str, turn: int) -> str:
    """``[n]`` becomes a link to source n of this turn's sources panel."""
    return re.sub(r"\[(\d+)\]", lambda m: f"[[{m.group(1)}]](#src-{turn}-{m.group(1)})", answer)


def highlighted(text: str, answer: str) -> str:
    """The chunk's text with the sentences sharing most words with the answer marked."""
    from arag.text import content_words, split_sentences

    answer_words = content_words(answer)
    parts = split_sentences(text)
    out = []
    for i, part in enumerate(parts):
        safe = html.escape(part)
        if i % 2 == 0 and answer_words and len(content_words(part) & answer_words) >= 2:
            safe = f"<mark>{safe}</mark>"
        out.append(safe)
    return "".join(out)


def show_sources(result: dict, turn: int) -> None:
    citations = result.get("citations") or []
    if not citations:
        return
    with st.expander(f"Sources ({len(citations)})", expanded=True):
        for c in citations:
            where = c.get("source", "")
            title = citation_name(c)
            scores = []
            if c.get("relevance") is not None:
                scores.append(f"relevance {c['relevance']:.2f}")
            if c.get("score") is not None:
                scores.append(f"retrieval {c['score']:.4g}")
            st.markdown(f'<a id="src-{turn}-{c["n"]}"></a>**[{c["n"]}] {html.escape(title)}**  \n'
                        f'<span style="color:#6b7280">{html.escape(where)}</span>'
                        f'{" · " + ", ".join(scores) if scores else ""}', unsafe_allow_html=True)
            st.markdown(f'<div style="font-size:0.9em;border-left:3px solid #d1d5db;padding-left:0.6em">'
                        f'{highlighted(c.get("text", ""), result.get("answer", ""))}</div>', unsafe_allow_html=True)


def show_turn(result: dict, turn: int, thread: str) -> None:
    with st.chat_message("user"):
        st.markdown(result["question"])
    with st.chat_message("assistant"):
        st.markdown(link_citations(result.get("answer", ""), turn))
        if result.get("sql"):
            with st.expander("SQL", expanded=False):
                st.code(result["sql"], language="sql")
        for note in result.get("notes") or []:
            st.caption(f"Note: {note}")
        show_sources(result, turn)
        meta = f"{result.get('llm_calls', 0)} LLM call(s) · {result.get('seconds', 0):.1f} s"
        if result.get("profile"):
            meta += f" · {result['profile']}"
        st.caption(meta)
        cols = st.columns([1, 1, 1, 5])
        with cols[0].popover("Copy"):
            st.code(result.get("answer", ""), language=None, wrap_lines=True)
        with cols[1].popover("Trace"):
            st.json(result.get("trace", []), expanded=1)
        with cols[2].popover("Retry"):
            profile = st.selectbox("Configuration", ["naive", "fast", "agentic"], key=f"retry_profile_{thread}_{turn}")
            if st.button("Ask again", key=f"retry_{thread}_{turn}"):
                st.session_state["pending"] = {"question": result["question"], "profile": profile}
                st.rerun()


def run_turn(shell, thread: str, question: str, overrides: dict) -> None:
    from arag.sessions.conversations import stream_turn

    config = {"configurable": {**overrides, "thread_id": thread}}
    with st.chat_message("user"):
        st.markdown(question)
    with st.chat_message("assistant"):
        status = st.status("Working on it …", expanded=True)
        result: dict = {}

        def tokens():
            for kind, payload in stream_turn(shell.graph, question, config):
                if kind == "node":
                    status.markdown(node_line(*payload))
                elif kind == "token":
                    yield payload
                else:
                    result.update(payload)

        try:
            st.write_stream(tokens())
        except Exception as exc:  # noqa: BLE001 - shown as a message, never a traceback
            status.update(label="Failed", state="error", expanded=True)
            st.error(f"The question could not be answered: {readable(exc)}")
            return
        status.update(label=f"Done in {result.get('seconds', 0):.1f} s", state="complete", expanded=False)
    result["profile"] = overrides.get("profile")
    shell.threads.add_turn(thread, result)
    st.rerun()


def thread_picker(shell) -> str:
    threads = shell.threads.list()
    st.sidebar.subheader("Conversations")
    if st.sidebar.button("New chat", width="stretch", key="new_chat"):
        st.session_state["thread"] = shell.threads.create()
        st.rerun()
    if not threads:
        st.session_state["thread"] = shell.threads.create()
        threads = shell.threads.list()
    ids = [t["id"] for t in threads]
    current = st.session_state.get("thread")
    if current not in ids:
        current = ids[0]
    labels = {t["id"]: f"{t['title'][:40]} ({t['turns']})" for t in threads}
    chosen = st.sidebar.radio("Threads", ids, index=ids.index(current), format_func=labels.get, key="thread_radio",
                              label_visibility="collapsed")
    st.session_state["thread"] = chosen
    if st.sidebar.button("Delete this chat", width="stretch", key="delete_chat"):
        shell.threads.delete(chosen, shell.checkpointer)
        st.session_state.pop("thread", None)
        st.rerun()
    return chosen


def main() -> None:
    shell = open_page()
    thread = thread_picker(shell)
    overrides = sidebar_settings(shell.settings)
    st.title("Ask your documents")
    if shell.components.store.is_empty():
        st.info("The index is empty: add documents on the Knowledge base page first.")
    for n, result in enumerate(shell.threads.turns(thread), start=1):
        show_turn(result, n, thread)
    pending = st.session_state.pop("pending", None)
    question = st.chat_input("Ask a question about your documents", key="question")
    if pending:
        run_turn(shell, thread, pending["question"], {**overrides, "profile": pending["profile"]})
    elif question is not None:
        if not question.strip():
            st.warning("The question is empty.")
        else:
            run_turn(shell, thread, question.strip(), overrides)


# Streamlit runs a page as the module "__main__"; importing it (tests, tools) draws nothing.
if __name__ == "__main__":
    main()
