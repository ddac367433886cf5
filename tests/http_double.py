"""The common part of the local HTTP test doubles: a server on 127.0.0.1 that records requests.

A :class:`HTTPDouble` listens on a free loopback port from a thread, records every request
it receives, and hands each POST to its subclass's :meth:`HTTPDouble.answer`. ``mode`` picks
a normal answer or one of the failures the app has to survive; ``slow`` waits ``slow_s``
seconds (or until the double stops) before answering. Used as a context manager it is
started on entry and always stopped on exit, in-flight requests included.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class ReceivedRequest:
    """One request as the double saw it: ``body`` is the decoded JSON, or the raw text."""

    method: str
    path: str
    headers: dict[str, str]
    body: object


class Reply:
    """What a double answers: a status, a content type and bytes; ``chunks`` are streamed one by one."""

    def __init__(self, status: int, payload: object = None, content_type: str = "application/json",
                 raw: bytes | None = None, chunks: list[bytes] | None = None):
        self.status = status
        self.content_type = content_type
        self.data = raw if raw is not None else json.dumps(payload).encode("utf-8")
        self.chunks = chunks


class _Server(ThreadingHTTPServer):
    # Handler threads are joined by server_close(), so no request outlives the double.
    daemon_threads = False
    block_on_close = True

    def __init__(self, double: HTTPDouble):
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
        request = ReceivedRequest("POST", self.path, dict(self.headers.items()), body)
        double._record(request)
        if double.mode == "slow":
            double._stopping.wait(double.slow_s)
        self._send(double.answer(request))

    def _send(self, reply: Reply) -> None:
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            if reply.chunks is None:
                self.send_header("Content-Length", str(len(reply.data)))
                self.end_headers()
                self.wfile.write(reply.data)
                return
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            for chunk in reply.chunks:
                self.wfile.write(chunk)
                self.wfile.flush()
            self.close_connection = True
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test); there is nobody left to answer


class HTTPDouble:
    """Base of the doubles: lifecycle, request log and mode; subclasses implement :meth:`answer`."""

    #: Modes a subclass accepts; "normal" and "slow" are handled here.
    MODES: tuple[str, ...] = ("normal", "slow")
    name = "http-double"

    def __init__(self, slow_s: float = 5.0):
        self.slow_s = slow_s
        self.mode = "normal"
        self.requests: list[ReceivedRequest] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def answer(self, request: ReceivedRequest) -> Reply:
        raise NotImplementedError

    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        if value not in self.MODES:
            raise ValueError(f"unknown mode {value!r}; one of {', '.join(self.MODES)}")
        self._mode = value

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the double is not running")
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self):
        if self._server is not None:
            raise RuntimeError("the double is already running")
        self._stopping.clear()
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name=self.name, daemon=True
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

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
