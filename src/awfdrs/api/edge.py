"""What the endpoints share: the process's resources, authentication, and the one ingest step.

:func:`ingest` is where every format meets the ingest core: the tenant's quota, workflow names
resolved, then :func:`awfdrs.ingest_core.store_events` with the key's tenant
(``implied_tenant=True``), its failures mapped to the edge's status codes.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from fastapi import Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from starlette.requests import ClientDisconnect
from temporalio.client import Client

from awfdrs.api import formats
from awfdrs.api.auth import KeyCache, Principal, bearer, require_ingest
from awfdrs.api.errors import ApiError, database_unavailable, db_guarded, unavailable
from awfdrs.api.limits import Quotas, read_body
from awfdrs.api.schemas import Check, IngestResponse
from awfdrs.config import Settings, asyncpg_dsn
from awfdrs.db.repositories import WorkflowRepository
from awfdrs.db.session import SERVER_SETTINGS, tenant_session
from awfdrs.ingest_core import TenantUnavailable, store_events

log = logging.getLogger("awfdrs.api")
HEALTH_TIMEOUT = 2.0
NAMES_SECONDS = 5.0
# A waiting request is better answered 503 quickly than held while the pool is exhausted.
API_POOL_TIMEOUT = 5.0
JSON = "application/json"
BODY_TIMEOUT = 10.0
CE_STRUCTURED = "application/cloudevents+json"
CE_BATCH = "application/cloudevents-batch+json"


class HealthCache:
    """One health check at a time per process, its answer reused for a second: a flood of
    unauthenticated /healthz calls costs one PostgreSQL connection a second, not one each."""

    def __init__(self, ttl: float = 1.0) -> None:
        self._ttl = ttl
        self._lock = asyncio.Lock()
        self._at = -math.inf
        self._last: Any = None

    async def get(self, check: Callable[[Any], Awaitable[Any]], edge: Any) -> Any:
        async with self._lock:
            if self._last is None or time.monotonic() - self._at > self._ttl:
                self._last = await check(edge)
                self._at = time.monotonic()
            return self._last


@dataclass
class Edge:
    """What the handlers share, built once per process in the lifespan."""

    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    keys: KeyCache
    quotas: Quotas = field(default_factory=Quotas)
    names: dict[uuid.UUID, tuple[float, dict[str, uuid.UUID]]] = field(default_factory=dict)
    temporal: Client | None = None
    health: HealthCache = field(default_factory=HealthCache)


def build_api_engine(settings: Settings) -> AsyncEngine:
    """The API's pool: no pre-ping (a round trip per request); a connection broken by a
    database restart fails one request with 503, and the pool replaces it."""
    return create_async_engine(
        settings.require_database_url(),
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=min(settings.db_pool_timeout, API_POOL_TIMEOUT),
        connect_args={
            "server_settings": SERVER_SETTINGS | {"application_name": "awfdrs-api"},
            "timeout": 5,
        },
    )


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def unsupported(got: str, allowed: tuple[str, ...]) -> ApiError:
    return ApiError(
        415,
        "unsupported_media_type",
        f"Content-Type {got or '(none)'!r} is not accepted here; send {' or '.join(allowed)}",
    )


async def body_of(request: Request, edge: Edge) -> bytes:
    try:
        # A whole-body deadline: a sender trickling bytes would otherwise hold one of the
        # process's in-flight slots for as long as it likes (uvicorn bounds no body read).
        async with asyncio.timeout(BODY_TIMEOUT):
            return await read_body(
                request.stream(),
                request.headers.get("content-length"),
                edge.settings.api_max_body_bytes,
            )
    except TimeoutError:
        raise ApiError(
            408, "request_timeout", f"the body did not arrive within {BODY_TIMEOUT:g} s"
        ) from None
    except ClientDisconnect:
        # The sender hung up mid-body (a timeout, a crash): nothing was read, nothing is
        # written, and nobody is left to read an answer; no 500 and no traceback for it.
        raise ApiError(
            400, "client_disconnected", "the body ended before it was complete"
        ) from None


def edge_of(request: Request) -> Edge:
    edge: Edge = request.app.state.edge
    return edge


async def principal_of(request: Request, key: str | None = None) -> Principal:
    """The principal of an ingest request: 401 for a bad key, 403 for a non-sending role."""
    principal = await authenticated(request, key)
    require_ingest(principal)
    return principal


async def authenticated(request: Request, key: str | None = None) -> Principal:
    """The principal of the request's key, whatever its role (the caller checks the role)."""
    edge = edge_of(request)
    presented = key if key is not None else bearer(request.headers.get("authorization"))
    return await db_guarded(edge.keys.authenticate(presented))


async def workflow_names(
    edge: Edge, tenant_id: uuid.UUID, wanted: set[str]
) -> dict[str, uuid.UUID]:
    """The tenant's workflows by name, cached for a few seconds; re-read when a wanted name is
    missing, so a workflow added a moment ago is found."""
    cached = edge.names.get(tenant_id)
    if (
        cached is not None
        and time.monotonic() - cached[0] < NAMES_SECONDS
        and wanted <= set(cached[1])
    ):
        return cached[1]
    async with tenant_session(edge.sessions, tenant_id) as session:
        rows = await WorkflowRepository(session, tenant_id=tenant_id).list_all()
    names = {w.name: w.id for w in rows}
    edge.names[tenant_id] = (time.monotonic(), names)
    return names


async def ingest(
    request: Request,
    principal: Principal,
    events: list[Any],
    *,
    over_quota_status: int = 429,
) -> IngestResponse:
    """Quota, workflow names, then the one ingest core with the key's tenant."""
    edge = edge_of(request)
    settings = principal.settings
    wait = edge.quotas.take(
        principal.tenant_id,
        len(events),
        settings.ingest_events_per_second,
        settings.effective_ingest_burst,
    )
    if wait is not None:
        raise ApiError(
            over_quota_status,
            "quota_exceeded",
            f"tenant {principal.tenant_id} is over its quota of "
            f"{settings.ingest_events_per_second:g} events/s (burst "
            f"{settings.effective_ingest_burst:g}); nothing was written, send again after "
            "Retry-After",
            retry_after=wait,
        )
    try:
        refs = formats.workflow_refs(events)
        if refs:
            names = await workflow_names(edge, principal.tenant_id, refs)
            events = formats.resolve_workflows(events, names)
        result = await store_events(
            edge.sessions,
            principal.tenant_id,
            events,
            task_queue=edge.settings.task_queue,
            implied_tenant=True,
        )
    except TenantUnavailable as error:
        raise ApiError(403, "tenant_inactive", str(error)) from error
    except ApiError:
        raise
    except Exception as error:
        if database_unavailable(error):
            log.warning("ingest refused: PostgreSQL unavailable (%s)", error)
            raise unavailable() from error
        raise
    return IngestResponse.of(result)


def respond(model: Any, status: int = 200) -> Response:
    return Response(model.model_dump_json(), status_code=status, media_type=JSON)


def respond_list(models: Sequence[Any]) -> Response:
    """A JSON array of models, each serialised by pydantic as :func:`respond` does one."""
    return Response("[" + ",".join(m.model_dump_json() for m in models) + "]", media_type=JSON)


async def check_postgres(edge: Edge) -> Check:
    """On a connection of its own, not the pool's: a pool busy with ingest must not make a
    load balancer take a healthy replica out."""
    try:
        async with asyncio.timeout(HEALTH_TIMEOUT):
            connection = await asyncpg.connect(asyncpg_dsn(edge.settings.require_database_url()))
            try:
                await connection.fetchval("SELECT 1")
            finally:
                await connection.close()
    except Exception as error:
        # The reason goes to the log, not to an unauthenticated caller (hosts, roles).
        log.warning("health: PostgreSQL does not answer: %s: %s", type(error).__name__, error)
        return Check(ok=False, detail="does not answer")
    return Check(ok=True, detail="answers")


async def check_temporal(edge: Edge) -> Check:
    from awfdrs.client import connect_temporal

    settings = edge.settings
    try:
        async with asyncio.timeout(HEALTH_TIMEOUT):
            if edge.temporal is None:
                edge.temporal = await connect_temporal(settings)
            await edge.temporal.service_client.check_health()
    except Exception as error:
        log.warning("health: Temporal does not answer: %s: %s", type(error).__name__, error)
        return Check(ok=False, detail="does not answer")
    return Check(ok=True, detail="answers")


async def temporal_of(edge: Edge) -> Client:
    """The process's Temporal client, connected on first use (ingest never needs it)."""
    from awfdrs.client import connect_temporal

    if edge.temporal is None:
        edge.temporal = await connect_temporal(edge.settings)
    return edge.temporal
