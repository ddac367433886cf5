"""A local stand-in for the Tavily API, so web search is tested over real HTTP, offline.

:class:`TavilyDouble` serves ``POST /search`` on 127.0.0.1 (a free port) from a daemon
thread, answers with Tavily-shaped JSON, and records every request it receives. Its
``mode`` switches it between a normal answer and the failures web search has to report.
Used as a context manager it is started on entry and always stopped on exit, in-flight
requests included.

Example:
    >>> with TavilyDouble(api_key="tvly-test") as double:  # doctest: +SKIP
    ...     web = TavilyWebSearch("tvly-test", base_url=double.url)
    ...     chunks = web.search("lighthouses")
    ...     double.requests[0].body["query"]
    'lighthouses'
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

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


@dataclass
class ReceivedRequest:
    """One request as the double saw it: ``body`` is the decoded JSON, or the raw text."""

    method: str
    path: str
    headers: dict[str, str]
    body: object


class _Server(ThreadingHTTPServer):
    # Handler threads are joined by server_close(), so no request outlives the double.
    daemon_threads = False
    block_on_close = True

    def __init__(self, double: TavilyDouble):
        self.double = double
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    # Bounds how long a handler waits for a client that connects and sends nothing.
    timeout = 5

    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass  # request logs would only clutter pytest's captured output

    def do_POST(self):
        double = self.server.double
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode("utf-8", "replace")
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw
        double._record(ReceivedRequest("POST", self.path, dict(self.headers.items()), body))

        if self.path != "/search":
            return self._send(404, {"detail": "Not Found"})
        mode = double.mode
        authorised = double.api_key is None or self.headers.get("Authorization") == f"Bearer {double.api_key}"
        if mode == "401" or not authorised:
            return self._send(401, {"detail": {"error": "Unauthorized: missing or invalid API key."}})
        if mode == "403":
            return self._send(403, {"detail": {"error": "This request is not allowed for your plan."}})
        if mode == "429":
            return self._send(429, {"detail": {"error": "Rate limit exceeded; please slow down."}})
        if mode == "500":
            return self._send_raw(500, "text/plain", b"Internal Server Error")
        if mode == "malformed":
            return self._send_raw(200, "application/json", b'{"query": "x", "results": [{"title": ')
        if mode == "slow":
            # Ends early when the double stops, so shutting down never waits out the delay.
            double._stopping.wait(double.slow_s)
        query = body.get("query", "") if isinstance(body, dict) else ""
        max_results = body.get("max_results", 5) if isinstance(body, dict) else 5
        if double.ignore_max_results:
            max_results = len(double.results)
        self._send(
            200,
            {
                "query": query,
                "follow_up_questions": None,
                "answer": None,
                "images": [],
                "results": list(double.results)[:max_results],
                "response_time": 0.01,
                "request_id": "double-0001",
            },
        )

    def _send(self, status: int, payload: object) -> None:
        self._send_raw(status, "application/json", json.dumps(payload).encode("utf-8"))

    def _send_raw(self, status: int, content_type: str, data: bytes) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test); there is nobody left to answer


class TavilyDouble:
    """Tavily's ``/search`` on a local port; see the module docstring.

    ``results`` are served, best first, up to the request's ``max_results``. With
    ``api_key`` set, requests whose ``Authorization`` header is not ``Bearer <api_key>``
    get a 401, as from Tavily. ``mode`` (one of :data:`MODES`) can be changed at any time;
    ``slow`` delays the answer by ``slow_s`` seconds, or until the double stops.
    ``ignore_max_results`` makes it send every result, like a misbehaving server.
    """

    def __init__(self, results: list[dict] | None = None, api_key: str | None = None, slow_s: float = 5.0):
        self.results = list(DEFAULT_RESULTS if results is None else results)
        self.api_key = api_key
        self.slow_s = slow_s
        self.mode = "normal"
        self.ignore_max_results = False
        self.requests: list[ReceivedRequest] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        if value not in MODES:
            raise ValueError(f"unknown mode {value!r}; one of {', '.join(MODES)}")
        self._mode = value

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the double is not running")
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        """The base URL to give the client (``api_base_url``)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> TavilyDouble:
        if self._server is not None:
            raise RuntimeError("the double is already running")
        self._stopping.clear()
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="tavily-double", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stops serving, wakes delayed answers, closes the socket and joins every thread."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()
        try:
            server.shutdown()
        finally:
            server.server_close()
            if thread is not None:
                thread.join(timeout=10)
            self._server = self._thread = None

    def _record(self, request: ReceivedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def __enter__(self) -> TavilyDouble:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
