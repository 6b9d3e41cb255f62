"""``awfdrs api``: the edge under uvicorn, on a socket bound before serving (so port 0 works
and the URL printed is the real one)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

import uvicorn

from awfdrs.api.app import create_app
from awfdrs.config import Settings

log = logging.getLogger("awfdrs.api")


def bind(host: str, port: int, *, any_port: bool = False) -> socket.socket:
    """A listening socket; with ``any_port``, a free port when ``port`` is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        if not any_port or error.errno != errno.EADDRINUSE:
            sock.close()
            raise
        log.warning("port %d is taken: the API listens on a free port", port)
        sock.bind((host, 0))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


class _Embedded(uvicorn.Server):
    """A server inside another program's event loop (``awfdrs up``): that program owns the
    signals, and stops the server by setting ``should_exit``."""

    def capture_signals(self) -> contextlib.AbstractContextManager[None]:  # type: ignore[override]
        return contextlib.nullcontext()


def server(
    settings: Settings, *, loop: Literal["none", "auto", "uvloop"] = "auto", embedded: bool = False
) -> uvicorn.Server:
    config = uvicorn.Config(
        create_app(settings),
        loop=loop,
        # httptools parses HTTP/1.1 in C: about a third less CPU per request than h11 here.
        http="httptools",
        lifespan="on",
        access_log=False,
        log_config=None,
        timeout_keep_alive=30,
        # Our own InFlightLimit answers 503 with a body and Retry-After; uvicorn's own limit
        # is left off so it does not pre-empt it with a bare 503.
        limit_concurrency=None,
        server_header=False,
    )
    return _Embedded(config) if embedded else uvicorn.Server(config)


@asynccontextmanager
async def serving(
    settings: Settings, host: str, port: int, *, any_port: bool = False
) -> AsyncIterator[str]:
    """Serve in this event loop until the context ends; yields the URL."""
    sock = bind(host, port, any_port=any_port)
    api = server(settings, loop="none", embedded=True)
    task = asyncio.create_task(api.serve(sockets=[sock]))
    while not api.started:
        if task.done():
            task.result()
            raise RuntimeError("the API stopped while starting")
        await asyncio.sleep(0.05)
    url = url_of(sock)
    log.info("api listening on %s", url)
    try:
        yield url
    finally:
        api.should_exit = True
        await task
        sock.close()


def run_api(settings: Settings, host: str, port: int) -> None:
    """Serve until SIGINT / SIGTERM (uvicorn handles them: in-flight requests finish)."""
    sock = bind(host, port)
    api = server(settings, loop="uvloop")
    url = url_of(sock)
    # Logged once the socket listens: connections made from now on wait in its backlog until
    # the application has started, so a caller that read this line may connect at once.
    log.info("api listening on %s (OpenAPI at %s/openapi.json)", url, url)
    api.run(sockets=[sock])
