"""Graph: the compiled graph drawn locally, with the path of any answered question laid over it."""

from __future__ import annotations

import streamlit as st

from ui.shell import open_page, sidebar_settings


def main() -> None:
    from arag.drawing import to_dot
    from arag.sessions.conversations import run_steps

    shell = open_page()
    sidebar_settings(shell.settings)
    st.title("How a question runs")
    threads = [t for t in shell.threads.list() if t["turns"]]
    visited, trace, steps = None, [], []
    if threads:
        labels = {t["id"]: t["title"] for t in threads}
        thread = st.selectbox("Conversation", [t["id"] for t in threads], format_func=labels.get, key="graph_thread")
        turns = shell.threads.turns(thread)
        n = st.selectbox("Question", range(len(turns)), index=len(turns) - 1, key="graph_turn",
                         format_func=lambda i: f"{i + 1}. {turns[i]['question'][:90]}")
        trace = turns[n].get("trace", [])
        visited = [e["node"] for e in trace]
        try:
            all_steps = run_steps(shell.graph, thread)
            steps = all_steps[n] if n < len(all_steps) else []
        except Exception:  # noqa: BLE001 - a thread written by an older graph may not replay; the trace still shows
            steps = []
        st.caption(f"Path: {' → '.join(visited)}" if visited else "This question ran no node.")
    else:
        st.info("Ask a question on the Chat page to see the path it takes.")
    picture, details = st.columns([3, 2])
    picture.graphviz_chart(to_dot(shell.graph, visited), width="stretch")
    if trace:
        details.subheader("Nodes in run order")
        for i, event in enumerate(trace, start=1):
            step = steps[i - 1] if i - 1 < len(steps) and steps[i - 1]["node"] == event["node"] else None
            with details.expander(f"#{i} {event['node']} · {event.get('ms', 0):.0f} ms"):
                st.markdown("**Decision (trace)**")
                st.json(event, expanded=2)
                if step is not None:
                    st.markdown("**Output: state keys this node changed**")
                    st.json(step["output"], expanded=1)
                    st.markdown("**Input: the state it read**")
                    st.json(step["input"], expanded=False)


# Streamlit runs a page as the module "__main__"; importing it (tests, tools) draws nothing.
if __name__ == "__main__":
    main()
