"""The `arag` command: exit codes, one-line errors, and the --json shapes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import MODELS_DIR
from documents import write_corpus


def arag(*args, cwd, timeout=600):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARAG_")}
    env["ARAG_MODELS_DIR"] = str(MODELS_DIR)
    return subprocess.run(
        [sys.executable, "-m", "arag", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def test_help_explains_every_command(tmp_path):
    top = arag("--help", cwd=tmp_path)
    assert top.returncode == 0
    for command in ("ingest", "ask", "demo", "models"):
        assert command in top.stdout
        sub = arag(command, "--help", cwd=tmp_path)
        assert sub.returncode == 0 and "usage: arag" in sub.stdout


def test_empty_question_exits_2_with_one_line(tmp_path):
    result = arag("ask", "   ", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == "arag: error: the question is empty"


def test_invalid_setting_exits_2(tmp_path):
    result = arag("--collection", "x", "ask", "hi", cwd=tmp_path)
    assert result.returncode == 2 and "invalid setting collection" in result.stderr


def test_exclude_reports_what_it_left_out_and_refuses_an_empty_pattern(tmp_path):
    write_corpus(tmp_path / "docs")
    result = arag("ingest", "docs", "--json", "--exclude", "*.pdf", "--exclude", "nothing-here", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["added"] == 4 and report["unmatched_patterns"] == ["nothing-here"]
    assert [os.path.basename(path) for path in report["excluded"]] == ["volcanoes.pdf"]
    empty = arag("ingest", "docs", "--exclude", " ", cwd=tmp_path)
    assert empty.returncode == 2
    assert empty.stderr.strip() == ("arag: error: exclude pattern ' ': give a file or folder name or a glob, "
                                    "e.g. 'drafts' or '*.pdf'")


def test_missing_path_and_bad_file_exit_1_and_keep_the_index(tmp_path):
    write_corpus(tmp_path / "docs")
    ok = arag("ingest", "docs", "--json", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    report = json.loads(ok.stdout)
    assert report["added"] == 5 and report["failures"] == []
    assert (tmp_path / ".arag" / "chroma").is_dir()

    (tmp_path / "docs" / "bad.txt").write_bytes("\xe9t\xe9".encode("latin-1"))
    bad = arag("ingest", "docs", "nowhere", "--json", cwd=tmp_path)
    assert bad.returncode == 1
    errors = [line for line in bad.stderr.splitlines() if line.startswith("arag: error:")]
    assert len(errors) == 2
    assert any("bad.txt: not UTF-8 text" in e for e in errors)
    assert any("nowhere: no such file or directory" in e for e in errors)
    again = json.loads(bad.stdout)
    assert again["unchanged"] == 5 and again["chunks_embedded"] == 0


def test_model_that_cannot_be_loaded_is_one_clear_line(tmp_path):
    write_corpus(tmp_path / "docs")
    assert arag("ingest", "docs", "--quiet", cwd=tmp_path).returncode == 0
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"not a model")
    result = arag("ask", "Where is Mount Etna?", "--llm", f"llamacpp:{broken}", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith(f"arag: error: cannot load model {broken}")


def test_ask_names_a_source_that_is_not_indexed_and_reads_one_that_is_in_long_context(tmp_path):
    write_corpus(tmp_path / "docs")
    assert arag("ingest", "docs", "--quiet", cwd=tmp_path).returncode == 0
    missing = arag("ask", "Where is Mount Etna?", "--source", "docs/nowhere.txt", cwd=tmp_path)
    assert missing.returncode == 2
    assert missing.stderr.strip() == f"arag: error: not in the index: {tmp_path / 'docs' / 'nowhere.txt'} " \
                                     "(name ingested files, or run `arag ingest` first)"
    result = arag("ask", "Where is Mount Etna?", "--source", "docs/volcanoes.pdf", "--long-context", "--json",
                  "--llm", "llamacpp:local-270m", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    read = next(e for e in out["trace"] if e["node"] == "read_all")
    assert read["sources"] == 1 and read["read"] == read["in_scope"] >= 1
    assert "retrieve" not in [e["node"] for e in out["trace"]]


def test_ask_json_shape_with_the_smallest_local_model(tmp_path):
    write_corpus(tmp_path / "docs")
    assert arag("ingest", "docs", "--quiet", cwd=tmp_path).returncode == 0
    result = arag("ask", "Where is Mount Etna?", "--json", "--llm", "llamacpp:local-270m", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert {"answer", "citations", "trace", "llm_calls"} <= set(out)
    assert isinstance(out["answer"], str) and out["answer"]
    nodes = [e["node"] for e in out["trace"]]
    assert nodes[:2] == ["contextualize", "route"] and nodes[-1] == "finalize"
    generate = [e for e in out["trace"] if e["node"] == "generate"]
    assert out["llm_calls"] == sum(e.get("llm_calls", 0) for e in out["trace"]) >= len(generate) >= 1
    assert generate[0]["prompt_tokens"] > 50 and generate[0]["completion_tokens"] > 0
    for citation in out["citations"]:
        assert set(citation) >= {"source", "title", "chunk_id", "text"}


def test_thread_keeps_the_conversation_across_processes(tmp_path):
    write_corpus(tmp_path / "docs")
    assert arag("ingest", "docs", "--quiet", cwd=tmp_path).returncode == 0
    ask = ("ask", "--json", "--llm", "llamacpp:local-270m", "--thread", "volcano-chat")
    first = arag(*ask[:1], "Where is Mount Etna?", *ask[1:], cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["trace"][0]["reason"] == "no history"
    second = arag(*ask[:1], "What is it made of?", *ask[1:], cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    out = json.loads(second.stdout)
    assert out["thread"] == "volcano-chat"
    # The follow-up refers back ("it"), so the thread's history was read and a rewrite attempted.
    assert out["trace"][0]["reason"] in {"rewritten against history", "rewrite rejected"}
    assert out["trace"][0]["llm_calls"] == 1
    assert (tmp_path / ".arag" / "checkpoints.sqlite").is_file()


def test_graph_command_draws_mermaid_and_highlights_a_run(tmp_path):
    mermaid = arag("graph", cwd=tmp_path)
    assert mermaid.returncode == 0
    for node in ("route", "decompose", "grade_documents", "web_search", "rerank", "reflect"):
        assert node in mermaid.stdout
    run = {"trace": [{"node": n} for n in ("contextualize", "route", "self_query", "hyde", "retrieve",
                                          "grade_documents", "rerank", "generate", "reflect", "finalize")]}
    (tmp_path / "run.json").write_text(json.dumps(run))
    dot = arag("graph", "--format", "dot", "--trace", "run.json", cwd=tmp_path)
    assert dot.returncode == 0
    assert '"self_query" -> "hyde" [style="bold", color="#b45309"' in dot.stdout
    assert '"self_query" -> "decompose" [style="dashed"]' in dot.stdout
    bad = arag("graph", "--format", "dot", "--trace", "missing.json", cwd=tmp_path)
    assert bad.returncode == 2 and "not an `arag ask --json` output" in bad.stderr


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed (make test installs it)")
def test_graph_png_is_rendered_locally(tmp_path):
    result = arag("graph", "--format", "png", "--out", "graph.png", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "graph.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
