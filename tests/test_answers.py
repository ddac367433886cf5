"""Answer styles: the short answer cited afterwards, the standard reference prompt, yes/no
verdicts taken from the model's calibrated odds instead of its text, and a local model's sentence
answer ended after its first sentence, with a citation the model writes where it gave none.
"""

from __future__ import annotations

import re

import pytest
from documents import write_corpus
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import Field
from scripted_llm import ScriptedChatModel

from arag.comparison import named_sides
from arag.llms.llamacpp import LlamaCppChat
from arag.runtime.components import Components
from arag.settings import Settings
from arag.text import answer_style_for, lacks_citation, opens_another_sentence
from graphs import build_graph

COBOL = "Who built the first COBOL compiler?"


class OddsModel(ScriptedChatModel):
    """A scripted model that also exposes next-token logits: ``odds`` maps a marker found in the
    prompt's last message to the (Yes, yes, No, no) logits returned for it.
    """

    odds: dict[str, tuple[float, float, float, float]] = Field(default_factory=dict)
    readings: list[str] = Field(default_factory=list)

    def next_token_logits(self, messages, words, tokens_seen=None):
        assert list(words) == ["Yes", "yes", "No", "no"]
        last = str(messages[-1].content)
        self.readings.append(last)
        if tokens_seen is not None:
            tokens_seen.append((100, 100 if len(self.readings) == 1 else 4))
        return list(next(v for marker, v in self.odds.items() if marker in last))


@pytest.fixture
def indexed(tmp_path, settings, embedder, ingestor):
    write_corpus(tmp_path / "docs")
    ingestor.ingest([tmp_path / "docs"], progress=False)
    return settings


def ask(settings, embedder, llm, question, **configurable):
    graph = build_graph(components=Components(settings, llm=llm, embedder=embedder))
    return graph.invoke({"question": question}, {"configurable": {"profile": "naive", **configurable}})


def generate_event(out):
    return next(e for e in out["trace"] if e["node"] == "generate")


def test_short_answer_is_asked_alone_and_cited_from_the_source_holding_it(indexed, embedder):
    llm = ScriptedChatModel(script=["Grace Hopper"])
    out = ask(indexed, embedder, llm, COBOL, answer_style="short")
    grace = next(i + 1 for i, d in enumerate(out["documents"]) if d["title"] == "Grace Hopper")
    assert out["answer"] == f"Grace Hopper [{grace}]"
    assert [c["n"] for c in out["citations"]] == [grace]
    assert generate_event(out)["attributed"] == [grace]
    prompt = llm.prompts[0]
    # No citation format and no example answer for a small model to copy.
    assert "Only give me the answer" in prompt and "[1]" not in prompt.split("<sources>")[0]
    assert "Paris" not in prompt and prompt.rstrip().endswith(f"Question: {COBOL}")


def test_by_default_a_question_for_a_name_gets_the_phrase_and_any_other_a_sentence(indexed, embedder):
    assert Settings().answer_style == "auto"
    llm = ScriptedChatModel(script=["Grace Hopper", "Her team built the first COBOL compiler [1]."])
    named = ask(indexed, embedder, llm, COBOL)
    grace = next(i + 1 for i, d in enumerate(named["documents"]) if d["title"] == "Grace Hopper")
    assert named["answer"] == f"Grace Hopper [{grace}]" and generate_event(named)["answer_style"] == "short"
    assert "Only give me the answer" in llm.prompts[0]
    explained = ask(indexed, embedder, llm, "What did Grace Hopper's team do?")
    assert explained["answer"] == "Her team built the first COBOL compiler [1]."
    assert generate_event(explained)["answer_style"] == "sentence"
    assert "Answer in one short sentence" in llm.prompts[1] and "Only give me the answer" not in llm.prompts[1]


@pytest.mark.parametrize("question, style", [
    ("Which command creates a virtual environment?", "short"),
    ("In which year was the module added?", "short"),
    ("Who built the first COBOL compiler?", "short"),
    ("How many listeners can an emitter have?", "short"),
    ("What module parses TOML?", "short"),
    ("What does pip freeze do?", "sentence"),
    ("What is the module search path?", "sentence"),
    ("What happens when an exception is not handled?", "sentence"),
    ("How do I install a specific version of a package?", "sentence"),
    ("Why does Python cache compiled modules?", "sentence"),
    ("Is Python an interpreted language?", "sentence"),
    ("What's new in 3.11?", "sentence"),
])
def test_auto_style_follows_what_the_question_asks_for(question, style):
    assert answer_style_for("auto", question) == style
    assert answer_style_for("sentence", question) == "sentence" and answer_style_for("short", question) == "short"


def test_short_answer_found_in_no_source_stays_uncited(indexed, embedder):
    out = ask(indexed, embedder, ScriptedChatModel(script=["Marie Curie"]), COBOL, answer_style="short")
    assert out["answer"] == "Marie Curie" and out["citations"] == []
    assert generate_event(out)["note"] == "the answer cites no source"


def test_standard_prompt_is_flashrags_and_uncited(indexed, embedder):
    llm = ScriptedChatModel(script=["Grace Hopper"])
    out = ask(indexed, embedder, llm, COBOL, answer_style="standard", top_k=5)
    system, _, human = llm.prompts[0].rpartition("\n")
    assert system.startswith("Answer the question based on the given document. Only give me the answer and do not "
                             "output any other words.\nThe following are given documents.\n\nDoc 1(Title: ")
    assert human == f"Question: {COBOL}"
    assert out["answer"] == "Grace Hopper" and out["citations"] == []


def test_yes_no_verdict_is_the_models_odds_corrected_by_a_content_free_question(indexed, embedder):
    # Raw odds favour "Yes" (gap 2), but the same sources with "N/A" favour it more (gap 3): "No".
    llm = OddsModel(odds={"N/A": (4.0, 0.0, 1.0, 0.0), "COBOL": (3.0, 0.0, 1.0, 0.0)})
    out = ask(indexed, embedder, llm, "Did Grace Hopper build the first COBOL compiler?", answer_style="short",
              yes_no="calibrated")
    event = generate_event(out)
    assert out["answer"].startswith("No [") and out["citations"]
    assert (event["yes_no"], event["yes_no_gap"], event["yes_no_bias"]) == ("No", 2.0, 3.0)
    assert llm.prompts == []  # nothing was generated
    assert llm.readings[0].endswith("Did Grace Hopper build the first COBOL compiler?") and llm.readings[1] == "Question: N/A"
    # One call: the whole prompt once, then the few tokens of the content-free question.
    assert (out["llm_calls"], event["prompt_tokens"]) == (1, 104)


def test_yes_no_verdict_follows_the_odds_when_they_beat_the_bias(indexed, embedder):
    llm = OddsModel(odds={"N/A": (2.0, 0.0, 1.0, 0.0), "COBOL": (3.0, 0.0, 0.0, 0.5)})
    out = ask(indexed, embedder, llm, "Is Grace Hopper known for the first COBOL compiler?", answer_style="short",
              yes_no="calibrated")
    assert out["answer"].startswith("Yes [")


@pytest.mark.parametrize("question, configurable", [
    ("Did Grace Hopper build the first COBOL compiler?", {"yes_no": "generate"}),  # calibration off (the default)
    ("Did Grace Hopper build the first COBOL compiler?", {"answer_style": "sentence"}),  # a chat answer
    ("Was COBOL or Fortran compiled first by Grace Hopper?", {}),  # a choice between two names
    (COBOL, {}),  # not a yes/no question
])
def test_other_questions_and_styles_are_generated(indexed, embedder, question, configurable):
    llm = OddsModel(script=["Yes"], odds={})
    out = ask(indexed, embedder, llm, question, **{"answer_style": "short", "yes_no": "calibrated", **configurable})
    assert llm.readings == [] and len(llm.prompts) == 1 and out["answer"].startswith("Yes")


def test_a_model_without_odds_writes_the_verdict(indexed, embedder):
    out = ask(indexed, embedder, ScriptedChatModel(script=["No"]), "Did Grace Hopper build the first COBOL compiler?",
              answer_style="short", yes_no="calibrated")
    assert out["answer"].startswith("No")


def test_second_hop_searches_again_with_the_best_passage(settings):
    from nodes.second_hop import second_hop

    class Judge:
        def judge(self, question, chunks, links=True):
            return [{**c, "relevance": {"a": 0.2, "b": 0.9}[c["chunk_id"]]} for c in chunks]

    class Parts:
        def __init__(self):
            self.settings, self.queries = settings, []

        def judge_for(self, _):
            return Judge()

        def search(self, _, queries, k, where=None):
            self.queries += queries
            return [{"chunk_id": "b", "title": "Shirley Temple", "text": "..."},
                    {"chunk_id": "c", "title": "Chief of Protocol", "text": "..."}], None, []

    first = [{"chunk_id": "a", "title": "Corliss Archer", "text": "A radio show."},
             {"chunk_id": "b", "title": "Shirley Temple", "text": "She played Corliss Archer in Kiss and Tell."}]
    parts = Parts()
    out = second_hop({"standalone_question": "What post did the actress hold?", "candidates": first},
                     {"configurable": {"second_hop": True}}, components=parts)
    # The best-scored passage (b), not the first-ranked, joins the question.
    assert parts.queries == ["What post did the actress hold? Shirley Temple: She played Corliss Archer in Kiss and Tell."]
    assert [c["chunk_id"] for c in out["candidates"]] == ["a", "b", "c"]  # the new hit is added once
    event = out["trace"][0]
    assert (event["from_chunk"], event["found"], event["added"], out["llm_calls"]) == ("b", 2, 1, 0)


def test_second_hop_runs_in_the_graph_without_an_llm_call(indexed, embedder):
    out = ask(indexed, embedder, ScriptedChatModel(default="Grace Hopper"), COBOL, profile="fast", decompose="off",
              reflect=False)
    hop = next(e for e in out["trace"] if e["node"] == "second_hop")
    graded = next(e for e in out["trace"] if e["node"] == "grade_documents")["grades"]
    first = next(e for e in out["trace"] if e["node"] == "retrieve")
    assert hop["from_chunk"] in first["ranking"] and len(graded) == first["found"] + hop["added"]
    assert out["llm_calls"] == 1


def test_second_hop_off_passes_the_candidates_through(indexed, embedder):
    out = ask(indexed, embedder, ScriptedChatModel(default="Grace Hopper"), COBOL, answer_style="short")
    assert next(e for e in out["trace"] if e["node"] == "second_hop")["skipped"] == "second hop off"


SAME_ERA = "Were Ada Lovelace and Grace Hopper of the same nationality?"


def compare_event(out):
    return next(e for e in out["trace"] if e["node"] == "compare")


@pytest.mark.parametrize("replies, verdict", [
    (["British", "American"], "No"),
    (["American", "United States"], "Yes"),  # a nationality word and its country agree
])
def test_same_attribute_question_is_decided_in_code_from_each_sides_value(indexed, embedder, replies, verdict):
    llm = ScriptedChatModel(script=list(replies))
    out = ask(indexed, embedder, llm, SAME_ERA, profile="fast", answer_style="short", reflect=False, max_retries=0)
    event = compare_event(out)
    assert out["answer"].split(" [")[0] == verdict and out["llm_calls"] == 2
    assert (event["attribute"], event["decided"]) == ("nationality", verdict.lower())
    assert [s["name"] for s in event["sides"]] == ["Ada Lovelace", "Grace Hopper"]
    assert event["mode"] == "each side from its own sources"
    assert "generate" not in [e["node"] for e in out["trace"]]  # no further call asked for the verdict
    # The model was asked for the facts, never for the verdict, and each side saw only its own passage.
    ada, grace = llm.prompts
    assert "What is the nationality of Ada Lovelace?" in ada and "Grace Hopper" not in ada
    assert "What is the nationality of Grace Hopper?" in grace and "Ada Lovelace" not in grace
    assert "Analytical Engine" in ada and "COBOL" not in ada
    assert "COBOL" in grace and "Analytical Engine" not in grace


def test_a_side_reads_the_pages_its_own_passage_names():
    from nodes.compare import side_sources

    documents = [{"title": "Sleepers", "text": "Sleepers is a 1996 film directed by Barry Levinson."},
                 {"title": "The Juniper Tree (film)", "text": "A 1990 film directed by Nietzchka Keene."},
                 {"title": "Barry Levinson", "text": "Barry Levinson is an American filmmaker."},
                 {"title": "Nietzchka Keene", "text": "Nietzchka Keene was an American director."},
                 {"title": "Levinson Prize", "text": "An award."}]
    question = "Are director of film Sleepers and director of film The Juniper Tree (Film) from the same country?"
    sides = named_sides(question, [d["title"] for d in documents])
    assert sides == ["Sleepers", "The Juniper Tree (film)"]
    assert [d["title"] for d in side_sources(*sides, documents)] == ["Sleepers", "Barry Levinson"]
    assert [d["title"] for d in side_sources(*sides[::-1], documents)] == ["The Juniper Tree (film)", "Nietzchka Keene"]


FILMS = [{"chunk_id": "s", "title": "Sleepers", "text": "Sleepers is a 1996 American film directed by Barry Levinson."},
         {"chunk_id": "j", "title": "The Juniper Tree (film)",
          "text": "The Juniper Tree is a 1990 Icelandic film directed by Nietzchka Keene."},
         {"chunk_id": "k", "title": "Nietzchka Keene", "text": "Nietzchka Keene was an American film director."}]
BARRY = {"chunk_id": "b", "title": "Barry Levinson", "text": "Barry Levinson is an American filmmaker."}


def test_related_people_are_named_first_then_read_from_their_own_pages():
    from nodes.compare import compare

    # Barry Levinson's page was retrieved but scored out of the context: the candidates are searched too.
    state = {"question": "Do the directors of films Sleepers and The Juniper Tree (Film) have the same nationality?",
             "documents": FILMS, "candidates": [*FILMS, BARRY]}
    llm = ScriptedChatModel(script=["Barry Levinson", "American", "Nietzchka Keene", "American"])
    out = compare(state, {"configurable": {"answer_style": "short"}}, components=Components(Settings(), llm=llm))
    who_sleepers, levinson, who_juniper, keene = llm.prompts
    assert "Who is the director of Sleepers?" in who_sleepers and "Icelandic" not in who_sleepers
    assert "What is the nationality of Barry Levinson?" in levinson and "American filmmaker" in levinson
    assert "Who is the director of The Juniper Tree (film)?" in who_juniper
    # The person's page, not the film's ("Icelandic"), answers for the person.
    assert "American film director" in keene and "Icelandic" not in keene
    assert out["answer"].startswith("Yes [") and [d["chunk_id"] for d in out["documents"]] == ["s", "j", "k", "b"]
    assert {c["title"] for c in out["citations"]} <= {"Barry Levinson", "Nietzchka Keene", "Sleepers"}


def test_a_value_its_passage_writes_as_part_of_a_compound_is_widened():
    from nodes.compare import compare

    docs = [{"chunk_id": "p", "title": "Touch of Pink", "text": "Touch of Pink is a 2004 Canadian- British comedy."},
            {"chunk_id": "h", "title": "The Head of the Family", "text": "A 1922 British silent film."}]
    llm = ScriptedChatModel(script=["Canadian", "British"])
    out = compare({"question": "Are Touch of Pink and The Head of the Family from the same country?", "documents": docs},
                  {"configurable": {"answer_style": "short"}}, components=Components(Settings(), llm=llm))
    sides = next(e for e in out["trace"] if e["node"] == "compare")["sides"]
    assert [s["value"] for s in sides] == ["Canadian-British", "British"] and out["answer"].startswith("Yes")


def test_comparison_without_titled_sides_asks_for_both_at_once(indexed, embedder):
    llm = ScriptedChatModel(script=["the first programmer: British\nthe COBOL pioneer: American"])
    out = ask(indexed, embedder, llm, "Were the first programmer and the COBOL pioneer of the same nationality?",
              profile="fast", answer_style="short", reflect=False, max_retries=0)
    event = compare_event(out)
    assert (event["mode"], event["decided"], out["llm_calls"]) == ("both sides at once", "no", 1)
    assert out["answer"].startswith("No") and "exactly two lines" in llm.prompts[0]


def test_comparison_cites_the_sources_that_state_each_value(indexed, embedder):
    out = ask(indexed, embedder, ScriptedChatModel(script=["algorithm", "COBOL"]),
              "Are Ada Lovelace and Grace Hopper known for the same invention?", profile="fast", answer_style="short",
              reflect=False, max_retries=0)
    titles = {c["title"] for c in out["citations"]}
    assert out["answer"].startswith("No [") and titles == {"Ada Lovelace", "Grace Hopper"}


def test_sentence_answer_to_a_comparison_names_both_values(indexed, embedder):
    out = ask(indexed, embedder, ScriptedChatModel(script=["British", "American"]),
              SAME_ERA, profile="fast", reflect=False, max_retries=0)
    assert out["answer"].startswith("No (Ada Lovelace: British; Grace Hopper: American)")


@pytest.mark.parametrize("question, replies, why", [
    (SAME_ERA, ["British", "unknown"], "the sources do not give a value for both sides"),
    (SAME_ERA, ["British", ""], "the sources do not give a value for both sides"),
    ("Were the first programmer and the COBOL pioneer of the same nationality?", ["Yes, both are."],
     "the reply did not give two values"),
])
def test_undecided_comparison_falls_back_to_the_answer_prompt(indexed, embedder, question, replies, why):
    llm = ScriptedChatModel(script=[*replies, "Yes"])
    out = ask(indexed, embedder, llm, question, profile="fast", answer_style="short", reflect=False, max_retries=0)
    assert (compare_event(out)["decided"], compare_event(out)["why"]) == (None, why)
    assert out["answer"].startswith("Yes") and out["llm_calls"] == len(replies) + 1
    visited = [e["node"] for e in out["trace"]]
    assert visited.index("compare") + 1 == visited.index("generate")


@pytest.mark.parametrize("question, configurable", [
    (SAME_ERA, {"compare": False}),
    (SAME_ERA, {"profile": "naive"}),  # naive is every technique off
    ("Did Grace Hopper build the first COBOL compiler?", {}),  # yes/no, but compares nothing
])
def test_comparison_path_is_taken_only_when_asked_for_a_shared_attribute(indexed, embedder, question, configurable):
    llm = ScriptedChatModel(script=["Yes"])
    out = ask(indexed, embedder, llm, question, **{"profile": "fast", "answer_style": "short", "reflect": False,
                                                   "max_retries": 0, **configurable})
    assert "compare" not in [e["node"] for e in out["trace"]] and len(llm.prompts) == 1


def test_retrieval_only_skips_the_comparison_call_with_the_answer(indexed, embedder):
    llm = ScriptedChatModel(script=[])
    out = ask(indexed, embedder, llm, SAME_ERA, profile="fast", answer_style="short", reflect=False, max_retries=0,
              write_answer=False)
    assert "compare" not in [e["node"] for e in out["trace"]] and llm.prompts == [] and out["documents"]


class RecordingLocalModel(LlamaCppChat):
    """The local chat model's type, answering from a script instead of a GGUF file, with the options of each call."""

    options: list[dict] = Field(default_factory=list)

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        self.options.append(kwargs)
        return ChatResult(generations=[ChatGeneration(message=AIMessage("Grace Hopper built it [1]."))])


@pytest.mark.parametrize("style, ended", [("sentence", True), ("short", False), ("standard", False)])
def test_a_local_models_sentence_answer_ends_after_its_first_sentence(indexed, embedder, style, ended):
    llm = RecordingLocalModel(model_path="unused.gguf")
    ask(indexed, embedder, llm, COBOL, answer_style=style)
    options = llm.options[0]
    assert (options.get("end_before") is opens_another_sentence) is ended
    assert (options.get("cite_ended") is lacks_citation) is ended


@pytest.mark.parametrize("reply, piece, opens", [
    ("Run `python3 -m venv tutorial-env` [2].", " This", True),
    ("It is saved in `requirements.txt`. [1]", " This", True),
    ("It lists the installed packages.", " This", True),  # uncited: the number is asked for after it
    ("It is saved in `requirements.txt` [1].", "\n", True),
    ("It is saved in `requirements.txt` [1]. ", "This", True),  # the space came alone
    ("It is saved in `requirements.txt` [1, 3].", " It", True),
    ("It is saved in `requirements.txt`.", " [", False),  # its citation comes next
    ("Install Python 3.", "11", False),
    ("It needs `x[1].", " Then", False),  # inside code
    ("Run it [2]", " This", False),  # no full stop
    ("Run it [2].", " and", False),  # no capital: not a new sentence
])
def test_another_sentence_is_told_by_a_full_stop_and_a_capital_outside_code(reply, piece, opens):
    assert opens_another_sentence(reply, piece) is opens


def test_only_an_uncited_reply_is_given_a_citation():
    assert lacks_citation("It lists the installed packages.")
    assert not lacks_citation("It lists the installed packages [2].") and not lacks_citation("See [1, 3].")


@pytest.mark.parametrize("preset", ["local-0.5b", "local-270m"])  # chat template, and a base model's plain prompt
def test_a_reply_ended_before_a_piece_keeps_the_pieces_before_it_and_can_be_cited(preset):
    from conftest import MODELS_DIR
    from langchain_core.messages import HumanMessage

    from arag.llms.factory import make_chat_model
    from arag.llms.llamacpp import forget_prompt_caches

    if not (MODELS_DIR / f"{preset}.gguf").exists():
        pytest.skip(f"{preset} is not assembled (make install does it)")
    chat = make_chat_model(Settings(llm=f"llamacpp:{preset}", models_dir=MODELS_DIR, llm_context_tokens=1152),
                           progress=False)
    prompt = [HumanMessage("Notes: The Harbour Lighthouse was designed by Mara Olsen in 1871. It stands on the north "
                           "pier and its lamp burns oil.\nWhat do the notes say about the lighthouse?")]

    def fresh(call, **options):  # each call reads the whole prompt, as the first did
        forget_prompt_caches()
        return call(prompt, max_tokens=12, **options)

    pieces = [str(chunk.content) for chunk in fresh(chat.stream) if chunk.content]
    full = fresh(chat.invoke)
    assert len(pieces) >= 4 and "".join(pieces).strip() == full.content

    kept = "".join(pieces[:3])
    ends = {"end_before": lambda reply, piece: reply == kept}
    ended = fresh(chat.invoke, **ends)
    assert ended.content == kept.strip()
    assert ended.usage_metadata["output_tokens"] == 3
    assert ended.usage_metadata["input_tokens"] == full.usage_metadata["input_tokens"]
    assert ended.response_metadata["finish_reason"] == "stop"
    assert "".join(str(c.content) for c in fresh(chat.stream, **ends)) == kept

    # Asked to cite what it ended, the model writes a source's number, and only that, after the reply.
    cited = fresh(chat.invoke, **ends, cite_ended=lambda reply: reply == kept)
    assert re.fullmatch(re.escape(kept.strip()) + r" \[[1-9]\d?\]", cited.content), cited.content
