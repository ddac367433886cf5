"""All of the application's settings in one typed place.

Values come, in order of precedence, from keyword arguments, environment variables
(prefixed ``ARAG_``), a ``.env`` file in the working directory, and the defaults below.
``.env.example`` lists every setting with a comment.

Example:
    >>> from settings import Settings
    >>> s = Settings(data_dir="/tmp/arag-doc", top_k=3)
    >>> s.top_k, s.models_path.name
    (3, 'models')
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    data_dir: Path = Field(Path(".arag"), description="Where the index, checkpoints and models live.")
    models_dir: Path | None = Field(
        None, description="Where assembled GGUF models are kept; defaults to <data_dir>/models."
    )
    collection: str = Field("documents", description="Chroma collection holding the chunks.")

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
    llm_timeout_s: float = Field(120.0, gt=0, description="Timeout of one call to a hosted LLM.")
    answer_max_tokens: int = Field(200, ge=16, description="Upper bound on the answer's length in tokens.")
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    openai_api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("ARAG_OPENAI_API_KEY", "OPENAI_API_KEY")
    )
    anthropic_api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("ARAG_ANTHROPIC_API_KEY", "ANTHROPIC_API_KEY")
    )

    # Embeddings and chunking
    embedding_model: str = Field(
        "minilm", description="'minilm' (packaged all-MiniLM-L6-v2) or a local model directory."
    )
    embedding_batch_size: int = Field(32, ge=1)
    chunk_tokens: int = Field(200, ge=32, le=512, description="Target chunk size in embedding tokens.")
    max_file_mb: float = Field(50.0, gt=0, description="Files larger than this are refused.")

    # Retrieval and generation
    top_k: int = Field(4, ge=1, le=50, description="Chunks given to the generator.")
    context_tokens: int = Field(
        1200, ge=100, description="Budget of source tokens in the answer prompt."
    )
    history_turns: int = Field(2, ge=0, description="Earlier turns of a thread shown to the model.")

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
        return self.models_dir if self.models_dir is not None else self.data_dir / "models"

    @property
    def chroma_path(self) -> Path:
        return self.data_dir / "chroma"

    @property
    def checkpoint_path(self) -> Path:
        return self.data_dir / "checkpoints.sqlite"


__all__ = ["Settings"]
