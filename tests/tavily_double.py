"""A local stand-in for the Tavily API, so web search is tested over real HTTP, offline.

:class:`TavilyDouble` serves ``POST /search`` on 127.0.0.1 (a free port) from a daemon
thread, answers with Tavily-shaped JSON, and records every request it receives. Its
``mode`` switches it between a normal answer and the failures web search has to report.
Used as a context manager it is started on entry and always stopped on exit, in-flight
requests included.

Example:
    >>> from arag.retrieval.web import TavilyWebSearch
    >>> with TavilyDouble(api_key="tvly-test") as double:
    ...     web = TavilyWebSearch("tvly-test", base_url=double.url)
    ...     chunks = web.search("lighthouses")
    ...     double.requests[0].body["query"]
    'lighthouses'
"""

from __future__ import annotations

from http_double import HTTPDouble, ReceivedRequest, Reply

MODES = ("normal", "401", "403", "429", "500", "slow", "malformed")

#: What the double answers when a test gives it no results of its own.
DEFAULT_RESULTS = [
    {
        "title": "Fresnel lens - history",
        "url": "https://example.org/fresnel",
        "content": "Augustin-Jean Fresnel designed the lens for lighthouses in 1822.",
        "score": 0.91,
    },
    {
        "title": "Lighthouse keepers",
        "url": "https://example.org/keepers",
        "content": "Keepers trimmed the wicks and wound the clockwork every night.",
        "score": 0.77,
    },
    {
        "title": "Skerryvore",
        "url": "https://example.org/skerryvore",
        "content": "Skerryvore lighthouse was completed in 1844.",
        "score": 0.52,
    },
]


class TavilyDouble(HTTPDouble):
    """Tavily's ``/search`` on a local port; see the module docstring.

    ``results`` are served, best first, up to the request's ``max_results``. With
    ``api_key`` set, requests whose ``Authorization`` header is not ``Bearer <api_key>``
    get a 401, as from Tavily. ``mode`` (one of :data:`MODES`) can be changed at any time;
    ``slow`` delays the answer by ``slow_s`` seconds, or until the double stops.
    ``ignore_max_results`` makes it send every result, like a misbehaving server.
    """

    MODES = MODES
    name = "tavily-double"

    def __init__(self, results: list[dict] | None = None, api_key: str | None = None, slow_s: float = 5.0):
        super().__init__(slow_s)
        self.results = list(DEFAULT_RESULTS if results is None else results)
        self.api_key = api_key
        self.ignore_max_results = False

    def answer(self, request: ReceivedRequest) -> Reply:
        if request.path != "/search":
            return Reply(404, {"detail": "Not Found"})
        mode, body = self.mode, request.body
        authorised = self.api_key is None or request.headers.get("Authorization") == f"Bearer {self.api_key}"
        if mode == "401" or not authorised:
            return Reply(401, {"detail": {"error": "Unauthorized: missing or invalid API key."}})
        if mode == "403":
            return Reply(403, {"detail": {"error": "This request is not allowed for your plan."}})
        if mode == "429":
            return Reply(429, {"detail": {"error": "Rate limit exceeded; please slow down."}})
        if mode == "500":
            return Reply(500, content_type="text/plain", raw=b"Internal Server Error")
        if mode == "malformed":
            return Reply(200, raw=b'{"query": "x", "results": [{"title": ')
        query = body.get("query", "") if isinstance(body, dict) else ""
        max_results = body.get("max_results", 5) if isinstance(body, dict) else 5
        if self.ignore_max_results:
            max_results = len(self.results)
        return Reply(200, {
            "query": query, "follow_up_questions": None, "answer": None, "images": [],
            "results": list(self.results)[:max_results], "response_time": 0.01, "request_id": "double-0001",
        })
