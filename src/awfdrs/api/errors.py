"""The edge's refusals: one exception type, one JSON shape, the HTTP status that fits."""

from __future__ import annotations

import math
from collections.abc import Awaitable
from typing import Any, TypeVar

import asyncpg
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

T = TypeVar("T")


class ErrorBody(BaseModel):
    """Every refusal: ``error`` is a stable code, ``message`` says what to change."""

    error: str
    message: str
    errors: list[str] | None = None  # PagerDuty-style detail on /v2/enqueue


class ApiError(Exception):
    """Answered as ``status`` with :class:`ErrorBody`; ``retry_after`` becomes Retry-After."""

    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        *,
        retry_after: float | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})
        if retry_after is not None:
            self.headers["Retry-After"] = str(max(1, math.ceil(retry_after)))

    def body(self) -> dict[str, Any]:
        return {"error": self.error, "message": self.message, **self.extra}


# SQLSTATE classes that mean "the database cannot take this now", not "this request is wrong":
# connection exceptions, insufficient resources, operator intervention (shutdown), system
# errors, refused credentials (the role locked during maintenance), and transaction rollbacks
# that survived the ingest core's own retries.
UNAVAILABLE_CLASSES = ("08", "53", "57", "58", "28", "40")
RETRY_AFTER_UNAVAILABLE = 5.0


def _sqlstate(error: BaseException) -> str | None:
    candidate: BaseException | None = error.orig if isinstance(error, DBAPIError) else error
    seen: set[int] = set()
    while candidate is not None and id(candidate) not in seen:
        seen.add(id(candidate))
        state = getattr(candidate, "sqlstate", None)
        if isinstance(state, str):
            return state
        candidate = candidate.__cause__
    return None


def database_unavailable(error: BaseException) -> bool:
    """True when ``error`` says PostgreSQL could not be reached or could not serve now."""
    if isinstance(error, OSError | TimeoutError | PoolTimeout | ConnectionError):
        return True
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    if isinstance(error, asyncpg.InterfaceError | asyncpg.exceptions.ConnectionDoesNotExistError):
        return True
    inner = error.orig if isinstance(error, DBAPIError) else None
    if isinstance(inner, OSError | TimeoutError | ConnectionError):
        return True
    if inner is not None and type(inner).__name__ in (
        "InterfaceError",
        "ConnectionDoesNotExistError",
    ):
        return True
    state = _sqlstate(error)
    return state is not None and state[:2] in UNAVAILABLE_CLASSES


async def db_guarded(call: Awaitable[T]) -> T:
    """``call``'s result; a database outage is a 503 saying to send again, as on every route."""
    try:
        return await call
    except ApiError:
        raise
    except Exception as error:
        if database_unavailable(error):
            raise unavailable() from error
        raise


def unavailable() -> ApiError:
    return ApiError(
        503,
        "database_unavailable",
        "PostgreSQL cannot be reached now; nothing of this request was written. Send it again "
        "after Retry-After.",
        retry_after=RETRY_AFTER_UNAVAILABLE,
    )
