"""The ASGI application: four ways in for events, one ingest core, and a health check.

Every ingest endpoint runs the same steps: authenticate the key (its tenant and role), check the
content type, read the body under the size limit, decode it tolerantly (a hostile event is
refused on its own), turn the format into native events, charge the tenant's quota, resolve
workflow names, and call :func:`awfdrs.ingest_core.store_events` with the key's tenant. That
call commits events, incidents and the outbox in one transaction before the answer: a 2xx is
durable, and Temporal is not on the path (the dispatchers start the workflows).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from temporalio.client import Client

from awfdrs import jsonbatch
from awfdrs.api import formats
from awfdrs.api.auth import KeyCache, Principal, bearer, require_ingest
from awfdrs.api.errors import ApiError, ErrorBody, database_unavailable, unavailable
from awfdrs.api.limits import InFlightLimit, Quotas, read_body
from awfdrs.api.schemas import (
    ALERTMANAGER_BODY,
    CLOUDEVENTS_CONTENT,
    NATIVE_BODY,
    PAGERDUTY_BODY,
    Check,
    Health,
    IngestResponse,
    PagerDutyResponse,
)
from awfdrs.config import Settings
from awfdrs.contracts import MAX_BATCH_EVENTS, Outcome
from awfdrs.db.repositories import WorkflowRepository
from awfdrs.db.session import make_sessionmaker, tenant_session
from awfdrs.ingest_core import TenantUnavailable, store_events
from awfdrs.jsonbatch import MalformedJson

log = logging.getLogger("awfdrs.api")
HEALTH_TIMEOUT = 2.0
NAMES_SECONDS = 5.0
# A waiting request is better answered 503 quickly than held while the pool is exhausted.
API_POOL_TIMEOUT = 5.0
JSON = "application/json"
CE_STRUCTURED = "application/cloudevents+json"
CE_BATCH = "application/cloudevents-batch+json"


@dataclass
class Edge:
    """What the handlers share, built once per process in the lifespan."""

    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    keys: KeyCache
    quotas: Quotas = field(default_factory=Quotas)
    names: dict[uuid.UUID, tuple[float, dict[str, uuid.UUID]]] = field(default_factory=dict)
    temporal: Client | None = None


def build_api_engine(settings: Settings) -> AsyncEngine:
    """The API's pool: no pre-ping (a round trip per request); a connection broken by a
    database restart fails one request with 503, and the pool replaces it."""
    return create_async_engine(
        settings.require_database_url(),
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=min(settings.db_pool_timeout, API_POOL_TIMEOUT),
        connect_args={"server_settings": {"application_name": "awfdrs-api"}, "timeout": 5},
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
    return await read_body(
        request.stream(), request.headers.get("content-length"), edge.settings.api_max_body_bytes
    )


def edge_of(request: Request) -> Edge:
    edge: Edge = request.app.state.edge
    return edge


async def principal_of(request: Request, key: str | None = None) -> Principal:
    edge = edge_of(request)
    presented = key if key is not None else bearer(request.headers.get("authorization"))
    try:
        principal = await edge.keys.authenticate(presented)
    except ApiError:
        raise
    except Exception as error:
        if database_unavailable(error):
            raise unavailable() from error
        raise
    require_ingest(principal)
    return principal


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


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    descriptions = {
        400: "Malformed JSON (with its position) or a request that is wrong as a whole",
        401: "Missing, malformed, unknown, revoked or expired key",
        403: "The key may not send events, or names another tenant",
        413: "Body over the limit (1 MiB by default)",
        415: "Content type not accepted",
        429: "Tenant over its quota; see Retry-After",
        503: "PostgreSQL unreachable or this process at its in-flight limit; see Retry-After",
    }
    return {c: {"model": ErrorBody, "description": descriptions[c]} for c in codes}


INGEST_ERRORS = _errors(400, 401, 403, 413, 415, 429, 503)


def _body(content: dict[str, Any]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": content}}


def _workflow_param(where: str) -> dict[str, Any]:
    return {
        "parameters": [
            {
                "name": "workflow",
                "in": "query",
                "required": False,
                "schema": {"type": "string"},
                "description": f"The workflow (name or id) when {where} does not name it",
            }
        ]
    }


def create_app(
    settings: Settings, *, sessions: async_sessionmaker[AsyncSession] | None = None
) -> FastAPI:
    """The application; with ``sessions`` it uses them (tests), else it builds its own pool."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = None if sessions is not None else build_api_engine(settings)
        made = sessions or make_sessionmaker(engine)  # type: ignore[arg-type]
        app.state.edge = Edge(settings=settings, sessions=made, keys=KeyCache(made))
        try:
            yield
        finally:
            if engine is not None:
                await engine.dispose()

    app = FastAPI(
        title="awfdrs",
        version="0.3.0",
        summary="Events in, incidents out: the authenticated HTTP edge of awfdrs.",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError) -> Response:
        return JSONResponse(error.body(), status_code=error.status, headers=error.headers)

    @app.get(
        "/healthz",
        response_model=Health,
        responses={503: {"model": Health, "description": "PostgreSQL does not answer"}},
        summary="Whether PostgreSQL and Temporal answer",
    )
    async def healthz(request: Request) -> Response:
        edge = edge_of(request)
        postgres, temporal = await asyncio.gather(_check_postgres(edge), _check_temporal(edge))
        status = "unavailable" if not postgres.ok else ("ok" if temporal.ok else "degraded")
        health = Health(status=status, postgres=postgres, temporal=temporal)
        return respond(health, 200 if postgres.ok else 503)

    @app.post(
        "/v1/events",
        response_model=IngestResponse,
        responses=INGEST_ERRORS,
        summary="Events in awfdrs's own format",
        openapi_extra=_body({JSON: {"schema": NATIVE_BODY}}),
    )
    async def post_events(request: Request) -> Response:
        principal = await principal_of(request)
        if media_type(request) != JSON:
            raise unsupported(media_type(request), (JSON,))
        raw = await body_of(request, edge_of(request))
        try:
            batch = jsonbatch.split_batch(raw, max_items=MAX_BATCH_EVENTS)
        except MalformedJson as exc:
            raise formats.malformed(exc) from None
        events = formats.native(batch.fields, batch.items, principal.tenant_id)
        return respond(await ingest(request, principal, events))

    @app.post(
        "/v1/cloudevents",
        response_model=IngestResponse,
        responses=INGEST_ERRORS,
        summary="CloudEvents 1.0: structured, batched, or binary (ce-* headers)",
        openapi_extra=_body(CLOUDEVENTS_CONTENT),
    )
    async def post_cloudevents(request: Request) -> Response:
        principal = await principal_of(request)
        kind = media_type(request)
        binary = "ce-specversion" in request.headers
        if kind not in (CE_STRUCTURED, CE_BATCH) and not (binary and formats._is_json(kind)):
            if kind == JSON:
                raise ApiError(
                    400,
                    "missing_attribute",
                    "ce-specversion: required CloudEvents attribute is missing (binary mode "
                    f"carries the attributes in ce-* headers; structured mode is {CE_STRUCTURED})",
                )
            raise unsupported(kind, (CE_STRUCTURED, CE_BATCH, "JSON data with ce-* headers"))
        raw = await body_of(request, edge_of(request))
        try:
            if kind == CE_BATCH:
                items = jsonbatch.split_array(raw, max_items=MAX_BATCH_EVENTS)
                events = [
                    item if isinstance(item, jsonbatch.Undecodable)
                    else formats.cloudevent(i, item.value, label=f"[{i}].")
                    for i, item in enumerate(items)
                ]  # fmt: skip
            elif kind == CE_STRUCTURED:
                events = [formats.single(formats.cloudevent(0, jsonbatch.decode_one(raw)))]
            else:
                event = formats.cloudevent_binary(request.headers, raw)
                events = [formats.single(formats.cloudevent(0, event, label="ce-"))]
        except MalformedJson as exc:
            raise formats.malformed(exc) from None
        return respond(await ingest(request, principal, events))

    @app.post(
        "/v1/alertmanager",
        response_model=IngestResponse,
        responses=INGEST_ERRORS,
        summary="Prometheus Alertmanager webhook (version 4): one event per alert",
        description="Whenever awfdrs cannot take the alerts now (database, quota, load) the "
        "answer is a 5xx, so that Alertmanager retries; 4xx only for what never succeeds.",
        openapi_extra=_body({JSON: {"schema": ALERTMANAGER_BODY}}) | _workflow_param("a label"),
    )
    async def post_alertmanager(request: Request) -> Response:
        principal = await principal_of(request)
        if media_type(request) != JSON:
            raise unsupported(media_type(request), (JSON,))
        raw = await body_of(request, edge_of(request))
        try:
            batch = jsonbatch.split_batch(raw, array_key="alerts", max_items=MAX_BATCH_EVENTS)
        except MalformedJson as exc:
            raise formats.malformed(exc) from None
        formats.alertmanager({**batch.fields, "alerts": []})
        workflow = request.query_params.get("workflow") or None
        events = [
            item if isinstance(item, jsonbatch.Undecodable)
            else formats.alert(i, item.value, workflow)
            for i, item in enumerate(batch.items)
        ]  # fmt: skip
        # Alertmanager retries 5xx and drops 4xx: over quota is "not now", so 503.
        return respond(await ingest(request, principal, events, over_quota_status=503))

    @app.post(
        "/v2/enqueue",
        status_code=202,
        response_model=PagerDutyResponse,
        responses=_errors(400, 401, 403, 413, 415, 429, 503),
        summary="PagerDuty Events API v2: routing_key is an awfdrs ingest key",
        openapi_extra=_body({JSON: {"schema": PAGERDUTY_BODY}}) | _workflow_param("the event"),
    )
    async def post_enqueue(request: Request) -> Response:
        edge = edge_of(request)
        if media_type(request) != JSON:
            raise unsupported(media_type(request), (JSON,))
        raw = await body_of(request, edge)
        try:
            body = jsonbatch.decode_one(raw)
        except MalformedJson as exc:
            raise formats.malformed(exc) from None
        header = request.headers.get("authorization")
        fallback = bearer(header) if header else None
        routing_key = body.get("routing_key") if isinstance(body, dict) else None
        principal = await principal_of(
            request, routing_key if isinstance(routing_key, str) and routing_key else fallback
        )
        event = formats.pagerduty(
            body, request.query_params.get("workflow") or None, datetime.now(UTC), fallback
        )
        result = await ingest(request, principal, [event.event])
        outcome = result.outcomes[0]
        if outcome.outcome is Outcome.REJECTED:
            raise formats.pd_invalid(outcome.reason or "rejected")
        return respond(
            PagerDutyResponse(
                status="success",
                message="Event processed",
                dedup_key=event.dedup_key,
                outcome=outcome,
                incidents=result.incidents,
            ),
            202,
        )

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                routes=app.routes,
            )
            schema.setdefault("components", {})["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer", "description": "an awfdrs key"}
            }
            for path in ("/v1/events", "/v1/cloudevents", "/v1/alertmanager"):
                schema["paths"][path]["post"]["security"] = [{"bearer": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_middleware(
        InFlightLimit,
        limit=settings.api_max_in_flight,
        exempt=("/healthz", "/openapi.json"),
    )
    return app


async def _check_postgres(edge: Edge) -> Check:
    try:
        async with asyncio.timeout(HEALTH_TIMEOUT), edge.sessions() as session:
            await session.execute(text("SELECT 1"))
    except Exception as error:
        return Check(ok=False, detail=f"{type(error).__name__}: {error}"[:300])
    return Check(ok=True, detail="answers")


async def _check_temporal(edge: Edge) -> Check:
    from awfdrs.client import connect_temporal

    settings = edge.settings
    try:
        async with asyncio.timeout(HEALTH_TIMEOUT):
            if edge.temporal is None:
                edge.temporal = await connect_temporal(settings)
            await edge.temporal.service_client.check_health()
    except Exception as error:
        return Check(
            ok=False,
            detail=f"{settings.temporal_address}: {type(error).__name__}: {error}"[:300],
        )
    return Check(ok=True, detail=f"{settings.temporal_address} answers")
