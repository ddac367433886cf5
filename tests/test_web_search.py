"""Web search over real HTTP: the real TavilyClient against a local Tavily double."""

from __future__ import annotations

import hashlib
import socket
import time

import pytest
from tavily_double import TavilyDouble

from arag.retrieval.web import TavilyWebSearch, WebSearchError, WebSearchUnavailable
from arag.settings import Settings

KEY = "tvly-test-Zq8sEcReT-4b1f"


@pytest.fixture(autouse=True)
def _no_proxies(monkeypatch):
    """A proxy from the developer's environment would swallow requests to 127.0.0.1."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "TAVILY_HTTP_PROXY", "TAVILY_HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.fixture
def double():
    with TavilyDouble(api_key=KEY, slow_s=5.0) as server:
        yield server
    assert not server.running


def web_for(double: TavilyDouble, **kwargs) -> TavilyWebSearch:
    return TavilyWebSearch(kwargs.pop("api_key", KEY), base_url=double.url, **kwargs)


def failure(web: TavilyWebSearch, query: str = "lighthouses") -> WebSearchError:
    with pytest.raises(WebSearchError) as info:
        web.search(query)
    return info.value


def assert_readable(err: WebSearchError) -> None:
    """One line, the same as str(), and the key nowhere in it or in what it chains."""
    assert err.reason and "\n" not in err.reason and str(err) == err.reason
    chained = [err, err.__cause__, err.__context__]
    assert not any(KEY in str(e) or KEY in repr(e) for e in chained if e is not None)


def test_results_become_retriever_shaped_chunks(double):
    double.results = [
        {"title": "Fresnel lens", "url": "https://example.org/fresnel", "content": "Designed in 1822.", "score": 0.9},
        {"title": "Empty", "url": "https://example.org/empty", "content": "  ", "score": 0.8},
        {"title": "", "url": "https://example.org/untitled", "content": "Keepers wound the clockwork.", "score": "0.5"},
    ]
    chunks = web_for(double).search("who designed the Fresnel lens?")
    digest = hashlib.sha256(b"https://example.org/fresnel").hexdigest()
    assert chunks[0] == {
        "chunk_id": "web:" + digest[:16],
        "source": "https://example.org/fresnel",
        "title": "Fresnel lens",
        "heading": "",
        "text": "Designed in 1822.",
        "score": 0.9,
    }
    # The empty result is skipped; an untitled page is named by its URL.
    assert [(c["source"], c["title"], c["score"]) for c in chunks[1:]] == [
        ("https://example.org/untitled", "https://example.org/untitled", 0.5)
    ]
    assert all(isinstance(c["score"], float) for c in chunks)


def test_query_max_results_and_key_reach_the_server(double):
    chunks = web_for(double, max_results=2).search("  lighthouses of Scotland ")
    [received] = double.requests
    assert received.path == "/search"
    assert received.body["query"] == "lighthouses of Scotland"
    assert received.body["max_results"] == 2
    # The client sends the key as a bearer token, not in the body.
    assert received.headers["Authorization"] == f"Bearer {KEY}"
    assert KEY not in str(received.body)
    assert len(chunks) == 2


def test_at_most_max_results_even_if_the_server_sends_more(double):
    double.results = [
        {"title": f"t{i}", "url": f"https://example.org/{i % 4}", "content": f"text {i}", "score": 1 - i / 10}
        for i in range(8)
    ]
    double.ignore_max_results = True
    chunks = web_for(double, max_results=6).search("q")
    # Eight results, but only four distinct pages: a repeated URL would repeat a chunk id.
    assert [c["source"] for c in chunks] == [f"https://example.org/{i}" for i in range(4)]
    assert len(web_for(double, max_results=3).search("q")) == 3


def test_from_settings(double, monkeypatch):
    monkeypatch.setenv("TAVILY_API_KEY", KEY)
    settings = Settings(web_search_url=double.url, web_search_timeout_s=2.0, web_results=1)
    web = TavilyWebSearch.from_settings(settings)
    assert web.available and web.timeout_s == 2.0
    [chunk] = web.search("lighthouses")
    assert chunk["source"] == "https://example.org/fresnel"
    assert double.requests[0].body["max_results"] == 1
    assert KEY not in repr(web)


@pytest.mark.parametrize(
    "mode, expected",
    [
        ("401", ["rejected the API key", "HTTP 401"]),
        ("403", ["refused", "HTTP 403", "not allowed for your plan"]),
        ("429", ["rate-limited", "HTTP 429", "try again later"]),
        ("500", ["server error", "HTTP 500"]),
        ("malformed", ["malformed JSON"]),
    ],
)
def test_server_failures_are_one_line_reasons(double, mode, expected):
    double.mode = mode
    err = failure(web_for(double))
    assert type(err) is WebSearchError
    assert_readable(err)
    for words in expected:
        assert words in err.reason
    assert len(double.requests) == 1


def test_wrong_key_is_rejected_by_the_server(double):
    err = failure(web_for(double, api_key="tvly-wrong-key"))
    assert err.reason == "web search rejected the API key (HTTP 401)"
    assert "tvly-wrong-key" not in err.reason


def test_wrong_path_names_the_url(double):
    web = TavilyWebSearch(KEY, base_url=double.url + "/v9/")
    err = failure(web)
    assert_readable(err)
    assert "HTTP 404" in err.reason and double.url + "/v9" in err.reason


def test_timeout(double):
    double.mode = "slow"
    started = time.monotonic()
    err = failure(web_for(double, timeout_s=0.5))
    assert time.monotonic() - started < 3
    assert_readable(err)
    assert err.reason == "web search timed out after 0.5 s"


def test_connection_refused():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    err = failure(TavilyWebSearch(KEY, base_url=url, timeout_s=2))
    assert_readable(err)
    assert err.reason == f"web search unreachable at {url} (connection refused)"


@pytest.mark.parametrize("key", [None, "", "   "])
def test_no_key_sends_nothing(double, monkeypatch, key):
    # The client would read this itself if handed no key; the component must not.
    monkeypatch.setenv("TAVILY_API_KEY", KEY)
    web = TavilyWebSearch(key, base_url=double.url)
    assert not web.available
    with pytest.raises(WebSearchUnavailable) as info:
        web.search("lighthouses")
    assert info.value.reason == "no Tavily API key configured (set TAVILY_API_KEY)"
    assert double.requests == []


def test_no_key_in_settings_is_unavailable(double):
    web = TavilyWebSearch.from_settings(Settings(web_search_url=double.url))
    assert not web.available
    with pytest.raises(WebSearchUnavailable):
        web.search("lighthouses")
    assert double.requests == []


def test_bad_arguments():
    with pytest.raises(ValueError):
        TavilyWebSearch(KEY, timeout_s=0)
    with pytest.raises(ValueError):
        TavilyWebSearch(KEY, max_results=0)
    with pytest.raises(ValueError):
        TavilyWebSearch(KEY, base_url="127.0.0.1:8080")
    with pytest.raises(WebSearchError, match="non-empty query"):
        TavilyWebSearch(KEY).search("  ")


def test_double_stops_even_during_a_slow_answer():
    with TavilyDouble(slow_s=30) as double:
        double.mode = "slow"
        url = double.url
        # The client gives up at once; the double's handler is still sleeping when it stops.
        failure(TavilyWebSearch(KEY, base_url=url, timeout_s=0.2))
        started = time.monotonic()
    assert time.monotonic() - started < 3
    assert not double.running
    port = int(url.rsplit(":", 1)[1])
    with socket.socket() as sock, pytest.raises(ConnectionRefusedError):
        sock.connect(("127.0.0.1", port))
