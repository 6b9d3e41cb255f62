"""``awfdrs up`` in a folder where one already runs, and commands where none does: run as a
user runs them, in that folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

# The first stack, as `awfdrs up` holds its folder: the lock, then the stack file.
FIRST = """
import sys, time
from pathlib import Path
from awfdrs.cli.common import write_stack_file
from awfdrs.devstack.lock import stack_lock
with stack_lock(Path(".awfdrs")):
    write_stack_file(Path(".awfdrs"), {"database_url": "postgresql://awfdrs_app@127.0.0.1:1/first"})
    print("ready", flush=True)
    sys.stdin.read()
"""


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("AWFDRS_")}


def awfdrs(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "awfdrs", *args],
        cwd=folder,
        env={**_env(), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_second_up_is_refused_naming_the_first_and_leaves_its_stack_file(
    tmp_path: Path,
) -> None:
    first = subprocess.Popen(
        [sys.executable, "-c", FIRST],
        cwd=tmp_path,
        env=_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert first.stdout is not None
        assert first.stdout.readline().strip() == "ready"
        second = awfdrs(tmp_path, "up")
        assert second.returncode == 1
        assert second.stderr.startswith(
            f"awfdrs: awfdrs up is already running in this folder (pid {first.pid}"
        )
        stack = tmp_path / ".awfdrs" / "stack.json"
        assert json.loads(stack.read_text())["pid"] == first.pid
        # Commands in the folder still find the first stack.
        found = awfdrs(tmp_path, "tenants", "list")
        assert found.returncode == 1
        assert "cannot reach PostgreSQL at 127.0.0.1:1/first" in found.stderr
    finally:
        first.communicate("", timeout=30)
    # The first stopped without removing its file (as after a crash): not taken for a stack.
    stale = awfdrs(tmp_path, "tenants", "list")
    assert stale.returncode == 1
    assert "the awfdrs up that wrote it has stopped" in stale.stderr
    assert "`make run` or `awfdrs up`" in stale.stderr


def test_without_a_stack_commands_say_what_to_run(tmp_path: Path) -> None:
    done = awfdrs(tmp_path, "incidents", "list")
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "awfdrs: AWFDRS_DATABASE_URL is not set, and no local stack was found "
        "(.awfdrs/stack.json: none is running): start one with `make run` or `awfdrs up` in "
        "this folder, or set AWFDRS_DATABASE_URL"
    )
