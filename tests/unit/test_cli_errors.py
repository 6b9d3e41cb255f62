"""One line per failure (awfdrs.cli.errors): an outage only when the network says so."""

from __future__ import annotations

import errno

from awfdrs.cli.errors import describe_failure
from awfdrs.config import Settings

SETTINGS = Settings(database_url="postgresql://awfdrs_app@db.example:5432/awfdrs")


def test_file_errors_name_the_file_not_the_database() -> None:
    missing = FileNotFoundError(errno.ENOENT, "No such file or directory", "events.jsonl")
    assert describe_failure(missing, SETTINGS) == "no such file: 'events.jsonl'"
    denied = PermissionError(errno.EACCES, "Permission denied", "/root/x.jsonl")
    assert describe_failure(denied, SETTINGS) == "permission denied: '/root/x.jsonl'"
    assert "PostgreSQL" not in describe_failure(OSError(errno.ENOSPC, "No space left"), SETTINGS)


def test_network_errors_are_an_outage_of_the_database() -> None:
    where = "cannot reach PostgreSQL at db.example:5432/awfdrs"
    refused = ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed")
    assert describe_failure(refused, SETTINGS).startswith(where)
    assert describe_failure(TimeoutError(), SETTINGS).startswith(where)
    # asyncpg, when every address refused: a bare OSError naming the connect calls.
    several = OSError("Multiple exceptions: [Errno 111] Connect call failed ('::1', 5432)")
    assert describe_failure(several, SETTINGS).startswith(where)
    unreachable = OSError(errno.EHOSTUNREACH, "No route to host")
    assert describe_failure(unreachable, SETTINGS).startswith(where)
