"""A failure as one line on stderr, saying what went wrong and where, instead of a traceback."""

from __future__ import annotations

import errno
from typing import NoReturn

import typer
from pydantic import ValidationError
from sqlalchemy.engine import make_url

from awfdrs.cli.output import errors
from awfdrs.config import Settings
from awfdrs.contracts import describe_validation_error
from awfdrs.errors import AwfdrsError, ConflictError

CONFLICTS = {
    "uq_tenants_name": "a tenant with this name already exists",
    "uq_workflows_tenant_id_name": "this tenant already has a workflow with this name",
    "uq_vendors_name": "a vendor with this name already exists",
}
# The OSErrors a connection attempt raises: anything else (a missing file, a permission) is
# about this machine, not an outage of PostgreSQL.
NETWORK_ERRNOS = frozenset({
    errno.ECONNREFUSED, errno.ECONNRESET, errno.ECONNABORTED, errno.EHOSTUNREACH,
    errno.ENETUNREACH, errno.ENETDOWN, errno.ETIMEDOUT, errno.EADDRNOTAVAIL, errno.EPIPE,
})  # fmt: skip


def fail(message: str) -> NoReturn:
    errors.print(f"awfdrs: {message}", markup=False)
    raise typer.Exit(1)


def _where(url: str | None) -> str:
    if url is None:
        return "PostgreSQL"
    parsed = make_url(url)
    host = parsed.host or parsed.query.get("host") or "localhost"
    return f"PostgreSQL at {host}{':' + str(parsed.port) if parsed.port else ''}/{parsed.database}"


def _is_network(error: OSError) -> bool:
    import socket
    import ssl

    if isinstance(error, ConnectionError | TimeoutError | socket.gaierror | ssl.SSLError):
        return True
    # asyncpg raises a bare OSError with a list of errnos ("Multiple exceptions: …").
    return error.errno in NETWORK_ERRNOS or (
        error.errno is None and "connect" in str(error).lower()
    )


def describe_os_error(error: OSError) -> str:
    """A file the command was given: missing, unreadable, a directory."""
    where = f": {error.filename!r}" if error.filename is not None else ""
    if isinstance(error, FileNotFoundError):
        return f"no such file{where}"
    if isinstance(error, PermissionError):
        return f"permission denied{where}"
    if isinstance(error, IsADirectoryError):
        return f"is a directory{where}"
    return f"{error.strerror or error}{where}"


def describe_failure(error: BaseException, settings: Settings | None) -> str:
    """One line saying what went wrong and where, instead of a traceback."""
    import asyncpg
    from sqlalchemy.exc import DBAPIError
    from temporalio.client import WorkflowFailureError, WorkflowUpdateFailedError
    from temporalio.service import RPCError

    if isinstance(error, ConflictError) and error.constraint in CONFLICTS:
        return CONFLICTS[error.constraint]
    if isinstance(error, AwfdrsError):
        return str(error)
    if isinstance(error, ValidationError):
        return describe_validation_error(error)
    if isinstance(error, WorkflowUpdateFailedError | WorkflowFailureError):
        cause = error.cause
        return str(getattr(cause, "message", None) or cause or error)
    if isinstance(error, RPCError):
        return f"Temporal refused: {error.message}"
    temporal = settings.temporal_address if settings else "the configured address"
    if isinstance(error, RuntimeError) and "connect" in str(error).lower():
        return f"cannot reach Temporal at {temporal}"
    database = _where(settings.database_url if settings else None)
    if isinstance(error, OSError) and not _is_network(error):
        return describe_os_error(error)
    if isinstance(error, ConnectionError | OSError | TimeoutError):
        return f"cannot reach {database}: {error}"
    if isinstance(error, asyncpg.PostgresError | DBAPIError):
        first = str(getattr(error, "orig", None) or error).splitlines()[0]
        return f"{database}: {first}"
    return f"{type(error).__name__}: {error}"
