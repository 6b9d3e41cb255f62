"""One ``awfdrs up`` per data directory: an exclusive ``flock`` on ``<data dir>/up.lock``.

The lock is the kernel's: it goes with the process, so a stack that crashed leaves no lock
behind, only a file. The file holds the owner's PID, which a second ``awfdrs up`` names when
it refuses to start.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from awfdrs.errors import ConfigError

LOCK_FILE = "up.lock"


def _owner(path: Path) -> str:
    try:
        return path.read_text().strip() or "unknown"
    except OSError:
        return "unknown"


@contextmanager
def stack_lock(data_dir: Path) -> Iterator[None]:
    """Hold the data directory's lock until the block ends; :class:`ConfigError` naming the
    holder's PID when another process holds it (nothing is started then)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(
                f"awfdrs up is already running in this folder (pid {_owner(path)}, data in "
                f"{data_dir}): use it, or stop it (Ctrl-C in its terminal) before starting "
                "another; a second stack needs its own --data-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)  # releases the lock


def pid_alive(pid: int) -> bool:
    """Whether a process with this PID exists (on this machine)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True
