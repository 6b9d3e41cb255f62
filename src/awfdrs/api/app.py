"""The ASGI application: four ways in for events, one ingest core, a health check, and the
operator API (:mod:`awfdrs.api.operator`: read and answer incidents, kill switches, vendors).

Every ingest endpoint runs the same steps: authenticate the key (its tenant and role), check the
content type, read the body under the size limit, decode it tolerantly (a hostile event is
refused on its own), turn the format into native events, then :func:`awfdrs.api.edge.ingest`
(quota, workflow names, the one ingest core with the key's tenant). That call commits events,
incidents and the outbox in one transaction before the answer: a 2xx is durable, and Temporal
is not on the path (the dispatchers start the workflows).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.exceptions import HTTPException as StarletteHTTPException

from awfdrs import jsonbatch
from awfdrs.api import audit, formats, operator, tenant_admin, vendors
from awfdrs.api.auth import KeyCache, bearer
from awfdrs.api.edge import (
    CE_BATCH,
    CE_STRUCTURED,
    JSON,
    Edge,
    body_of,
    build_api_engine,
    check_postgres,
    check_temporal,
    edge_of,
    ingest,
    media_type,
    principal_of,
    respond,
    unsupported,
)
from awfdrs.api.errors import ApiError, ErrorBody
from awfdrs.api.limits import InFlightLimit
from awfdrs.api.schemas import (
    ALERTMANAGER_BODY,
    CLOUDEVENTS_CONTENT,
    NATIVE_BODY,
    PAGERDUTY_BODY,
    Health,
    IngestResponse,
    PagerDutyResponse,
)
from awfdrs.config import Settings
from awfdrs.console import routes as console
from awfdrs.contracts import MAX_BATCH_EVENTS, Outcome
from awfdrs.db.session import make_sessionmaker
from awfdrs.jsonbatch import MalformedJson


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    descriptions = {
        400: "Malformed JSON (with its position) or a request that is wrong as a whole",
        401: "Missing, malformed, unknown, revoked or expired key",
        403: "The key may not send events, or names another tenant",
        408: "The body did not arrive within 10 s",
        413: "Body over the limit (1 MiB by default)",
        415: "Content type not accepted",
        429: "Tenant over its quota; see Retry-After",
        503: "PostgreSQL unreachable or this process at its in-flight limit; see Retry-After",
    }
    return {c: {"model": ErrorBody, "description": descriptions[c]} for c in codes}


INGEST_ERRORS = _errors(400, 401, 403, 408, 413, 415, 429, 503)


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


async def _check_health(edge: Edge) -> Health:
    postgres, temporal = await asyncio.gather(check_postgres(edge), check_temporal(edge))
    status = "unavailable" if not postgres.ok else ("ok" if temporal.ok else "degraded")
    return Health(status=status, postgres=postgres, temporal=temporal)


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
        summary="Events in, incidents out: the authenticated HTTP edge and operator API of awfdrs.",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError) -> Response:
        # json.dumps escapes what a client sent back at it (a lone surrogate in a member name
        # echoed in the message) instead of failing to encode it: a 400 stays a 400.
        return Response(
            json.dumps(error.body()),
            status_code=error.status,
            headers=error.headers,
            media_type=JSON,
        )

    @app.exception_handler(RequestValidationError)
    async def invalid_body(request: Request, error: RequestValidationError) -> Response:
        # FastAPI's default echoes each offending ``input``: a credential sent under a wrong
        # name, or too long, would come back in the answer (and in a proxy's logs). The field
        # and the reason, never the value.
        first = error.errors()[0] if error.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
        message = f"{where}: {first.get('msg', 'invalid')}"
        return Response(
            json.dumps({"error": "invalid", "message": message}), status_code=422, media_type=JSON
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        # Starlette's own refusals (no such route, e.g. an empty path parameter) in the same
        # shape as every other refusal, as the OpenAPI document promises.
        code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
        return Response(
            json.dumps({"error": code, "message": str(error.detail)}),
            status_code=error.status_code,
            headers=getattr(error, "headers", None),
            media_type=JSON,
        )

    @app.get(
        "/healthz",
        response_model=Health,
        responses={503: {"model": Health, "description": "PostgreSQL does not answer"}},
        summary="Whether PostgreSQL and Temporal answer",
    )
    async def healthz(request: Request) -> Response:
        health = await edge_of(request).health.get(_check_health, edge_of(request))
        return respond(health, 200 if health.postgres.ok else 503)

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
        if kind not in (CE_STRUCTURED, CE_BATCH) and not (binary and formats.is_json(kind)):
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
        responses=_errors(400, 401, 403, 408, 413, 415, 429, 503),
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
        key = routing_key if isinstance(routing_key, str) and routing_key else fallback
        if key is None:  # PagerDuty's own answer to an event without its key
            raise formats.pd_invalid("'routing_key' is missing or blank")
        principal = await principal_of(request, key)
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

    app.include_router(operator.router)
    app.include_router(vendors.router)
    app.include_router(tenant_admin.router)
    app.include_router(audit.router)
    # The web console: pages over the same functions, signed in with a key or SSO.
    console.install(app, settings)

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
            # every operator, vendor, administration and audit route needs a key
            routers = (operator.router, vendors.router, tenant_admin.router, audit.router)
            for route in [r for router in routers for r in router.routes]:
                path = getattr(route, "path", "")
                for method in getattr(route, "methods", ()):
                    schema["paths"][path][method.lower()]["security"] = [{"bearer": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_middleware(
        InFlightLimit,
        limit=settings.api_max_in_flight,
        exempt=("/healthz", "/openapi.json"),
    )
    return app
