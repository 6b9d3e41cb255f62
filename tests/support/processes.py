"""Workers as real processes, so tests can kill them the way production loses them."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from awfdrs.remediation.credentials import new_key
from tests.support.principals import SIGNING_KEY


class WorkerProcess:
    """``python -m awfdrs.worker`` with its log in a file."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self._env = {**os.environ, **env}
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def _spawn(self) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "awfdrs.worker"],
                env=self._env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    async def start(self, ready_within: float = 30.0) -> None:
        """Start and wait until it polls its task queue."""
        offset = self.log.stat().st_size if self.log.exists() else 0
        self.process = self._spawn()
        deadline = asyncio.get_running_loop().time() + ready_within
        while b"worker polling" not in self.log.read_bytes()[offset:]:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited with {self.process.returncode}: {self.tail()}")
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(f"worker not ready after {ready_within}s: {self.tail()}")
            await asyncio.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no goodbye, as when a machine dies."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> int:
        """SIGTERM, the graceful path; returns the exit code."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


# One credentials key for the test run: API and worker processes and in-process stacks share it,
# so a connection one of them encrypts is readable by the others, as in a deployment.
CREDENTIALS_KEY = new_key()


def worker_env(app_url: str, temporal_address: str, task_queue: str) -> dict[str, str]:
    return {
        "AWFDRS_DATABASE_URL": app_url,
        "AWFDRS_CREDENTIALS_KEYS": CREDENTIALS_KEY,
        "AWFDRS_TEMPORAL_ADDRESS": temporal_address,
        "AWFDRS_TASK_QUEUE": task_queue,
        "AWFDRS_LOG_LEVEL": "INFO",
        "AWFDRS_COMMAND_SIGNING_KEY": SIGNING_KEY,
    }


# Makes a (not yet started) worker process for a Temporal address; fixture ``workers``.
WorkerFactory = Callable[[str], WorkerProcess]


class ApiProcess:
    """``python -m awfdrs api`` with its log in a file; ``url`` once started. ``port`` 0 picks
    a free port at each start; a fixed one survives restarts (clients keep their URL)."""

    def __init__(self, env: dict[str, str], log: Path, port: int = 0) -> None:
        self._env = {**os.environ, **env}
        self.log = log
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def _spawn(self) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "awfdrs", "api", "--port", str(self.port)],
                env=self._env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    async def start(self, ready_within: float = 30.0) -> str:
        """Start and wait until it listens; returns its URL (the port is picked anew)."""
        offset = self.log.stat().st_size if self.log.exists() else 0
        self.process = self._spawn()
        deadline = asyncio.get_running_loop().time() + ready_within
        marker = b"api listening on "
        while True:
            text = self.log.read_bytes()[offset:]
            if marker in text:
                rest = text.split(marker, 1)[1]
                if b" " in rest or b"\n" in rest:
                    self.url = rest.split()[0].decode()
                    break
            if self.process.poll() is not None:
                raise RuntimeError(f"api exited with {self.process.returncode}: {self.tail()}")
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(f"api not ready after {ready_within}s: {self.tail()}")
            await asyncio.sleep(0.05)
        return self.url

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def api_env(app_url: str, temporal_address: str, task_queue: str, **more: str) -> dict[str, str]:
    return {
        **worker_env(app_url, temporal_address, task_queue),
        "AWFDRS_STACK_FILE": "/nonexistent/stack.json",
        "AWFDRS_LOG_FORMAT": "console",
        **more,
    }
