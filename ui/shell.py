"""What every page of the web app shares: the app's parts, built once, and the settings sidebar.

Settings come from the environment and ``.env`` as everywhere else (``ARAG_DATA_DIR``,
``ARAG_LLM``, …). The sidebar changes them for this browser session only, as per-run
overrides (``config["configurable"]``), so the pages never rebuild models to apply them.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from arag.environment import apply_offline_environment
from arag.settings import PROFILES, Settings

#: Techniques the sidebar can switch, with their labels, in display order.
TECHNIQUES = {
    "multi_query": "Multi-query rewordings",
    "decompose": "Decomposition of multi-hop questions",
    "step_back": "Step-back question",
    "hyde": "HyDE (hypothetical answer)",
    "rerank": "Rerank by relevance",
    "second_hop": "Second hop (multi-hop, no LLM call)",
    "link_expansion": "Link expansion (multi-hop)",
    "compare": "Comparisons decided in code",
    "reflect": "Self-RAG reflection",
    "web_fallback": "Web search fallback",
}


@dataclass
class App:
    settings: Settings
    components: object
    graph: object
    checkpointer: object
    threads: object


@st.cache_resource(show_spinner="Loading the index …")
def _build(settings_json: str) -> App:
    from arag.runtime.components import Components
    from arag.sessions.checkpoints import open_checkpointer, open_thread_store
    from graphs import build_graph, warm_up_in_background

    settings = Settings.model_validate_json(settings_json)
    components = Components(settings)
    warm_up_in_background(components)  # the local model loads while the page is drawn, not at the first question
    checkpointer = open_checkpointer(settings)
    graph = build_graph(components=components, checkpointer=checkpointer)
    return App(settings, components, graph, checkpointer, open_thread_store(settings))


def app() -> App:
    """The app's parts for the current settings (shared by every session of this server)."""
    apply_offline_environment()
    settings = Settings()
    return _build(settings.model_dump_json())


def open_page() -> App:
    """The app's parts, or a readable error and the end of the page when they cannot be built."""
    try:
        return app()
    except Exception as exc:  # noqa: BLE001 - a page shows a message, never a traceback
        st.error(f"The app could not start: {readable(exc)}")
        st.stop()


def reset() -> None:
    """Forget the built parts, e.g. after the embedding model in use changed."""
    _build.clear()


def missing_keys(settings: Settings, overrides: dict) -> list[str]:
    """Plain sentences for settings that need a key or URL that is not set (never the keys themselves)."""
    run = settings.for_run({"configurable": overrides})
    notes = []
    provider = run.llm.partition(":")[0]
    if provider == "openai" and run.openai_api_key is None and run.llm_base_url is None:
        notes.append("The OpenAI model needs OPENAI_API_KEY (or ARAG_LLM_BASE_URL for a local server); it is not set.")
    if provider == "anthropic" and run.anthropic_api_key is None:
        notes.append("The Anthropic model needs ANTHROPIC_API_KEY; it is not set.")
    if run.web_fallback and run.tavily_api_key is None:
        notes.append("Web search fallback needs TAVILY_API_KEY; it is not set, so answers come from your documents only.")
    return notes


def sidebar_settings(settings: Settings) -> dict:
    """Draw the settings sidebar; return this session's overrides for ``config["configurable"]``."""
    with st.sidebar.expander("Settings", expanded=False):
        profile = st.selectbox("Profile", list(PROFILES), index=list(PROFILES).index("fast"), key="profile",
                               help="naive: retrieve and generate; fast: the default; agentic: every technique")
        base = settings.for_run({"configurable": {"profile": profile}})
        llm = st.text_input("Language model", value=base.llm, key="llm",
                            help="llamacpp:local-1.5b, llamacpp:local-0.5b, openai:<model>, ollama:<model>, anthropic:<model>")
        overrides: dict = {"profile": profile}
        if llm.strip() and llm.strip() != base.llm:
            overrides["llm"] = llm.strip()
        st.caption("Techniques")
        for name, label in TECHNIQUES.items():
            current = getattr(base, name)
            if name == "multi_query":
                value = st.toggle(label, value=current > 0, key=f"t_{name}")
                if value != (current > 0):
                    overrides[name] = 2 if value else 0
            elif name == "decompose":
                value = st.toggle(label, value=current != "off", key=f"t_{name}")
                if value != (current != "off"):
                    overrides[name] = "auto" if value else "off"
            else:
                value = st.toggle(label, value=bool(current), key=f"t_{name}")
                if value != current:
                    overrides[name] = value
        grader = st.selectbox("Document grading", ["score", "llm", "off"], index=["score", "llm", "off"].index(base.grader),
                              key="grader", help="score: calibrated relevance, no LLM call; llm: ask the model (for capable models)")
        if grader != base.grader:
            overrides["grader"] = grader
        top_k = st.slider("Chunks given to the model (top-k)", 1, 12, base.top_k, key="top_k")
        retries = st.slider("Max extra retrieval rounds", 0, 3, base.max_retries, key="max_retries")
        regenerations = st.slider("Max regenerations", 0, 3, base.max_regenerations, key="max_regenerations")
        for name, value, default in (("top_k", top_k, base.top_k), ("max_retries", retries, base.max_retries),
                                     ("max_regenerations", regenerations, base.max_regenerations)):
            if value != default:
                overrides[name] = value
    for note in missing_keys(settings, overrides):
        st.sidebar.warning(note)
    return overrides


def readable(exc: BaseException) -> str:
    """One line a person can act on, for an error that reached the page."""
    text = " ".join(str(exc).split())[:300]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
