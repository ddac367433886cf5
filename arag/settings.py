"""All of the application's settings in one typed place.

Values come, in order of precedence, from keyword arguments, environment variables
(prefixed ``ARAG_``), a ``.env`` file in the working directory, and the defaults below.
``.env.example`` lists every setting with a comment.

Example:
    >>> from arag.settings import Settings
    >>> s = Settings(data_dir="/tmp/arag-doc", top_k=3, models_dir="/tmp/arag-models")
    >>> s.top_k, s.models_path.as_posix()
    (3, '/tmp/arag-models')
    >>> Settings(data_dir="/tmp/a").models_path == Settings(data_dir="/tmp/b").models_path  # one cache per user
    True
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The token-vector codecs a setting may name: int8, pq[-BYTES], residual[-DIMSxBITS[-kCENTROIDS]]
#: (the store reads these with arag.index.token_store.codec_options).
TOKEN_VECTOR_CODEC_PATTERN = r"^(int8|pq(-\d+)?|residual(-\d+x[124](-k\d+)?)?)$"


class Settings(BaseSettings):
    """Knobs of ingestion, retrieval and generation, with working offline defaults."""

    model_config = SettingsConfigDict(
        env_prefix="ARAG_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
    )

    # Storage
    data_dir: Path = Field(
        Path(".arag"), description="Where the index, conversation checkpoints and each collection's trained "
        "embedders and rerankers (<data_dir>/models/<collection>/) live."
    )
    models_dir: Path | None = Field(
        None, description="Where assembled GGUF models are kept, shared by every data directory; defaults to "
        "$XDG_CACHE_HOME/arag/models, else ~/.cache/arag/models."
    )
    collection: str = Field("documents", description="Chroma collection holding the chunks.")
    chroma_url: str | None = Field(
        None, description="URL of a Chroma server (`chroma run`), e.g. http://127.0.0.1:8000; unset: the embedded "
        "Chroma in <data_dir>/chroma. Use a server when several processes write the index."
    )
    database_url: SecretStr | None = Field(
        None, description="PostgreSQL URL for conversation checkpoints shared by several app instances "
        "(postgresql://user:password@host:5432/db); unset: SQLite in the data directory."
    )

    # Language model
    llm: str = Field(
        "llamacpp:local-1.5b",
        description="Provider string: llamacpp:<preset or .gguf path>, openai:<model>, "
        "ollama:<model>, anthropic:<model>.",
    )
    llm_base_url: str | None = Field(
        None, description="Base URL of an OpenAI-compatible server (vLLM, llama.cpp server, LM Studio)."
    )
    llm_threads: int = Field(
        default_factory=lambda: max(1, os.cpu_count() or 1),
        description="CPU threads for the local model.",
    )
    llm_context_tokens: int = Field(4096, ge=512, description="Context window of the local model.")
    llm_batch_tokens: int = Field(
        512, ge=32, le=4096, description="Local model: prompt tokens llama.cpp evaluates per step (batch size)."
    )
    llm_flash_attention: bool = Field(False, description="Local model: llama.cpp's flash attention.")
    llm_kv_cache: Literal["f16", "q8_0"] = Field(
        "f16", description="Local model: element type of the KV cache ('q8_0' halves its memory)."
    )
    llm_repack: Literal["auto", "on", "off"] = Field(
        "auto", description="Local model: llama.cpp's repacking of the weights into its interleaved CPU layout when "
        "the model loads. 'auto': off where llama.cpp was built with AVX-512 kernels and without AMX ones (as `make "
        "install` builds it on a CPU with AVX-512), where the weights as stored read prompts 1.2-1.4 times faster "
        "and load in half the time (README, Performance); on elsewhere (llama.cpp's default)."
    )
    llm_timeout_s: float = Field(120.0, gt=0, description="Timeout of one call to a hosted LLM.")
    llm_max_retries: int = Field(
        2, ge=0, le=10, description="Retries of a hosted LLM call after a timeout, refused connection, HTTP 429 or 5xx, "
        "with exponential backoff."
    )
    answer_max_tokens: int = Field(200, ge=16, description="Upper bound on the answer's length in tokens.")
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    openai_api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("ARAG_OPENAI_API_KEY", "OPENAI_API_KEY")
    )
    anthropic_api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("ARAG_ANTHROPIC_API_KEY", "ANTHROPIC_API_KEY")
    )

    # Web search (Tavily)
    tavily_api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("ARAG_TAVILY_API_KEY", "TAVILY_API_KEY")
    )
    web_search_url: str | None = Field(
        None, description="Base URL of the Tavily API (default: Tavily's own); for proxies and tests."
    )
    web_search_timeout_s: float = Field(10.0, gt=0, description="Timeout of one web search.")
    web_results: int = Field(4, ge=1, le=20, description="Web results added when the documents fall short.")

    # Embeddings and chunking
    embedding_model: str = Field(
        "auto",
        description="'auto' (the collection's trained embedder if one is active, else MiniLM), "
        "'minilm' (packaged all-MiniLM-L6-v2), a preset prepared by `arag models --prepare` ('mpnet', "
        "'embeddinggemma', 'e5-small') or a local sentence-transformers directory.",
    )
    embedding_batch_size: int = Field(
        8, ge=1, description="Texts the encoder reads in one pass, of nearly one length (sorted by length first). "
        "On 2 cores, ingesting dev-250, 16 ran 3-5% faster than 32 (AMD EPYC) and 8 4% faster than 16 (Intel Xeon, "
        "two runs each): smaller passes keep their activations in cache.")
    embedding_backend: Literal["auto", "onnx", "onnx-int8", "torch"] = Field(
        "auto", description="How the embedding model runs: 'auto' (as the collection's vectors were made; a new "
        "collection gets 'onnx'), 'onnx' (ONNX Runtime fp32, exported once into the models cache; the same vectors "
        "as torch), 'onnx-int8' (int8 weights: ingestion 1.3-1.7 times faster depending on the CPU; "
        "slightly different vectors, indexed as a model of its own) or 'torch'."
    )
    embedding_bulk_precision: Literal["auto", "bf16", "fp32"] = Field(
        "auto", description="How an ingest encodes documents (from its first batch of 256) with the 'onnx' backend: "
        "'auto' in bfloat16 by OpenVINO where the CPU has AMX (dev-250 ingested at 216 against 95 chunks/s on a "
        "2-core Intel Xeon with AMX, same nDCG; vectors at cosine 0.9999 with fp32's, checked on probe texts before "
        "use; with AVX512-BF16 alone a bf16 ingest ran at 0.72-0.74 of fp32's speed, so there it stays fp32), "
        "'bf16' by OpenVINO whatever the CPU (it stays fp32 where bf16 is not native: for tests), 'fp32' never. "
        "Questions are always encoded by embedding_backend."
    )
    chunk_tokens: int = Field(
        120, ge=32, le=512, description="Paragraphs are packed into one chunk up to this many embedding tokens (200 "
        "until 2026-12-07; 120 gave the tutorial pages' questions more answers from a third fewer prompt tokens: "
        "README, \"Smaller chunks\"). A new size re-chunks every file at the next ingest."
    )
    paragraph_tokens: int = Field(
        200, ge=32, le=512, description="A paragraph of up to this many embedding tokens stays whole in one chunk (even "
        "past chunk_tokens); a longer one is cut at sentence ends into pieces of up to this size. Cutting paragraphs "
        "finer cost both multi-hop sets answers. Taken as at least chunk_tokens; the 'parent' strategy's small chunks "
        "are cut to chunk_tokens."
    )
    index_strategy: Literal["chunks", "parent"] = Field(
        "chunks", description="How documents are indexed, recorded per collection at its first ingest: 'chunks' "
        "(each chunk is what the model reads) or 'parent' (small chunks are matched, their parent section of up to "
        "parent_tokens is what the model reads)."
    )
    tree_search: Literal["collapsed", "traversal", "leaves"] = Field(
        "collapsed", description="With a summary tree (arag build-tree): 'collapsed' searches chunks and summaries of "
        "every level together, 'traversal' walks down from the top summaries, 'leaves' ignores the summaries."
    )
    parent_tokens: int = Field(512, ge=64, le=4096, description="Parent strategy: size of a parent section in tokens.")
    max_file_mb: float = Field(50.0, gt=0, description="Files larger than this are refused.")
    hnsw_search_ef: Literal["auto"] | Annotated[int, Field(ge=10, le=1024)] = Field(
        "auto",
        description="Breadth of Chroma's approximate search: higher finds more of the true nearest chunks for a "
        "little more time (Chroma's own default, 10, misses some). 'auto' sets it by the collection's size after "
        "each ingest (256 up to 100,000 chunks, 512 beyond: recall@10 0.986 or more against exact search up to "
        "1,000,000 chunks in bench/scaling.py); a number fixes it. A change takes effect in processes that open the collection afterwards.",
    )

    # Retrieval and generation
    retrieval: Literal["dense", "hybrid"] = Field(
        "hybrid", description="'hybrid': dense and BM25 rankings fused by reciprocal rank; 'dense': embeddings only."
    )
    candidates: int = Field(20, ge=1, le=200, description="Candidates each retriever contributes before fusion.")
    rrf_k: int = Field(60, ge=1, description="Constant k of reciprocal-rank fusion: score = sum 1/(k + rank).")
    top_k: int = Field(
        5, ge=1, le=50, description="Chunks given to the generator (5 holds every supporting paragraph of 82% of "
        "HotpotQA dev-250 questions, 4 of 78%: bench/link_transfer.py)."
    )
    context_tokens: int = Field(
        1200, ge=100, description="Budget of source tokens in the answer prompt."
    )
    answer_style: Literal["auto", "sentence", "short", "standard"] = Field(
        "auto", description="'sentence': one short cited sentence; 'short': the bare answer phrase, as QA "
        "benchmarks grade it, with the source that holds it cited afterwards; 'auto': 'short' for a question that "
        "asks for a name, place, time or number (which, who, when, where, how many, what + noun), 'sentence' for the "
        "rest; 'standard': FlashRAG's standard-RAG prompt with no citations, the reference `arag eval` compares with."
    )
    write_answer: bool = Field(
        True, description="False: stop at the final context without the answer-writing LLM call, for retrieval "
        "measurements (`arag eval --retrieval-only`); queries are still rewritten where a technique does so."
    )
    compare: bool = Field(
        True, description="Same-attribute yes/no questions (\"Are X and Y from the same country?\"): ask the model for "
        "each side's value and compare them in code, instead of letting it write the yes or no it leans to; "
        "falls back to the answer prompt when it cannot give both values."
    )
    yes_no: Literal["calibrated", "generate"] = Field(
        "generate", description="Short answers to yes/no questions: 'generate' lets the model write the verdict; "
        "'calibrated' takes it from the local model's odds of Yes against No, corrected by its odds for a content-free "
        "question over the same sources. Off by default: on 2Wiki's 29 yes/no questions the 1.5B model's odds do not "
        "tell yes from no (AUC 0.54), so the calibrated verdict is as biased as the written one (README)."
    )
    max_question_words: int = Field(
        300, ge=10, le=5000, description="Longer questions are cut to this many words (with a note), so the sources keep "
        "their place in the model's context."
    )
    long_context: bool = Field(
        False, description="Read instead of search: the model gets every chunk in scope (the documents `sources` "
        "names, in that order, else the whole collection in ingest order) up to its context window "
        "(llm_context_tokens), with no grading or reranking. For small document sets and long-context models; "
        "measured against retrieval in the README (Long context against RAG)."
    )
    sources: list[str] = Field(
        default_factory=list, description="Only these documents are searched or read (their sources as ingested: "
        "file paths or URLs); empty: every document. Usually set per question (config={'configurable': "
        "{'sources': [...]}})."
    )
    compression: bool = Field(
        False, description="Cut each chunk given to the model down to its sentences most related to the question "
        "(embedding and word overlap, no LLM call), so more chunks fit the context budget."
    )
    compression_keep: float = Field(
        0.75, gt=0.0, le=1.0, description="Compression keeps sentences scoring at least this share of their chunk's best."
    )
    history_turns: int = Field(2, ge=0, description="Earlier turns of a thread shown to the model.")

    # Agentic techniques; each can also be set for one call through
    # config={"configurable": {...}} (see Settings.for_run) or as a named profile.
    router: Literal["rules", "llm"] = Field(
        "rules", description="Who routes a question: cheap rules, or one structured LLM call."
    )
    decompose: Literal["off", "auto", "always"] = Field(
        "off", description="Split multi-hop questions into sub-questions: never, when the router says so, always. Off by "
        "default: it costs two or three LLM calls and lowered F1 on HotpotQA and 2Wiki (README, Answers)."
    )
    decompose_mode: Literal["sequential", "parallel"] = Field(
        "sequential", description="Sub-questions answered in turn (each answer feeds the next) or retrieved together."
    )
    store_token_vectors: bool = Field(
        True,
        description="Keep each chunk's token vectors (token_vector_codec: 194 bytes a token by default) from the ingest pass, so "
        "late-interaction scoring encodes only the question: reranking 30 chunks takes milliseconds instead of "
        "an encoder pass over all of them (see bench/rerank_speed.py).",
    )
    token_vector_codec: str = Field(
        "residual", pattern=TOKEN_VECTOR_CODEC_PATTERN,
        description="How kept token vectors are stored: 'residual' (ColBERTv2-style: a learnt centroid's id and "
        "each dimension's residual in 4 bits, 194 bytes a token for MiniLM, half of int8's; the centroids are learnt "
        "from the first 256 chunks written together that bring 20,000 tokens, and rows written before stay int8), "
        "'int8' (about 390 bytes a token), "
        "'pq' (product quantisation: token_vector_bytes bytes a token). Other shapes: 'residual-DIMSxBITS[-kCENTROIDS]' "
        "(e.g. residual-384x2, 98 bytes; residual-128x2, 34), 'pq-BYTES'. A file keeps the codebook it was first given.",
    )
    token_vector_bytes: int = Field(
        48, description="Bytes a token with token_vector_codec 'pq' (sub-vectors; must divide the model's dimension)."
    )
    max_sub_questions: int = Field(3, ge=2, le=5)
    self_query: Literal["off", "rules", "llm"] = Field(
        "off", description="Metadata filters from the question (title, year, ingest tags): 'rules' (values the "
        "question names, no LLM call), 'llm' (the model proposes conditions; each is validated), or 'off'. Off by "
        "default: a year or title the question names often belongs to the first hop only, and the filter then hides "
        "the second (HotpotQA: 58 of 250 questions filtered, their first nDCG@10 0.17 against 0.73 unfiltered)."
    )
    multi_query: int = Field(0, ge=0, le=5, description="Extra rewordings of the question, fused by RRF (0: off).")
    step_back: bool = Field(False, description="Also retrieve for a more generic step-back question.")
    hyde: bool = Field(False, description="Also retrieve with a hypothetical answer passage (HyDE).")
    transform_when: Literal["first", "retry"] = Field(
        "first", description="When the query transforms that are on (multi-query, step-back, HyDE) write their "
        "queries: 'first', before every question's first search; 'retry', only for the extra search that follows a "
        "grade finding too few relevant chunks, so their LLM calls go where the documents fell short."
    )
    grader: Literal["score", "llm", "off"] = Field(
        "score", description="Document grading: the relevance scorer's calibrated probability (no LLM call), the LLM, or none."
    )
    scorer: Literal["auto", "cross-encoder", "late-interaction", "multi", "splade"] = Field(
        "auto",
        description="Relevance scorer for grading and reranking: 'auto' is the collection's trained cross-encoder "
        "(arag train-reranker) when one is in use, else late interaction over the embedding model's token vectors; "
        "'multi' adds the pooled vector and BM25-weighted shared terms to late interaction (BGE-M3's combined score).",
    )
    relevance_threshold: float = Field(
        0.2, ge=0.0, le=1.0,
        description="Score grader: least calibrated probability of relevance to keep a chunk. The calibration lists "
        "hold one relevant passage in about 60 (half of them none); a question's ~30 candidates usually hold two, four "
        "times that rate, so 'more likely relevant than not' is a calibrated probability of about 0.2.",
    )
    link_expansion: bool = Field(
        True,
        description="A chunk named by one of the most relevant chunks (its document's title appears there) "
        "gains relevance: finds the second passage of multi-hop questions. Weight fitted by arag train-reranker.",
    )
    second_hop: bool = Field(
        True, description="Search again with the question joined to its best-scored passage (multi-hop dense "
        "retrieval, no LLM call): finds the second passage of multi-hop questions."
    )
    min_relevant: int = Field(1, ge=0, description="Fewer relevant chunks than this triggers rewrite + web search.")
    fill_context: bool = Field(
        True,
        description="When fewer than top_k chunks pass the grade and no further search follows, the best remaining "
        "candidates fill the context: up to context_min whatever their score, then up to top_k those at least "
        "fill_min_relevance likely relevant (the grade still decides whether to search again).",
    )
    context_min: int = Field(
        4, ge=1, le=50, description="Chunks the context holds whatever their relevance, when there are that many "
        "(filling, or a grade that found nothing relevant with no search left)."
    )
    fill_min_relevance: float = Field(
        0.001, ge=0.0, le=1.0, description="Beyond context_min, filling takes only candidates of at least this "
        "calibrated probability of relevance: the fifth passage is then one that may matter, not filler (README, "
        "Answers: context budget)."
    )
    index_retry: bool = Field(
        False, description="With no web search available, let a failed grade rewrite the question and search the "
        "index again. Off by default: on HotpotQA and 2Wiki it never changed a final context (README, Answers); the "
        "agentic profile turns it on, since its query transforms run on that search."
    )
    text_to_sql: bool = Field(
        True, description="Questions about tables ingested from CSV or SQLite files are answered by one checked, "
        "read-only SELECT the model writes (text_to_sql node); off: such questions go to the documents."
    )
    sql_max_rows: int = Field(50, ge=1, le=10_000, description="Rows a text-to-SQL query may return.")
    sql_timeout_s: float = Field(2.0, gt=0, le=60, description="Time a text-to-SQL query may run.")
    web_fallback: bool = Field(True, description="Search the web (Tavily) when the documents fall short.")
    rerank: bool = Field(True, description="Reorder candidates by the relevance scorer before trimming to the context budget.")
    reflect: bool = Field(
        False, description="Check the answer is grounded and useful (Self-RAG) before returning it, and regenerate or "
        "search again when it is not. Off by default: not shown to pay (README, Answers)."
    )
    max_retries: int = Field(1, ge=0, le=5, description="Extra retrieval rounds after a failed grade or reflection.")
    max_regenerations: int = Field(1, ge=0, le=5, description="Extra generations after an ungrounded answer.")

    def for_run(self, config: dict | None) -> Settings:
        """These settings with the overrides in ``config["configurable"]`` applied and validated.

        Example:
            >>> Settings().for_run({"configurable": {"hyde": True, "thread_id": "t"}}).hyde
            True
        """
        configurable = (config or {}).get("configurable") or {}
        overrides = {k: v for k, v in configurable.items() if k in type(self).model_fields}
        profile = configurable.get("profile")
        if profile is not None:
            if profile not in PROFILES:
                raise ValueError(f"unknown profile {profile!r}; use one of {', '.join(PROFILES)}")
            overrides = {**PROFILES[profile], **overrides}
        if not overrides:
            return self
        return type(self).model_validate({**self.model_dump(), **overrides})

    @field_validator("web_search_url", "llm_base_url", "chroma_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(("postgresql://", "postgres://")):
            raise ValueError("must be a postgresql:// URL")
        return value

    @field_validator("collection")
    @classmethod
    def _collection_name(cls, value: str) -> str:
        # Chroma accepts 3-512 characters of [a-zA-Z0-9._-], starting and ending alphanumeric.
        ok = 3 <= len(value) <= 512 and value[0].isalnum() and value[-1].isalnum()
        if not ok or any(not (c.isalnum() or c in "._-") for c in value):
            raise ValueError(
                "collection names need 3-512 characters: letters, digits, '.', '_' or '-', "
                "starting and ending with a letter or digit"
            )
        return value

    @property
    def models_path(self) -> Path:
        """Where assembled GGUF models live: ``models_dir``, else the per-user cache."""
        return self.models_dir.expanduser() if self.models_dir is not None else default_models_dir()

    @property
    def chroma_path(self) -> Path:
        return self.data_dir / "chroma"

    @property
    def checkpoint_path(self) -> Path:
        return self.data_dir / "checkpoints.sqlite"


def default_models_dir() -> Path:
    """The per-user cache of assembled GGUF models, shared by every data directory.

    ``$XDG_CACHE_HOME/arag/models``, else ``~/.cache/arag/models``: a model is a gigabyte that no
    data directory owns, so each ``--data-dir`` reuses one copy instead of assembling its own.
    The XDG specification says a relative ``XDG_CACHE_HOME`` is to be ignored.
    """
    cache = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(cache) if cache and Path(cache).is_absolute() else Path.home() / ".cache"
    return base / "arag" / "models"


#: Named sets of technique settings: the cheapest useful path, the shipped one, and the shipped one
#: with LLM query transforms and reflection where the evidence falls short.
PROFILES: dict[str, dict] = {
    "naive": {
        "router": "rules", "decompose": "off", "multi_query": 0, "step_back": False, "hyde": False,
        "grader": "off", "web_fallback": False, "rerank": False, "reflect": False, "retrieval": "dense",
        "self_query": "off", "link_expansion": False, "second_hop": False, "compare": False,
    },
    "fast": {
        "router": "rules", "decompose": "off", "multi_query": 0, "step_back": False, "hyde": False,
        "grader": "score", "web_fallback": True, "rerank": True, "reflect": False, "self_query": "off",
        "second_hop": True, "link_expansion": True, "retrieval": "hybrid",
    },
    # The default path, plus LLM work spent only where the scores say the documents fell short:
    # every query transform for the extra search, and Self-RAG reflection on the answer. The LLM
    # router, decomposition and self-query stay off: self-query costs recall, and the other two
    # add calls that bought no F1 when last measured (README, How it works).
    "agentic": {
        "router": "rules", "decompose": "off", "multi_query": 2, "step_back": True, "hyde": True,
        "transform_when": "retry", "index_retry": True, "grader": "score", "web_fallback": True, "rerank": True, "reflect": True,
        "self_query": "off", "second_hop": True, "link_expansion": True, "retrieval": "hybrid",
    },
}

__all__ = ["PROFILES", "Settings", "default_models_dir"]
