"""The web app: page logic through Streamlit's AppTest, and the real thing in headless Chromium.

The language model is a local OpenAI-compatible test double over real HTTP, so answers
stream exactly as from a hosted model; the index is a real Chroma collection.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, require_program
from openai_double import OpenAIDouble
from servers import free_port, http_ok, stop, wait_until

APP = REPO / "ui" / "app.py"
DOCS = {
    "lighthouses.md": "# Lighthouses\n\nThe Harbour Lighthouse was designed by Mara Olsen in 1887. "
                      "Its lamp burned whale oil until 1921, when the town bought electric light.\n\n"
                      "## Keepers\n\nKeepers trimmed the wicks and wound the clockwork every night.",
    "storms.md": "# Winter storms\n\nWinter storms batter the coast from November to March. "
                 "Waves over ten metres high were measured in the great storm of 1953.",
}
ANSWER = "The Harbour Lighthouse was designed by Mara Olsen in 1887 [1]."


@pytest.fixture
def web_env(tmp_path, monkeypatch, embedder):
    """A data directory with two ingested notes, the LLM double running, and the app's settings in the environment."""
    from arag.index.store import ChunkStore
    from arag.ingestion.ingest import Ingestor
    from arag.settings import Settings

    docs = tmp_path / "notes"
    docs.mkdir()
    for name, text in DOCS.items():
        (docs / name).write_text(text)
    data = tmp_path / "data"
    settings = Settings(data_dir=data)
    Ingestor(settings, embedder, ChunkStore(settings, embedder.model_id, embedder.dim)).ingest([docs], progress=False)
    with OpenAIDouble(reply=ANSWER) as llm:
        env = {"ARAG_DATA_DIR": str(data), "ARAG_LLM": "openai:double", "ARAG_LLM_BASE_URL": f"{llm.url}/v1"}
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        yield env, llm, docs


def app_test():
    from streamlit.testing.v1 import AppTest

    from ui.shell import reset

    reset()  # each test builds the app's parts from its own environment
    return AppTest.from_file(str(APP), default_timeout=90)


def test_chat_streams_an_answer_with_sources_and_keeps_the_thread(web_env):
    env, llm, _ = web_env
    at = app_test().run()
    assert not at.exception and not at.error
    at.chat_input[0].set_value("Who designed the Harbour Lighthouse?").run()
    assert not at.exception and not at.error
    texts = [m.value for m in at.markdown]
    assert "Who designed the Harbour Lighthouse?" in texts
    answer = next(t for t in texts if t.startswith("The Harbour Lighthouse"))
    assert "[[1]](#src-1-1)" in answer  # the citation links to its source
    source = next(t for t in texts if 'id="src-1-1"' in t)
    assert "Lighthouses" in source and "lighthouses.md" in source and "relevance" in source
    assert any("<mark>" in t and "Mara Olsen" in t for t in texts)  # the matched passage is marked
    assert llm.chat_requests()[-1].body["stream"] is True  # tokens streamed from the model
    # The trace and a copyable answer are a click away on each message.
    assert any(el.value.startswith("The Harbour Lighthouse") for el in at.code)
    assert at.json and at.json[0].value

    # A restart (a new session on a new server) shows the same thread and its turn.
    again = app_test().run()
    assert any(t.startswith("The Harbour Lighthouse") for t in (m.value for m in again.markdown))
    threads = again.sidebar.radio[0]
    assert len(threads.options) == 1 and "Who designed" in threads.options[0] or "Who designed" in str(threads.format_func)

    # Deleting the chat forgets it.
    next(b for b in again.sidebar.button if b.label == "Delete this chat").click().run()
    assert not any(t.startswith("The Harbour Lighthouse") for t in (m.value for m in again.markdown))


def test_retry_with_another_configuration_asks_again(web_env):
    env, llm, _ = web_env
    at = app_test().run()
    at.chat_input[0].set_value("Who designed the Harbour Lighthouse?").run()
    asked = len(llm.chat_requests())
    at.selectbox(key="retry_profile_" + at.session_state["thread"] + "_1").set_value("naive")
    at.button(key="retry_" + at.session_state["thread"] + "_1").click().run()
    assert not at.exception and len(llm.chat_requests()) == asked + 1
    assert sum(t.startswith("The Harbour Lighthouse") for t in (m.value for m in at.markdown)) == 2
    assert any("naive" in c.value for c in at.caption)


def test_missing_keys_are_said_plainly_and_never_shown(web_env, monkeypatch):
    monkeypatch.setenv("TAVILY_API_KEY", "")
    monkeypatch.delenv("TAVILY_API_KEY")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-value-123")
    at = app_test().run()
    warnings = [w.value for w in at.sidebar.warning]
    assert any("TAVILY_API_KEY" in w for w in warnings)
    shown = [*at.markdown, *at.caption, *at.warning, *at.info, *at.text_input, *at.sidebar.warning, *at.sidebar.text_input]
    page = " ".join(str(e.value) for e in shown)
    assert "TAVILY_API_KEY" in page
    assert "sk-secret-value-123" not in page


def test_a_failing_model_is_a_readable_message_not_a_traceback(web_env, monkeypatch):
    monkeypatch.setenv("ARAG_LLM", "llamacpp:/nowhere/model.gguf")
    at = app_test().run()
    at.chat_input[0].set_value("Who designed the Harbour Lighthouse?").run()
    assert not at.exception
    assert any("model file not found" in e.value for e in at.error)


def test_graph_page_highlights_the_path_and_shows_each_nodes_state(web_env):
    at = app_test().run()
    at.chat_input[0].set_value("Who designed the Harbour Lighthouse?").run()
    at.switch_page("views/graph.py").run()
    assert not at.exception and not at.error
    dot = at.get("graphviz_chart")[0].proto.spec
    assert 'fillcolor="#fde68a"' in dot and '"generate"' in dot  # visited nodes are filled
    assert any(c.value.startswith("Path: contextualize → route → self_query") for c in at.caption)
    labels = [e.label for e in at.expander]
    assert any(label.startswith("#1 contextualize") for label in labels) and any("generate" in label for label in labels)
    assert len(at.json) >= 3  # decision, output and input of the first node


def test_knowledge_page_ingests_uploads_safely_lists_and_removes(web_env, tmp_path):
    from arag.ingestion.loaders import INGESTED_SUFFIXES
    from ui.views.knowledge import safe_upload_name

    assert safe_upload_name("../../etc/passwd") == "passwd"
    assert safe_upload_name("..\\..\\evil.md") == "evil.md"
    assert safe_upload_name("notes<script>.md") == "notes_script_.md"
    assert safe_upload_name("..") == "upload"
    env, _, docs = web_env
    at = app_test().run()
    at.switch_page("views/knowledge.py").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Files"] == "2" and int(metrics["Chunks"]) >= 2
    # The upload box takes every file type `arag ingest` reads, documents and tables alike.
    accepted = set(at.get("file_uploader")[0].proto.type)  # Streamlit keeps each with its dot
    assert accepted == set(INGESTED_SUFFIXES) and {".docx", ".pdf", ".csv", ".sqlite"} <= accepted
    extra = tmp_path / "more"
    extra.mkdir()
    (extra / "tides.md").write_text("# Tides\n\nTides rise twice a day because of the moon.")
    at.text_input(key="folder").set_value(str(extra)).run()
    at.button(key="ingest_folder").click().run()
    assert any("1 added" in s.value for s in at.success)
    assert not any(h.value == "Tables" for h in at.subheader)
    (extra / "tide_times.csv").write_text("port,high_tide\nDover,06:12\nCalais,06:40\n")
    at.text_input(key="folder").set_value(str(extra / "tide_times.csv")).run()
    at.button(key="ingest_folder").click().run()
    at.run()
    assert any(h.value == "Tables" for h in at.subheader)
    listed = [df.value for df in at.dataframe if "table" in df.value.columns][0]
    assert list(listed["table"]) == ["tide_times"] and list(listed["rows"]) == [2]
    at.text_input(key="folder").set_value(str(tmp_path / "missing")).run()
    at.button(key="ingest_folder").click().run()
    assert any("does not exist" in e.value for e in at.error)
    at.run()
    assert {m.label: m.value for m in at.metric}["Files"] == "3"
    tides = next(o for o in at.multiselect(key="doomed").options if "tides" in o)
    at.multiselect(key="doomed").set_value([str(extra / "tides.md")]).run()
    at.button(key="remove_files").click().run()
    assert {m.label: m.value for m in at.metric}["Files"] == "2", tides


# --- the real app in a real browser -------------------------------------------------------


def _browser():
    chromium = require_program("chromium", "chromium-browser", package="Debian's chromium")
    driver = require_program("chromedriver", package="Debian's chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(driver), options=options)


@pytest.fixture
def served_app(web_env, tmp_path):
    env, llm, _ = web_env
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "arag", "ui", "--port", str(port)],
        env={**os.environ, **env, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"},
        stdout=open(tmp_path / "streamlit.log", "w"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: http_ok(f"{url}/_stcore/health"), proc, tmp_path / "streamlit.log", "the web app")
        yield url, llm
    finally:
        stop(proc)


def test_real_browser_asks_and_gets_a_cited_streamed_answer(served_app, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    url, llm = served_app
    # A relative UI_SCREENSHOT_DIR is taken from the repository root, wherever the test runs.
    shots = Path(__file__).resolve().parent.parent / os.environ.get("UI_SCREENSHOT_DIR", tmp_path / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    browser = _browser()
    try:
        wait = WebDriverWait(browser, 90)
        browser.get(url)
        box = wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "[data-testid='stChatInputTextArea']")))
        box.send_keys("Who designed the Harbour Lighthouse?")
        box.send_keys(Keys.ENTER)
        link = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "a[href$='#src-1-1']")))
        assert link.text == "[1]"
        wait.until(ec.text_to_be_present_in_element((By.TAG_NAME, "body"), "lighthouses.md"))
        main = browser.find_element(By.TAG_NAME, "body").text
        assert "Mara Olsen in 1887" in main and "Sources (1)" in main
        assert llm.chat_requests()[-1].body["stream"] is True
        time.sleep(1)
        browser.save_screenshot(str(shots / "chat.png"))

        for page, expected, name in (("graph", "Nodes in run order", "graph.png"),
                                     ("knowledge", "Knowledge base", "knowledge.png")):
            browser.get(f"{url}/{page}")
            wait.until(ec.text_to_be_present_in_element((By.TAG_NAME, "body"), expected))
            time.sleep(2)  # the graph picture renders after the text
            browser.save_screenshot(str(shots / name))
        # The upload box states ingestion's own size limit (ARAG_MAX_FILE_MB, 50 by default).
        assert "50MB per file" in browser.find_element(By.TAG_NAME, "body").text
        assert all((shots / n).stat().st_size > 20_000 for n in ("chat.png", "graph.png", "knowledge.png"))
    except Exception:
        browser.save_screenshot(str(shots / "failure.png"))
        print("page text at failure:\n" + browser.find_element(By.TAG_NAME, "body").text[-3000:])
        raise
    finally:
        browser.quit()
