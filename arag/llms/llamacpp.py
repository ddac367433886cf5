"""A LangChain chat model over llama-cpp-python, with token usage and JSON-schema output.

One ``Llama`` instance is shared per (file, context, threads) because loading costs seconds
and hundreds of MB; calls into it are serialised by a lock since llama.cpp contexts are not
thread-safe. Prompts that share a prefix with the previous call reuse llama.cpp's KV cache.

``llama_cpp`` itself is imported inside the functions that load or drive a model: importing it
loads the llama.cpp shared library, which a run on a hosted model never needs.

A call llama.cpp refuses or fails (a prompt longer than the context, a failed decode; it raises
``ValueError`` or ``RuntimeError``) becomes :class:`LlamaCallError`, so that callers can tell it
from a bug in this module.
"""

from __future__ import annotations

import atexit
import ctypes
import functools
import importlib.util
import json
import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.chat_models import generate_from_stream
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult

from arag.environment import apply_offline_environment
from arag.llms.gguf import ModelUnavailable


class LlamaCallError(RuntimeError):
    """llama.cpp refused or failed one call on a loaded model (context overflow, decode failure)."""


@contextmanager
def _llama_call(path: str):
    """Around calls into llama.cpp: its ValueError and RuntimeError become :class:`LlamaCallError`."""
    try:
        yield
    except (ValueError, RuntimeError) as exc:
        if isinstance(exc, ModelUnavailable):
            raise
        raise LlamaCallError(f"llama.cpp failed on {Path(path).name}: {exc}") from exc


_loaded: dict[tuple, tuple[Any, threading.Lock]] = {}
_loading = threading.Lock()


@atexit.register
def _close_all() -> None:
    # Closed explicitly: left to interpreter shutdown, llama.cpp's finalisers fail noisily.
    with _loading:
        for llama, lock in _loaded.values():
            with lock:  # a warm-up thread may still be evaluating: closing under it would crash the process
                llama.close()
        _loaded.clear()


#: KV cache element types by name (llama.cpp's ``--cache-type-k/-v``).
KV_CACHE_TYPES = ("f16", "q8_0")


@contextmanager
def _output_left_alone():
    """Load without llama-cpp-python's muting of the process's stdout and stderr.

    To keep llama.cpp quiet while a model loads it points file descriptors 1 and 2 at /dev/null,
    for the whole process: a model loading in a background thread (``warm_up``) would swallow
    whatever the rest of the program prints meanwhile (progress lines, a whole answer). So the
    muting is switched off, and llama.cpp's log lines during the load go to the Python logger
    ``arag.llamacpp`` at debug level instead of the terminal.
    """
    import llama_cpp
    import llama_cpp._internals
    import llama_cpp._logger
    import llama_cpp.llama

    @contextmanager
    def unmuted(disable: bool = False):
        yield

    modules = (llama_cpp.llama, llama_cpp._internals)
    saved = [module.suppress_stdout_stderr for module in modules]
    for module in modules:
        module.suppress_stdout_stderr = unmuted
    llama_cpp.llama_log_set(_log_callback(), ctypes.c_void_p(0))
    try:
        yield
    finally:
        for module, original in zip(modules, saved):
            module.suppress_stdout_stderr = original
        llama_cpp.llama_log_set(llama_cpp._logger.llama_log_callback, ctypes.c_void_p(0))


_logger = logging.getLogger("arag.llamacpp")


def _log_line(level: int, text: bytes, user_data) -> None:
    _logger.debug(text.decode("utf-8", "replace").rstrip())


@functools.cache
def _log_callback():
    """llama.cpp's log callback writing to ``_logger`` (made once: llama.cpp keeps the pointer)."""
    import llama_cpp

    return llama_cpp.llama_log_callback(_log_line)


#: llama.cpp build features that decide its CPU speed (a CPU can have AMX that the build leaves out).
LLAMA_CPP_KERNELS = ("AVX2", "AVX512", "AVX512_VNNI", "AMX_INT8")


@functools.cache
def llama_cpp_kernels() -> tuple[str, ...] | None:
    """Which of ``LLAMA_CPP_KERNELS`` the installed llama.cpp was compiled with; None without llama-cpp-python.

    Read once a process (the build does not change under it): every load of a model asks it.
    """
    if importlib.util.find_spec("llama_cpp") is None:
        return None
    apply_offline_environment()  # before llama.cpp's library loads: OpenMP reads its wait policy then
    import llama_cpp

    built = {part.split("=")[0].strip() for part in llama_cpp.llama_print_system_info().decode().split("|")
             if part.strip().endswith("= 1")}
    return tuple(name for name in LLAMA_CPP_KERNELS if name in built)


def repack_pays_here(kernels: Sequence[str] | None = None) -> bool:
    """Whether llama.cpp should repack a model's weights when it loads, given the ``kernels`` it was
    compiled with (the installed build's by default): not where it has AVX-512 ones, unless it has AMX.

    Repacking copies the 4-bit weights into an interleaved layout for llama.cpp's AVX2 matrix kernels.
    On a 2-core Intel Xeon with AVX-512 the weights as stored read prompts 1.2-1.4 times faster, in
    llama.cpp's own benchmark as in the app, and load in half the time without the copy (README,
    Performance); elsewhere llama.cpp's default, repacking, stands. A build with AMX kernels keeps it:
    they read the weights only from the same extra buffers, so switching those off would switch AMX off.
    """
    built = (llama_cpp_kernels() or ()) if kernels is None else kernels
    return "AVX512" not in built or "AMX_INT8" in built


@contextmanager
def _weights_repacked(repack: bool):
    """Load a model with llama.cpp's weight repacking on or off.

    ``Llama`` takes no argument for it: it starts from ``llama_model_default_params()``, so for the
    load that function hands out parameters with ``use_extra_bufts`` (llama.cpp's name for it) set.
    Called under ``_loading``, so no other load sees the changed defaults.
    """
    import llama_cpp.llama

    bindings = llama_cpp.llama.llama_cpp
    defaults = bindings.llama_model_default_params

    def with_repack():
        params = defaults()
        params.use_extra_bufts = repack
        return params

    bindings.llama_model_default_params = with_repack
    try:
        yield
    finally:
        bindings.llama_model_default_params = defaults


def _load_llama(path: str, n_ctx: int, n_threads: int, n_batch: int = 512, n_ubatch: int = 512,
                flash_attn: bool = False, kv_cache: str = "f16", repack: bool | None = None) -> tuple[Any, threading.Lock]:
    """The process's one ``Llama`` for these parameters, loaded at the first call; ``repack`` None: as
    :func:`repack_pays_here` decides.
    """
    if repack is None:
        repack = repack_pays_here()
    key = (path, n_ctx, n_threads, n_batch, n_ubatch, flash_attn, kv_cache, repack)
    with _loading:
        if key not in _loaded:
            # OpenMP reads its wait policy when llama.cpp's library loads, i.e. at this import.
            apply_offline_environment()
            try:
                from llama_cpp import Llama
            except ImportError as exc:
                raise ModelUnavailable(
                    "llama-cpp-python is not installed; run `make install`"
                ) from exc
            try:
                import llama_cpp

                kv_type = {"f16": llama_cpp.GGML_TYPE_F16, "q8_0": llama_cpp.GGML_TYPE_Q8_0}[kv_cache]
                with _output_left_alone(), _weights_repacked(repack):
                    llama = Llama(model_path=path, n_ctx=n_ctx, n_threads=n_threads, n_batch=n_batch,
                                  n_ubatch=min(n_ubatch, n_batch), flash_attn=flash_attn, type_k=kv_type,
                                  type_v=kv_type, verbose=False)
            except (ValueError, RuntimeError, OSError) as exc:
                raise ModelUnavailable(f"cannot load model {path}: {exc}") from exc
            _loaded[key] = (llama, threading.Lock())
        return _loaded[key]


def forget_prompt_caches() -> None:
    """Make every loaded model evaluate its next prompt from the first token.

    llama.cpp keeps the previous prompt's KV cache and evaluates only what a new prompt adds to
    it; a benchmark that sends two configurations the same prompt in a row must clear it, or the
    second is timed at a fraction of its real cost.
    """
    with _loading:
        loaded = list(_loaded.values())
    for llama, lock in loaded:
        with lock:
            llama.reset()


def _evaluate_after_shared_prefix(llama: Any, tokens: list[int]) -> int:
    """Evaluate ``tokens``, reusing the KV cache of the beginning they share with what the model last read.

    Returns how many were shared.
    """
    shared = 0
    # A sliding-window cache (Gemma 3) cannot drop its tail exactly, so such models evaluate afresh.
    sliding = any(key.endswith("attention.sliding_window") for key in llama.metadata)
    while not sliding and shared < min(len(tokens) - 1, llama.n_tokens) and llama.input_ids[shared] == tokens[shared]:
        shared += 1
    llama.n_tokens = shared
    llama.eval(tokens[shared:])
    return shared


def _role(message: BaseMessage) -> str:
    return {"human": "user", "ai": "assistant", "system": "system"}.get(message.type, "user")


def render_plain_prompt(messages: list[BaseMessage], reply_follows: bool = True) -> str:
    """Lay out a conversation for a model with no chat template (base models).

    It ends with the cue for the answer unless ``reply_follows`` is false (the beginning of a prompt
    still to come).
    """
    parts = []
    for m in messages:
        text = m.content if isinstance(m.content, str) else str(m.content)
        parts.append(text if _role(m) != "assistant" else f"Answer: {text}")
    return "\n\n".join(parts) + ("\n\nAnswer:" if reply_follows else "")


#: A source's number in square brackets, after the " [" written for the model.
_CITATION_GRAMMAR = 'root ::= [1-9] [0-9]? "]"'


def _citation_after(llama: Any) -> list[str]:
    """The pieces of " [n]" that the model writes after what its context holds: the bracket is
    given, the number is the model's own (constrained to digits), read from the cached context.
    """
    from llama_cpp import LlamaGrammar

    opening = " ["
    tokens = llama.input_ids[: llama.n_tokens].tolist() + llama.tokenize(opening.encode(), add_bos=False, special=False)
    out = llama.create_completion(tokens, max_tokens=4, temperature=0.0,
                                  grammar=LlamaGrammar.from_string(_CITATION_GRAMMAR, verbose=False))
    number = out["choices"][0]["text"]
    return [opening, number] if number.endswith("]") else []


class LlamaCppChat(BaseChatModel):
    """Chat model backed by a local GGUF file.

    Extra call options: ``max_tokens``, ``json_schema`` (a dict: output is constrained to JSON
    matching it), ``end_before`` (a function of the reply so far and the next piece of text:
    generation stops, without that piece, where it returns True) and ``cite_ended`` (a function of
    a reply ``end_before`` ended: where it returns True, the reply closes with a citation the model
    writes from the same context, " [n]"). Each result carries ``usage_metadata`` with prompt and
    output tokens.
    """

    model_path: str
    n_ctx: int = 4096
    n_threads: int = 2
    #: Prompt tokens llama.cpp evaluates per step (logical and physical batch).
    n_batch: int = 512
    n_ubatch: int = 512
    flash_attn: bool = False
    kv_cache: str = "f16"
    #: llama.cpp's repacking of the weights at load; None: as :func:`repack_pays_here` decides.
    repack: bool | None = None
    max_tokens: int = 256
    temperature: float = 0.0
    chat_template: bool = True

    @property
    def _llm_type(self) -> str:
        return "llamacpp"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_path": self.model_path, "n_ctx": self.n_ctx}

    def _llama(self) -> tuple[Any, threading.Lock]:
        return _load_llama(self.model_path, self.n_ctx, self.n_threads, self.n_batch, self.n_ubatch,
                           self.flash_attn, self.kv_cache, self.repack)

    def _request(self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict) -> dict:
        request: dict[str, Any] = {
            "max_tokens": int(kwargs.get("max_tokens") or self.max_tokens),
            "temperature": self.temperature,
            "stop": list(stop or []),
        }
        schema = kwargs.get("json_schema")
        if self.chat_template:
            request["messages"] = [
                {"role": _role(m), "content": m.content if isinstance(m.content, str) else str(m.content)}
                for m in messages
            ]
            if schema is not None:
                request["response_format"] = {"type": "json_object", "schema": schema}
        else:
            request["prompt"] = render_plain_prompt(messages)
            if schema is not None:
                from llama_cpp import LlamaGrammar

                request["grammar"] = LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)
            else:
                request["stop"] += ["\n\n", "\nQuestion:"]
        return request

    def _prompt_tokens(self, llama: Any, messages: list[BaseMessage], reply_follows: bool) -> list[int]:
        """``messages`` as the model reads them: through its chat template, else laid out plainly.

        ``reply_follows`` opens the assistant's turn after them (a prompt), else they end where the
        messages do (the prefix of a prompt still to come).
        """
        if not self.chat_template:
            text = render_plain_prompt(messages, reply_follows) + (" " if reply_follows else "")
            return llama.tokenize(text.encode(), add_bos=True, special=False)
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        template = llama.metadata.get("tokenizer.chat_template")
        if not template:
            raise ModelUnavailable(f"{self.model_path} has no chat template")
        roles = [{"role": _role(m), "content": str(m.content)} for m in messages]
        prompt = Jinja2ChatFormatter(template=template, eos_token="", bos_token="",
                                     add_generation_prompt=reply_follows)(messages=roles).prompt
        return llama.tokenize(prompt.encode(), add_bos=False, special=True)

    def warm_up(self, prefix: list[BaseMessage] | None = None) -> None:
        """Load the model now, and read ``prefix`` (the fixed first messages of a coming prompt) into its
        KV cache, so that the call that follows evaluates only what comes after them.

        Meant for a background thread while retrieval runs: the first call then finds the weights
        paged in and the prefix read. Not counted as an LLM call (no reply is generated).
        """
        llama, lock = self._llama()
        if not prefix:
            return
        with lock, _llama_call(self.model_path):
            if llama.n_tokens:
                # A call came first (it took the lock once the model loaded): the prefix is no longer ahead
                # of the call it was meant for, and reading it now would only replace that call's cache.
                return
            _evaluate_after_shared_prefix(llama, self._prompt_tokens(llama, prefix, reply_follows=False))

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` in this model's vocabulary (no generation; the model loads if it has not)."""
        llama, lock = self._llama()
        with lock:
            return len(llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def next_token_logits(self, messages: list[BaseMessage], words: list[str],
                          tokens_seen: list[tuple[int, int]] | None = None) -> list[float]:
        """The model's logit for the first token of each of ``words`` as the reply's first token.

        One forward pass, no sampling; the prompt's prefix shared with the previous call is not
        evaluated again (llama.cpp's KV cache), so scoring many passages for one question pays
        for the question once. ``tokens_seen`` receives (prompt tokens, tokens evaluated).
        """
        llama, lock = self._llama()
        with lock, _llama_call(self.model_path):
            tokens = self._prompt_tokens(llama, messages, reply_follows=True)
            shared = _evaluate_after_shared_prefix(llama, tokens)
            if tokens_seen is not None:
                tokens_seen.append((len(tokens), len(tokens) - shared))
            logits = np.ctypeslib.as_array(llama._ctx.get_logits(), shape=(llama.n_vocab(),))
            ids = [llama.tokenize(w.encode(), add_bos=False, special=False)[0] for w in words]
            return [float(logits[i]) for i in ids]

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if kwargs.get("end_before") is not None:  # decided piece by piece, as the stream does
            result = generate_from_stream(self._stream(messages, stop, run_manager, **kwargs))
            message = result.generations[0].message
            message.content = str(message.content).strip()  # as a reply in one piece is
            return result
        llama, lock = self._llama()
        request = self._request(messages, stop, kwargs)
        with lock, _llama_call(self.model_path):
            if self.chat_template:
                out = llama.create_chat_completion(**request)
                text = out["choices"][0]["message"]["content"] or ""
            else:
                out = llama.create_completion(**request)
                text = out["choices"][0]["text"]
        usage = out.get("usage") or {}
        message = AIMessage(
            content=text.strip(),
            usage_metadata={
                "input_tokens": usage.get("prompt_tokens", 0),
                "output_tokens": usage.get("completion_tokens", 0),
                "total_tokens": usage.get("total_tokens", 0),
            },
            response_metadata={"finish_reason": out["choices"][0].get("finish_reason")},
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        llama, lock = self._llama()
        request = self._request(messages, stop, kwargs)
        end_before, cite_ended = kwargs.get("end_before"), kwargs.get("cite_ended")
        produced = 0
        finish = None
        reply = ""
        ended = False

        def emitted(piece: str) -> ChatGenerationChunk:
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=piece))
            if run_manager:
                run_manager.on_llm_new_token(piece, chunk=chunk)
            return chunk

        with lock, _llama_call(self.model_path):
            if self.chat_template:
                stream = llama.create_chat_completion(stream=True, **request)
            else:
                stream = llama.create_completion(stream=True, **request)
            for part in stream:
                choice = part["choices"][0]
                finish = choice.get("finish_reason") or finish
                piece = choice["delta"].get("content") if self.chat_template else choice.get("text")
                if not piece:
                    continue
                if end_before is not None and end_before(reply, piece):
                    stream.close()  # the piece is dropped unread, so the cache holds the reply as kept
                    finish, ended = "stop", True
                    break
                produced += 1
                reply += piece
                yield emitted(piece)
            # Streams carry no usage; the context holds prompt + generated tokens afterwards.
            prompt_tokens = max(0, llama.n_tokens - produced)
            if ended and cite_ended is not None and cite_ended(reply):
                for piece in _citation_after(llama):
                    produced += 1
                    yield emitted(piece)
        yield ChatGenerationChunk(
            message=AIMessageChunk(
                content="",
                usage_metadata={
                    "input_tokens": prompt_tokens,
                    "output_tokens": produced,
                    "total_tokens": prompt_tokens + produced,
                },
                response_metadata={"finish_reason": finish},
            )
        )
