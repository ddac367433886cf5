"""Every branch and loop bound of the agentic graph, driven by scripted chat models."""

from __future__ import annotations

import json

import pytest
from documents import write_corpus
from pydantic import Field
from scripted_llm import ScriptedChatModel
from tavily_double import TavilyDouble

from arag.runtime.components import Components
from arag.settings import Settings
from graphs import build_graph

COBOL = "Who built the first COBOL compiler?"
GOOD = "Grace Hopper led the team that built the first COBOL compiler [1]."


@pytest.fixture
def indexed(tmp_path, settings, embedder, ingestor):
    write_corpus(tmp_path / "docs")
    ingestor.ingest([tmp_path / "docs"], progress=False)
    # The techniques whose branches are driven here, several of them off by default.
    return settings.model_copy(update={"reflect": True, "decompose": "auto", "self_query": "rules"})


def test_shipped_defaults_answer_in_one_call_without_decomposing_or_reflecting(tmp_path, settings, embedder, ingestor):
    write_corpus(tmp_path / "docs")
    ingestor.ingest([tmp_path / "docs"], progress=False)
    out, _ = run(settings, embedder, [GOOD], question="What government post was held by the woman who built the COBOL compiler?")
    assert out["llm_calls"] == 1
    assert "decompose" not in path(out) and event(out, "reflect")["verdict"] == "skipped"
    assert event(out, "self_query")["mode"] == "off" and "from_chunk" in event(out, "second_hop")


def run(settings, embedder, script, question=COBOL, config=None, **overrides):
    llm = ScriptedChatModel(script=list(script))
    graph = build_graph(components=Components(settings.model_copy(update=overrides), llm=llm, embedder=embedder))
    out = graph.invoke({"question": question}, config or {})
    assert llm.unexpected == 0, f"{llm.unexpected} LLM call(s) beyond the script"
    return out, llm


def path(out) -> list[str]:
    return [e["node"] for e in out["trace"]]


def event(out, node, index=0) -> dict:
    return [e for e in out["trace"] if e["node"] == node][index]


def test_fast_path_costs_one_llm_call(indexed, embedder):
    out, _ = run(indexed, embedder, [GOOD])
    # No query transform is on: self-query goes straight to retrieval.
    assert path(out) == ["contextualize", "route", "self_query", "retrieve", "second_hop", "grade_documents", "rerank",
                         "generate", "reflect", "finalize"]
    assert out["llm_calls"] == 1
    assert event(out, "route")["decided_by"] == "rules" and event(out, "route")["route"] == "index"
    assert event(out, "reflect")["verdict"] == "ok"
    assert out["citations"][0]["title"] == "Grace Hopper"
    assert out["llm_calls"] == sum(e.get("llm_calls", 0) for e in out["trace"])
    assert all("ms" in e for e in out["trace"])


def test_reranker_puts_the_asked_fact_first(indexed, embedder):
    out, _ = run(indexed, embedder, [GOOD])
    order = event(out, "rerank")["order"]
    assert order[0]["title"] == "Grace Hopper"
    assert order == sorted(order, key=lambda d: -d["relevance"])
    assert all(0.0 <= d["relevance"] <= 1.0 for d in order)


def test_small_talk_is_answered_directly(indexed, embedder):
    out, llm = run(indexed, embedder, ["Hello! How can I help?"], question="hello!")
    assert path(out) == ["contextualize", "route", "generate", "reflect", "finalize"]
    assert out["answer"] == "Hello! How can I help?" and out["citations"] == []
    assert "<sources>" not in llm.prompts[0]


def test_llm_router_repairs_bad_json_once(indexed, embedder):
    script = ["route it to the index please", json.dumps({"route": "index", "complex": False, "reason": "docs"}), GOOD]
    out, _ = run(indexed, embedder, script, router="llm")
    assert event(out, "route")["decided_by"] == "repaired"
    assert out["llm_calls"] == 3


def test_llm_router_timeout_falls_back_to_rules(indexed, embedder):
    out, _ = run(indexed, embedder, [TimeoutError("LLM timed out after 120 s"), GOOD], router="llm")
    decision = event(out, "route")
    assert decision["decided_by"].startswith("default: TimeoutError") and decision["route"] == "index"
    assert out["answer"] == GOOD


def test_llm_router_never_routes_to_an_unconfigured_web(indexed, embedder):
    out, _ = run(indexed, embedder, ['{"route": "web", "complex": false, "reason": "news"}', GOOD], router="llm")
    assert event(out, "route")["route"] == "index"
    assert "web_search" not in path(out)


def test_sequential_decomposition_feeds_answers_forward(indexed, embedder):
    question = "What language was compiled by the compiler that the woman who led the COBOL team built?"
    plan = json.dumps({"sub_questions": ["Who led the team that built the first COBOL compiler?", "What did #1 build?"]})
    out, llm = run(indexed, embedder, [plan, "Grace Hopper", "the first COBOL compiler", GOOD], question=question)
    assert path(out)[:6] == ["contextualize", "route", "self_query", "decompose", "answer_sub_question", "answer_sub_question"]
    assert event(out, "route")["complex"] is True
    assert event(out, "answer_sub_question", 1)["question"] == "What did Grace Hopper build?"
    assert [a["answer"] for a in out["sub_answers"]] == ["Grace Hopper", "the first COBOL compiler"]
    assert "Findings for parts of the question" in llm.prompts[-1]
    assert out["llm_calls"] == 4


def test_parallel_decomposition_writes_no_intermediate_answers(indexed, embedder):
    question = "Are Mount Etna and the Fresnel lens both older than the COBOL compiler?"
    plan = json.dumps({"sub_questions": ["When did Mount Etna form?", "When was the Fresnel lens invented?"]})
    out, _ = run(indexed, embedder, [plan, "Yes [1]."], question=question, decompose_mode="parallel")
    assert path(out).count("answer_sub_question") == 2
    assert out["llm_calls"] == 2
    titles = {d["title"] for d in out["documents"]}
    assert "Volcanoes" in titles or "Lighthouses" in titles


def test_unusable_plan_falls_back_to_a_simple_question(indexed, embedder):
    question = "What language was compiled by the compiler that the woman who led the COBOL team built?"
    out, _ = run(indexed, embedder, ["no idea", "still no json", GOOD], question=question)
    assert event(out, "decompose")["status"].startswith("default: invalid output")
    assert "retrieve" in path(out) and "answer_sub_question" not in path(out)


class PromptRoutedModel(ScriptedChatModel):
    """Replies by what the prompt asks, so parallel nodes get their own reply whatever order they run in."""

    replies: dict[str, str] = Field(default_factory=dict)

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        prompt = "\n".join(str(m.content) for m in messages)
        self.script = [next((reply for marker, reply in self.replies.items() if marker in prompt), GOOD)]
        return super()._generate(messages, stop, run_manager, **kwargs)


TRANSFORM_REPLIES = {"rewordings": json.dumps({"rewordings": ["Which person created the COBOL compiler?",
                                                                  "COBOL compiler inventor"]}),
                     "generic question": "What is the history of early compilers?",
                     "factual passage": "Grace Hopper built the first COBOL compiler in 1959."}


def test_every_query_transform_fans_out_in_parallel_and_is_fused(indexed, embedder):
    llm = PromptRoutedModel(replies=TRANSFORM_REPLIES)
    graph = build_graph(components=Components(indexed, llm=llm, embedder=embedder))
    out = graph.invoke({"question": COBOL}, {"configurable": {"multi_query": 2, "step_back": True, "hyde": True}})
    visited = path(out)
    rewordings = json.loads(TRANSFORM_REPLIES["rewordings"])["rewordings"]
    step_back, passage = TRANSFORM_REPLIES["generic question"], TRANSFORM_REPLIES["factual passage"]
    # The three transforms run in one step, in parallel, and retrieval waits for all three, once.
    assert set(visited[3:6]) == {"multi_query", "step_back", "hyde"} and visited[6] == "retrieve"
    assert visited.count("retrieve") == 1
    assert event(out, "multi_query")["rewordings"] == rewordings
    assert event(out, "step_back")["step_back"] == step_back and event(out, "hyde")["hyde"] == passage
    assert event(out, "retrieve")["queries"] == [COBOL, *rewordings, step_back, passage]
    assert out["llm_calls"] == 4 and sum(e.get("llm_calls", 0) for e in out["trace"]) == 4


def test_agentic_profile_keeps_its_transforms_for_a_search_the_grade_asks_for(indexed, embedder):
    # Enough evidence at the first search: the agentic profile answers like the default, in one call.
    llm = PromptRoutedModel(replies=TRANSFORM_REPLIES)
    graph = build_graph(components=Components(indexed, llm=llm, embedder=embedder))
    out = graph.invoke({"question": COBOL}, {"configurable": {"profile": "agentic"}})
    assert not {"multi_query", "step_back", "hyde", "rewrite_question"} & set(path(out)) and out["llm_calls"] == 1
    # Too little: the rewrite and the three transforms write the extra search's queries.
    replies = {**TRANSFORM_REPLIES, "search query": "COBOL compiler team lead"}
    llm = PromptRoutedModel(replies=replies)
    graph = build_graph(components=Components(indexed.model_copy(update={"relevance_threshold": 1.0}), llm=llm,
                                              embedder=embedder))
    out = graph.invoke({"question": COBOL}, {"configurable": {"profile": "agentic"}})
    visited = path(out)
    first, again = visited.index("retrieve"), visited.index("rewrite_question")
    assert not {"multi_query", "step_back", "hyde"} & set(visited[:first])
    assert set(visited[again + 1:again + 4]) == {"multi_query", "step_back", "hyde"} and visited[again + 4] == "retrieve"
    assert event(out, "retrieve")["queries"] == [COBOL]
    assert event(out, "retrieve", 1)["queries"][:2] == [COBOL, "COBOL compiler team lead"]
    assert TRANSFORM_REPLIES["factual passage"] in event(out, "retrieve", 1)["queries"]
    assert out["llm_calls"] == 5  # rewrite, three transforms, answer


@pytest.mark.parametrize("on, expected", [
    ({"multi_query": 2}, ["multi_query"]),
    ({"hyde": True}, ["hyde"]),
    ({"step_back": True, "hyde": True}, ["step_back", "hyde"]),
])
def test_only_the_transforms_turned_on_run(indexed, embedder, on, expected):
    llm = PromptRoutedModel(replies={"rewordings": json.dumps({"rewordings": ["COBOL compiler inventor"]}),
                                     "generic question": "What is a compiler?", "factual passage": "Grace Hopper did."})
    graph = build_graph(components=Components(indexed, llm=llm, embedder=embedder))
    out = graph.invoke({"question": COBOL}, {"configurable": on})
    ran = [n for n in path(out) if n in ("multi_query", "step_back", "hyde")]
    assert sorted(ran) == sorted(expected) and out["llm_calls"] == len(expected) + 1


def test_a_failing_transform_leaves_the_question_searched(indexed, embedder):
    from langchain_core.language_models import FakeListChatModel

    class Failing(FakeListChatModel):
        def _call(self, *args, **kwargs):
            raise ConnectionError("model server gone")

    graph = build_graph(components=Components(indexed, llm=Failing(responses=["x"]), embedder=embedder))
    out = graph.invoke({"question": COBOL}, {"configurable": {"hyde": True, "step_back": True}})
    assert "error" in event(out, "hyde") and "error" in event(out, "step_back")
    assert event(out, "retrieve")["queries"] == [COBOL]


def test_filling_takes_any_chunk_up_to_context_min_then_only_the_possibly_relevant():
    from nodes.grade_documents import fill

    scored = [{"chunk_id": f"c{i}", "relevance": r} for i, r in enumerate([0.9, 0.05, 0.0004, 0.002, 0.0001, 0.3])]
    kept = [scored[0], scored[5]]
    settings = Settings(data_dir="/tmp/arag-fill", top_k=5, context_min=4, fill_min_relevance=0.001)
    # c1 and c3 bring the context to four whatever their score; the fifth place needs 0.001, which c2 lacks.
    assert [c["chunk_id"] for c in fill(scored, kept, settings)] == ["c1", "c3"]
    assert [c["chunk_id"] for c in fill(scored, kept, settings.model_copy(update={"context_min": 5}))] == ["c1", "c3", "c2"]
    assert [c["chunk_id"] for c in fill(scored, kept, settings.model_copy(update={"fill_min_relevance": 0.0}))] == [
        "c1", "c3", "c2"]
    assert fill(scored, scored[:5], settings) == []


def test_too_few_relevant_without_web_key_answers_from_the_best_candidates_and_notes_it(indexed, embedder):
    out, llm = run(indexed, embedder, [GOOD], relevance_threshold=1.0, max_retries=1)
    assert path(out) == ["contextualize", "route", "self_query", "retrieve", "second_hop", "grade_documents",
                         "rerank", "generate", "reflect", "finalize"]
    assert len(llm.prompts) == 1 and out["answer"] == GOOD
    assert event(out, "grade_documents")["web_skipped"] == "no Tavily API key configured (set TAVILY_API_KEY)"
    assert "web search skipped: no Tavily API key configured (set TAVILY_API_KEY)" in out["notes"]
    assert event(out, "grade_documents")["note"].startswith("too few relevant chunks")
    assert 1 <= len(out["documents"]) <= indexed.top_k


def test_too_few_relevant_without_web_key_retries_the_index_when_asked_and_notes_it(indexed, embedder):
    out, _ = run(indexed, embedder, ["COBOL compiler team lead", GOOD], relevance_threshold=1.0, max_retries=1,
                 index_retry=True)
    assert path(out) == ["contextualize", "route", "self_query", "retrieve", "second_hop", "grade_documents",
                         "rewrite_question", "retrieve", "second_hop", "grade_documents", "rerank", "generate", "reflect", "finalize"]
    assert event(out, "rewrite_question")["web_skipped"] == "no Tavily API key configured (set TAVILY_API_KEY)"
    assert "web search skipped: no Tavily API key configured (set TAVILY_API_KEY)" in out["notes"]
    assert event(out, "grade_documents", 1)["note"].startswith("too few relevant chunks")
    assert out["answer"] == GOOD


def web_settings(settings, double, **extra):
    return settings.model_copy(update={"tavily_api_key": "tvly-test-key", "web_search_url": double.url,
                                       "web_search_timeout_s": 1.0, **extra})


def test_web_fallback_over_http_adds_citable_web_sources(indexed, embedder):
    results = [{"title": "COBOL history", "url": "https://example.org/cobol",
                "content": "The first COBOL compiler was built by a team led by Grace Hopper in 1959.", "score": 0.9}]
    with TavilyDouble(results=results) as double:
        out, _ = run(web_settings(indexed, double), embedder, ["first COBOL compiler", GOOD], relevance_threshold=1.0)
        assert double.requests[0].body["query"] == "first COBOL compiler"
    assert "web_search" in path(out) and event(out, "web_search")["results"] == 1
    assert out["web_used"] is True
    assert any(d["source"] == "https://example.org/cobol" for d in out["documents"])


@pytest.mark.parametrize("mode, reason", [
    ("401", "rejected the API key"),
    ("429", "rate-limited"),
    ("slow", "timed out"),
])
def test_web_errors_leave_a_note_and_the_documents_still_answer(indexed, embedder, mode, reason):
    with TavilyDouble() as double:
        double.mode = mode
        out, _ = run(web_settings(indexed, double), embedder, ["COBOL", GOOD], relevance_threshold=1.0)
    assert any(reason in n for n in out["notes"]), out["notes"]
    assert out["answer"] == GOOD and out["documents"]


def test_web_routed_question_falls_back_to_documents_when_search_fails(indexed, embedder):
    with TavilyDouble() as double:
        double.mode = "500"
        out, _ = run(web_settings(indexed, double), embedder, [GOOD], question="What is the latest news on COBOL compilers?")
    assert event(out, "route")["route"] == "web"
    assert path(out)[2:4] == ["web_search", "retrieve"]
    assert out["citations"]


def test_ungrounded_answer_is_regenerated_then_kept_with_a_note(indexed, embedder):
    made_up = "Charles Babbage invented it during the Napoleonic wars in Paris [1]."
    out, llm = run(indexed, embedder, [made_up, made_up], max_regenerations=1)
    assert path(out).count("generate") == 2
    assert event(out, "reflect", 0)["verdict"] == "ungrounded" and event(out, "reflect", 0)["next"] == "regenerate"
    assert event(out, "generate", 1)["strict"] is True
    assert event(out, "reflect", 1)["next"] == "finish"
    assert any("may not be supported" in n for n in out["notes"])


def test_better_earlier_answer_is_kept(indexed, embedder):
    # Both attempts are ungrounded, the first less so (its names are in the source): it is the one kept.
    partly = "Grace Hopper built it with Napoleonic engineers in Paris and Vienna [1]."
    made_up = "Charles Babbage invented it during the Napoleonic wars in Paris [1]."
    out, _ = run(indexed, embedder, [partly, made_up], max_regenerations=1)
    first, second = event(out, "reflect", 0), event(out, "reflect", 1)
    assert (first["verdict"], first["next"], second["verdict"], second["next"]) == ("ungrounded", "regenerate", "ungrounded", "finish")
    assert first["support"] > second["support"]
    assert out["answer"].startswith("Grace Hopper") and "Vienna" in out["answer"]


def test_unhelpful_answer_triggers_another_search_bounded_by_retries(indexed, embedder):
    refusal = "I don't know."
    out, _ = run(indexed, embedder, [refusal, "COBOL compiler creator", refusal], max_retries=1, index_retry=True)
    assert path(out).count("rewrite_question") == 1 and path(out).count("generate") == 2
    assert event(out, "reflect", 1)["next"] == "finish"
    assert any("may not contain the answer" in n for n in out["notes"])


def test_every_loop_ends_under_generous_bounds(indexed, embedder):
    llm_default = "I don't know."
    llm = ScriptedChatModel(default=llm_default)
    settings = indexed.model_copy(update={"max_retries": 5, "max_regenerations": 5, "relevance_threshold": 1.0})
    out = build_graph(components=Components(settings, llm=llm, embedder=embedder)).invoke({"question": COBOL})
    assert path(out)[-1] == "finalize"
    assert path(out).count("rewrite_question") <= 5
    assert out["answer"] == llm_default


def test_failing_llm_degrades_to_a_note(indexed, embedder):
    out, _ = run(indexed, embedder, [ConnectionError("connection refused"), "x"], max_regenerations=0, max_retries=0)
    assert "could not write an answer" in out["answer"]
    assert any("the language model failed (ConnectionError" in n for n in out["notes"])
    assert out["citations"]


def test_naive_profile_is_retrieve_and_generate(indexed, embedder):
    out, _ = run(indexed, embedder, [GOOD], config={"configurable": {"profile": "naive"}})
    assert event(out, "grade_documents")["grader"] == "off"
    assert event(out, "rerank")["rerank"] is False
    assert event(out, "reflect")["verdict"] == "skipped"
    assert out["llm_calls"] == 1


def test_answer_tokens_stream_from_generate(indexed, embedder):
    from langchain_core.language_models import FakeListChatModel

    graph = build_graph(components=Components(indexed, llm=FakeListChatModel(responses=[GOOD]), embedder=embedder))
    pieces = [c.content for c, meta in graph.stream({"question": COBOL}, stream_mode="messages")
              if meta["langgraph_node"] == "generate"]
    assert "".join(pieces) == GOOD


def test_llm_grader_drops_passages_judged_irrelevant(indexed, embedder):
    grades = json.dumps({"relevant": [True] + [False] * 7})
    out, llm = run(indexed, embedder, [grades, GOOD], grader="llm")
    graded = event(out, "grade_documents")
    assert graded["status"] == "ok" and graded["kept"] == 1
    assert [g["kept"] for g in graded["grades"]][:2] == [True, False]
    assert "helps answer the question" in llm.prompts[0]
    assert out["llm_calls"] == 2


def test_llm_grader_with_unusable_output_keeps_everything(indexed, embedder):
    out, _ = run(indexed, embedder, ["yes yes", "maybe", GOOD], grader="llm")
    graded = event(out, "grade_documents")
    assert graded["status"].startswith("default: invalid output")
    assert graded["kept"] == min(8, len(graded["grades"]))


def test_multi_query_alone_fuses_the_rewordings(indexed, embedder):
    rewrites = json.dumps({"rewordings": ["Who created COBOL's first compiler?"]})
    out, llm = run(indexed, embedder, [rewrites, GOOD], multi_query=1)
    assert event(out, "retrieve")["queries"] == [COBOL, "Who created COBOL's first compiler?"]
    assert '"rewordings"' in llm.prompts[0] and '"step_back"' not in llm.prompts[0]


def test_failed_follow_up_rewrite_keeps_the_users_words(indexed, embedder):
    from langgraph.checkpoint.memory import InMemorySaver

    llm = ScriptedChatModel(script=[GOOD, TimeoutError("slow"), GOOD], default=GOOD)
    graph = build_graph(components=Components(indexed, llm=llm, embedder=embedder), checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "t"}}
    graph.invoke({"question": COBOL}, config)
    out = graph.invoke({"question": "What else did she build?"}, config)
    assert event(out, "contextualize")["reason"].startswith("rewrite failed (TimeoutError")
    assert out["standalone_question"] == "What else did she build?"


def test_studio_entry_point_matches_langgraph_json():
    from conftest import REPO

    from graphs.rag import studio_graph

    spec = json.loads((REPO / "langgraph.json").read_text())
    path, _, attribute = spec["graphs"]["arag"].partition(":")
    assert (REPO / path).is_file() and attribute == "studio_graph"
    graph = studio_graph({"configurable": {"profile": "fast"}})
    assert "reflect" in graph.get_graph().nodes


def test_llm_can_be_chosen_per_call(indexed, embedder, monkeypatch):
    made: dict[str, ScriptedChatModel] = {}

    def fake_factory(settings, spec=None, progress=True):
        made[settings.llm] = ScriptedChatModel(default=GOOD)
        return made[settings.llm]

    monkeypatch.setattr("arag.llms.factory.make_chat_model", fake_factory)
    graph = build_graph(components=Components(indexed, embedder=embedder))
    graph.invoke({"question": COBOL}, {"configurable": {"llm": "openai:some-model"}})
    graph.invoke({"question": COBOL})
    graph.invoke({"question": COBOL}, {"configurable": {"llm": "openai:some-model"}})
    assert set(made) == {"openai:some-model", "llamacpp:local-1.5b"}
    assert len(made["openai:some-model"].prompts) == 2 and len(made["llamacpp:local-1.5b"].prompts) == 1


def test_grounding_score_hand_computed():
    from arag.relevance.grounding import support
    from nodes.reflect import is_useful

    source = [{"title": "Grace Hopper", "text": "Grace Hopper built the first COBOL compiler in 1959."}]
    assert support("Yes [1].", "Did Grace Hopper build it?", source) == 1.0
    assert support("Charles Babbage invented it [1].", "Who invented it?", source) == 0.0
    # new words: hopper, built, 1959 (all in the source) and paris (not): 3 of 4
    assert support("Hopper built it in 1959 in Paris.", "Who made it?", source) == 0.75
    assert not is_useful("I don't know.") and is_useful("Grace Hopper [1].")


def test_long_context_reads_the_named_documents_in_their_order_with_no_search(indexed, embedder, tmp_path):
    docs = tmp_path / "docs"
    sources = [str((docs / "bread.txt").resolve()), str((docs / "lighthouses.md").resolve())]
    answer = "Grace Hopper [1]."
    out, llm = run(indexed, embedder, [answer], long_context=True, sources=sources, reflect=False)
    assert path(out) == ["contextualize", "route", "self_query", "read_all", "generate", "reflect", "finalize"]
    assert len(llm.prompts) == 1
    read = event(out, "read_all")
    assert read["read"] == read["in_scope"] == len(out["documents"]) >= 2 and read["sources"] == 2
    # Every chunk of the first named document comes before any of the second, whatever their relevance.
    order = [d["source"] for d in out["documents"]]
    assert set(order) == set(sources) and order == sorted(order, key=sources.index)
    prompt = llm.prompts[0]
    for chunk in out["documents"]:
        assert " ".join(chunk["text"].split()[:6]) in " ".join(prompt.split())


def test_long_context_stops_at_the_window_and_says_what_it_left_out(indexed, embedder):
    # The whole collection in scope, a window too small for it: the first chunks in ingest order fit.
    out, _ = run(indexed, embedder, ["Grace Hopper [1]."], long_context=True, reflect=False,
                 llm_context_tokens=800, answer_max_tokens=200)
    read = event(out, "read_all")
    assert 0 < read["read"] < read["in_scope"] and read["tokens"] <= read["budget"] == 800 - 200 - 400
    assert any("left out" in n for n in out["notes"])
    everything = indexed.model_copy(update={"long_context": True})
    assert [d["chunk_id"] for d in out["documents"]] == [
        c["chunk_id"] for c in Components(everything, embedder=embedder).read_scope(everything)[0]][: read["read"]]


def test_sources_scope_every_search_and_survive_a_question_filter_that_matches_nothing(indexed, embedder, tmp_path):
    bread = str((tmp_path / "docs" / "bread.txt").resolve())
    out, _ = run(indexed, embedder, [GOOD], sources=[bread], reflect=False, self_query="off")
    assert out["candidates"] and {c["source"] for c in out["candidates"]} == {bread}
    parts = Components(indexed.model_copy(update={"sources": [bread]}), embedder=embedder)
    hits, error, notes = parts.search(parts.settings, [COBOL], 5, where={"title": "no such title"})
    assert error is None and notes and {h["source"] for h in hits} == {bread}
