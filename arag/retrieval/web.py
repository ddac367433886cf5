"""Web search through the Tavily API, for when the indexed documents fall short.

:class:`TavilyWebSearch` sends one query to Tavily and returns the results shaped exactly
like the retriever's chunks (``chunk_id``, ``source``, ``title``, ``heading``, ``text``,
``score``), so the graph can cite a web page the way it cites a document. Web chunk ids
are ``"web:"`` plus a short sha256 of the URL: stable across searches and never equal to
an indexed chunk's id.

Everything that can go wrong (no key, a rejected key, rate limits, timeouts, an
unreachable or misbehaving server) is a :class:`WebSearchError` whose ``reason`` is one
readable line; the API key never appears in it. Without a key nothing is sent at all:
:class:`WebSearchUnavailable` is raised before any network traffic, so the offline
default costs nothing.

Example:
    >>> from arag.settings import Settings
    >>> web = TavilyWebSearch.from_settings(Settings(tavily_api_key=None))
    >>> web.available
    False
    >>> try:
    ...     web.search("who invented the Fresnel lens?")
    ... except WebSearchUnavailable as exc:
    ...     print(exc.reason)
    no Tavily API key configured (set TAVILY_API_KEY)

    With a key (``TAVILY_API_KEY`` or ``ARAG_TAVILY_API_KEY``)::

        web = TavilyWebSearch.from_settings(Settings())
        for chunk in web.search("who invented the Fresnel lens?"):
            print(chunk["score"], chunk["title"], chunk["source"])
"""

from __future__ import annotations

import hashlib
import socket
import ssl

import requests
from pydantic import SecretStr
from urllib3.exceptions import ProxyError, ReadTimeoutError

from arag.settings import Settings

#: Where the Tavily client sends requests when no base URL is configured.
DEFAULT_TAVILY_URL = "https://api.tavily.com"

# tavily-python clamps every request timeout to this many seconds.
_CLIENT_MAX_TIMEOUT_S = 120.0
_DETAIL_MAX_CHARS = 200


class WebSearchError(RuntimeError):
    """A web search that could not be done; ``reason`` (and ``str()``) is one readable line."""

    def __init__(self, reason: str):
        # Server details and exception texts may carry newlines; a reason is one line.
        self.reason = " ".join(str(reason).split())
        super().__init__(self.reason)


class WebSearchUnavailable(WebSearchError):
    """No API key is configured, so web search is off; nothing was sent."""

    def __init__(self, reason: str = "no Tavily API key configured (set TAVILY_API_KEY)"):
        super().__init__(reason)


def web_chunk_id(url: str) -> str:
    """The chunk id of a web result: stable for a URL, distinct from indexed chunk ids.

    Example:
        >>> web_chunk_id("https://example.org/lens")
        'web:f5b5b3ee3ea6f966'
    """
    return "web:" + hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]


class TavilyWebSearch:
    """Searches the web with Tavily and returns retriever-shaped chunks.

    ``api_key`` may be a plain string or a ``SecretStr``; ``None`` or blank means web
    search is unavailable. ``base_url`` points the client at another Tavily-compatible
    server (a proxy, a test double); ``None`` uses Tavily's own.

    Example, with a real Tavily key and the network (tests/tavily_double.py runs it offline)::

        web = TavilyWebSearch("tvly-…", timeout_s=5, max_results=3)
        [c["source"] for c in web.search("Fresnel lens inventor")]
        # ['https://en.wikipedia.org/wiki/Fresnel_lens', ...]
    """

    def __init__(
        self,
        api_key: str | SecretStr | None,
        base_url: str | None = None,
        timeout_s: float = 10.0,
        max_results: int = 4,
    ):
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        if not 1 <= max_results <= 20:
            # Tavily answers at most 20 results per query.
            raise ValueError(f"max_results must be between 1 and 20, got {max_results}")
        if base_url is not None and not base_url.startswith(("http://", "https://")):
            raise ValueError(f"web search URL must start with http:// or https://, got {base_url!r}")
        secret = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
        # Kept as a SecretStr so that repr() and tracebacks of this object never show it.
        self._api_key = SecretStr(secret.strip()) if secret and secret.strip() else None
        self.base_url = base_url.rstrip("/") if base_url else None
        self.timeout_s = float(timeout_s)
        self.max_results = int(max_results)

    @classmethod
    def from_settings(cls, settings: Settings) -> TavilyWebSearch:
        """The web search the settings describe (key, URL, timeout, number of results)."""
        return cls(
            settings.tavily_api_key,
            base_url=settings.web_search_url,
            timeout_s=settings.web_search_timeout_s,
            max_results=settings.web_results,
        )

    @property
    def available(self) -> bool:
        """Whether an API key is set, i.e. whether :meth:`search` can send anything."""
        return self._api_key is not None

    @property
    def url(self) -> str:
        """The base URL requests go to."""
        return self.base_url or DEFAULT_TAVILY_URL

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(url={self.url!r}, available={self.available}, "
            f"timeout_s={self.timeout_s:g}, max_results={self.max_results})"
        )

    def search(self, query: str) -> list[dict]:
        """At most ``max_results`` web results for ``query``, best first, as chunk dicts.

        Results without content or URL are skipped (there is nothing to quote or cite),
        and a URL that comes back twice is kept once, since its chunk id would repeat.

        Raises:
            WebSearchUnavailable: no API key is set (nothing is sent).
            WebSearchError: the query is empty, or the search failed; ``reason`` says why
                in one line.
        """
        if not query or not query.strip():
            # A WebSearchError, not a ValueError: the caller's fallback handles it like any failure.
            raise WebSearchError("web search needs a non-empty query")
        if self._api_key is None:
            # Checked here rather than left to the client: given no key, TavilyClient reads
            # TAVILY_API_KEY itself and otherwise sends a keyless request.
            raise WebSearchUnavailable()
        response = self._request(query.strip())
        return self._chunks(response)

    def _request(self, query: str) -> dict:
        # Imported here so that importing this module (and running offline) never needs it.
        import tavily
        from tavily import errors as tavily_errors

        key = self._api_key.get_secret_value()
        client_kwargs = {"api_base_url": self.base_url} if self.base_url else {}
        try:
            # A client per search: its requests.Session is not shared between threads, and a
            # fallback search is rare enough that connection reuse does not matter.
            with tavily.TavilyClient(api_key=key, **client_kwargs) as client:
                response = client.search(query, max_results=self.max_results, timeout=self.timeout_s)
        except tavily_errors.MissingAPIKeyError:
            raise WebSearchUnavailable() from None
        except tavily_errors.InvalidAPIKeyError:
            raise WebSearchError("web search rejected the API key (HTTP 401)") from None
        except tavily_errors.ForbiddenError as exc:
            # The client raises this for 403 and for Tavily's plan limits (432, 433).
            raise WebSearchError(
                "web search refused the request for this API key (HTTP 403, or a plan or usage limit)"
                + self._detail(exc, key)
            ) from None
        except tavily_errors.UsageLimitExceededError:
            raise WebSearchError("web search rate-limited (HTTP 429); try again later") from None
        except tavily_errors.BadRequestError as exc:
            raise WebSearchError("web search rejected the query (HTTP 400)" + self._detail(exc, key)) from None
        except tavily_errors.TimeoutError:
            raise WebSearchError(self._timed_out()) from None
        except requests.exceptions.HTTPError as exc:
            raise WebSearchError(self._http_failure(exc.response)) from None
        except requests.exceptions.JSONDecodeError:
            raise WebSearchError(f"web search at {self.url} returned malformed JSON") from None
        except requests.exceptions.ConnectionError as exc:
            raise WebSearchError(self._connection_failure(exc)) from None
        except requests.exceptions.RequestException as exc:
            raise WebSearchError(f"web search request to {self.url} failed ({type(exc).__name__})") from None
        except (AttributeError, TypeError):
            # How the client fails on a reply it does not expect: .setdefault() on JSON that is
            # not an object, or `raise None` for a non-200 status that is not an HTTP error.
            raise WebSearchError(f"web search at {self.url} returned an unexpected response") from None
        # `from None` throughout: the client's exceptions add nothing a user can act on, and
        # dropping them keeps every trace of the request (headers included) out of tracebacks.
        return response

    def _chunks(self, response: dict) -> list[dict]:
        results = response.get("results")
        if not isinstance(results, list):
            raise WebSearchError(f"web search at {self.url} returned an unexpected response (no result list)")
        chunks: list[dict] = []
        seen: set[str] = set()
        for result in results:
            if not isinstance(result, dict):
                continue
            url = str(result.get("url") or "").strip()
            content = str(result.get("content") or "").strip()
            if not url or not content or url in seen:
                continue
            seen.add(url)
            chunks.append(
                {
                    "chunk_id": web_chunk_id(url),
                    "source": url,
                    # Citations print the title; a page without one is named by its URL.
                    "title": str(result.get("title") or "").strip() or url,
                    "heading": "",
                    "text": content,
                    "score": _as_score(result.get("score")),
                }
            )
            if len(chunks) == self.max_results:
                break
        return chunks

    def _timed_out(self) -> str:
        seconds = min(self.timeout_s, _CLIENT_MAX_TIMEOUT_S)
        return f"web search timed out after {seconds:g} s"

    def _http_failure(self, response: requests.Response | None) -> str:
        if response is None:
            return f"web search at {self.url} failed with an HTTP error"
        status = f"HTTP {response.status_code}" + (f" {response.reason}" if response.reason else "")
        if response.status_code == 404:
            return f"web search endpoint not found at {self.url} ({status}); check the web search URL"
        if response.status_code >= 500:
            return f"web search server error at {self.url} ({status}); try again later"
        return f"web search failed at {self.url} ({status})"

    def _connection_failure(self, exc: BaseException) -> str:
        problem = _connection_problem(exc)
        if problem == "timeout":
            # The read timeout can also fire while the body is streamed, where requests
            # reports it as a connection error.
            return self._timed_out()
        return f"web search unreachable at {self.url} ({problem})"

    @staticmethod
    def _detail(exc: BaseException, key: str) -> str:
        """The server's own explanation, as a short suffix with the key blanked out."""
        text = " ".join(str(exc).split()).replace(key, "***")
        if not text:
            return ""
        if len(text) > _DETAIL_MAX_CHARS:
            text = text[: _DETAIL_MAX_CHARS - 1] + "…"
        return f": {text}"


def unavailable_reason(settings: Settings) -> str | None:
    """Why these settings allow no web search (fallback off, no key), or None when they do."""
    if not settings.web_fallback:
        return "web fallback is off in settings"
    if not TavilyWebSearch.from_settings(settings).available:
        return WebSearchUnavailable().reason
    return None


def _as_score(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0


def _connection_problem(exc: BaseException) -> str:
    """Names why a connection failed, from the chain of errors requests and urllib3 wrap."""
    pending: list[object] = [exc]
    seen: set[int] = set()
    while pending:
        err = pending.pop(0)
        if not isinstance(err, BaseException) or id(err) in seen:
            continue
        seen.add(id(err))
        if isinstance(err, ConnectionRefusedError):
            return "connection refused"
        if isinstance(err, socket.gaierror):
            return "host name not resolved"
        if isinstance(err, (ReadTimeoutError, socket.timeout)):
            return "timeout"
        if isinstance(err, (ssl.SSLError, requests.exceptions.SSLError)):
            return "TLS handshake failed"
        if isinstance(err, (ProxyError, requests.exceptions.ProxyError)):
            return "proxy connection failed"
        if isinstance(err, ConnectionResetError):
            return "connection reset"
        # urllib3 wraps the socket error in `reason`, requests wraps urllib3's in `args`.
        pending.extend([getattr(err, "reason", None), err.__cause__, err.__context__, *err.args])
    return "connection failed"
