"""The LLM factory: one provider string in settings gives a LangChain chat model.

Providers:
    ``llamacpp:<preset>`` or ``llamacpp:/path/model.gguf``: a local model (presets in
    :data:`llms.gguf.PRESETS`: ``local-1.5b`` (default), ``local-0.5b``, ``local-270m``);
    ``openai:<model>``: OpenAI or any OpenAI-compatible server (``ARAG_LLM_BASE_URL``);
    ``ollama:<model>`` and ``anthropic:<model>``: through their LangChain integrations.

Example:
    >>> from arag.llms.factory import parse_provider
    >>> parse_provider("llamacpp:local-0.5b")
    ('llamacpp', 'local-0.5b')
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from langchain_core.language_models import BaseChatModel

from arag.llms.gguf import PRESETS, GGUFPreset, ModelUnavailable, ensure_model
from arag.settings import Settings

PROVIDERS = ("llamacpp", "openai", "ollama", "anthropic")


def parse_provider(spec: str) -> tuple[str, str]:
    """Split ``provider:model``; a bare preset name means ``llamacpp``."""
    provider, sep, name = spec.partition(":")
    if not sep:
        provider, name = "llamacpp", spec
    provider = provider.strip().lower()
    if provider not in PROVIDERS:
        raise ValueError(f"unknown LLM provider {provider!r} in {spec!r}; use one of {', '.join(PROVIDERS)}")
    if not name.strip():
        raise ValueError(f"LLM setting {spec!r} names no model")
    return provider, name.strip()


def local_model_file(name: str, settings: Settings, progress: bool = True) -> tuple[Path, GGUFPreset | None]:
    """Resolve a preset (assembling and verifying it) or an explicit .gguf path."""
    if name in PRESETS:
        preset = PRESETS[name]
        # Versions before the per-user cache assembled into <data_dir>/models: reuse a copy found there.
        earlier = (settings.data_dir / "models",)
        return ensure_model(preset, settings.models_path, progress=progress, earlier_dirs=earlier), preset
    path = Path(name).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelUnavailable(f"model file not found: {path}")
        return path, None
    raise ModelUnavailable(
        f"unknown local model {name!r}: use a preset ({', '.join(PRESETS)}) or a .gguf path"
    )


#: The settings :func:`make_chat_model` reads: runs whose settings agree on all of them can share one chat model.
CHAT_MODEL_SETTINGS = (
    "llm", "llm_base_url", "llm_threads", "llm_context_tokens", "llm_batch_tokens", "llm_flash_attention",
    "llm_kv_cache", "llm_repack", "llm_timeout_s", "llm_max_retries", "answer_max_tokens", "temperature",
    "openai_api_key", "anthropic_api_key", "models_dir", "data_dir",
)


def make_chat_model(settings: Settings, spec: str | None = None, progress: bool = True) -> BaseChatModel:
    """Build the chat model the settings (or ``spec``) name. Local weights load on first call."""
    provider, name = parse_provider(spec or settings.llm)
    if provider == "llamacpp":
        from arag.llms.llamacpp import LlamaCppChat

        path, preset = local_model_file(name, settings, progress=progress)
        return LlamaCppChat(
            model_path=str(path),
            n_ctx=settings.llm_context_tokens,
            n_threads=settings.llm_threads,
            n_batch=settings.llm_batch_tokens,
            n_ubatch=settings.llm_batch_tokens,
            flash_attn=settings.llm_flash_attention,
            kv_cache=settings.llm_kv_cache,
            repack={"auto": None, "on": True, "off": False}[settings.llm_repack],
            max_tokens=settings.answer_max_tokens,
            temperature=settings.temperature,
            chat_template=preset.chat_template if preset else True,
        )
    if provider == "openai":
        from langchain_openai import ChatOpenAI

        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
        if key is None and settings.llm_base_url is None:
            raise ModelUnavailable("openai: set OPENAI_API_KEY, or ARAG_LLM_BASE_URL for a local server")
        return ChatOpenAI(
            model=name,
            base_url=settings.llm_base_url,
            api_key=key or "not-needed",
            timeout=settings.llm_timeout_s,
            max_retries=settings.llm_max_retries,  # the client backs off exponentially between tries
            temperature=settings.temperature,
            max_tokens=settings.answer_max_tokens,
        )
    package = {"ollama": "langchain-ollama", "anthropic": "langchain-anthropic"}[provider]
    # Asked first: without it, LangChain falls back to an older integration that fails with an AttributeError.
    if importlib.util.find_spec(package.replace("-", "_")) is None:
        raise ModelUnavailable(f"{provider}: install {package} (`pip install {package}`)")
    try:
        from langchain.chat_models import init_chat_model
        kwargs = {"temperature": settings.temperature}
        if provider == "ollama" and settings.llm_base_url:
            kwargs["base_url"] = settings.llm_base_url
        if provider == "anthropic":
            if settings.anthropic_api_key is None:
                raise ModelUnavailable("anthropic: set ANTHROPIC_API_KEY")
            kwargs["api_key"] = settings.anthropic_api_key.get_secret_value()
        return init_chat_model(f"{provider}:{name}", **kwargs)
    except ImportError as exc:
        raise ModelUnavailable(f"{provider}: install {package} (`pip install {package}`)") from exc


__all__ = ["PRESETS", "ModelUnavailable", "local_model_file", "make_chat_model", "parse_provider"]
