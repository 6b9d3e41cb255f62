"""Small local HTTP servers: a flaky vendor and an escalation receiver.

The demo plays against them and the tests use them as the real peers of awfdrs's executors.
Both keep a request log, the evidence the tests check ("the vendor received exactly ...").
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    at: float
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    status: int
    replayed: bool = False
    # When the request arrived, and until when its client was still connected: the interval
    # in which it was in flight, as the vendor saw it.
    arrived: float = 0.0
    connected_until: float = 0.0

    @property
    def idempotency_key(self) -> str | None:
        return self.headers.get("idempotency-key")


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        return  # a client that hung up on a slow answer is part of what the tests do


class LocalServer(ABC):
    """A threaded HTTP server on 127.0.0.1 and an ephemeral port."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        self._local = threading.local()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body: Any = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode(errors="replace")
                headers = {k.lower(): v for k, v in self.headers.items()}
                outer._local.connection = self.connection
                status, payload, extra = outer._respond(self.command, self.path, headers, body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for name, value in extra.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

            def log_message(self, format: str, *args: object) -> None:
                return  # keep test and demo output clean

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> LocalServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _log(self, received: Received) -> None:
        with self._lock:
            self.requests.append(received)

    def _wait_watching_client(self, seconds: float) -> float:
        """Sleep ``seconds`` (a slow vendor), noticing when the client hangs up; the time the
        client was last known connected."""
        connection = getattr(self._local, "connection", None)
        deadline = time.time() + seconds
        while time.time() < deadline:
            if connection is not None:
                readable, _, _ = select.select([connection], [], [], 0.02)
                if readable:
                    try:
                        gone = connection.recv(1, socket.MSG_PEEK) == b""
                    except OSError:
                        gone = True
                    if gone:
                        return time.time()
            else:
                time.sleep(0.02)
        return time.time()

    @abstractmethod
    def _respond(
        self, method: str, path: str, headers: dict[str, str], body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        """(status, JSON body, extra headers) for one request; log it with :meth:`_log`."""


@dataclass
class Script:
    """What the vendor answers: ``statuses`` in turn, then ``default``; with ``per_key``, each
    idempotency key first gets those statuses in turn (a vendor flaky per request)."""

    statuses: list[int] = field(default_factory=list)
    per_key: list[int] = field(default_factory=list)
    default: int = 200
    retry_after: float | None = None
    latency: float = 0.0


class FlakyVendor(LocalServer):
    """A vendor that fails as scripted and honours ``Idempotency-Key`` like Stripe does.

    The first answer to a key that is not a 5xx is stored and replayed for every later request
    with that key; only non-replayed successes count as executions.
    """

    def __init__(self, script: Script | None = None) -> None:
        super().__init__()
        self.script = script or Script()
        self.arrivals = 0  # requests received, counted before any scripted latency
        self._stored: dict[str, tuple[int, Any]] = {}
        self._seen: Counter[str] = Counter()

    def _respond(
        self, method: str, path: str, headers: dict[str, str], body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        key = headers.get("idempotency-key")
        arrived = time.time()
        with self._lock:
            self.arrivals += 1
            stored = self._stored.get(key) if key else None
            if stored is None:
                seen = self._seen[key or ""]
                self._seen[key or ""] += 1
                if seen < len(self.script.per_key):
                    status = self.script.per_key[seen]
                else:
                    status = (
                        self.script.statuses.pop(0) if self.script.statuses else self.script.default
                    )
        connected = arrived
        if self.script.latency:
            connected = self._wait_watching_client(self.script.latency)
        extra: dict[str, str] = {}
        if stored is not None:
            self._log(
                Received(
                    time.time(), method, path, headers, body, stored[0], True, arrived, connected
                )
            )
            return stored[0], stored[1], {"idempotent-replayed": "true"}
        payload = {"ok": 200 <= status < 300, "path": path, "status": status}
        if status < 500 and status != 429 and key:
            with self._lock:
                self._stored[key] = (status, payload)
        if status == 429 and self.script.retry_after is not None:
            extra["retry-after"] = f"{self.script.retry_after:g}"
        received = Received(
            time.time(), method, path, headers, body, status, False, arrived, connected
        )
        self._log(received)
        return status, payload, extra

    def overlapping(self) -> list[tuple[Received, Received]]:
        """Pairs of requests with the same idempotency key that were in flight at once."""
        with self._lock:
            requests = sorted(self.requests, key=lambda r: r.arrived)
        pairs = []
        for i, first in enumerate(requests):
            for second in requests[i + 1 :]:
                same = first.idempotency_key == second.idempotency_key
                if same and second.arrived < first.connected_until:
                    pairs.append((first, second))
        return pairs

    def executions(self) -> Counter[str]:
        """Successful, non-replayed calls per idempotency key."""
        with self._lock:
            return Counter(
                r.idempotency_key or ""
                for r in self.requests
                if 200 <= r.status < 300 and not r.replayed
            )


class EscalationReceiver(LocalServer):
    """Accepts PagerDuty-shaped events; fails the first ``fail_first`` with 500 when asked."""

    def __init__(self, fail_first: int = 0) -> None:
        super().__init__()
        self.fail_first = fail_first

    def _respond(
        self, method: str, path: str, headers: dict[str, str], body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        with self._lock:
            failing = self.fail_first > 0
            if failing:
                self.fail_first -= 1
        status = 500 if failing else 202
        self._log(Received(time.time(), method, path, headers, body, status))
        return status, {"status": "success" if status == 202 else "error"}, {}

    def events(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r.body for r in self.requests if r.status == 202 and isinstance(r.body, dict)]
