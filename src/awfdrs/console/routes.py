"""The console's pages: sign-in, the queue, an incident (controls and audit:
:mod:`awfdrs.console.controls`).

Server-rendered HTML (Jinja2 templates shipped with the package); two small fragments (the
queue's rows, an incident's live part) are polled every 2 s by ``static/console.js``. Not in the
OpenAPI document: they are pages, not an API. Every read and act goes through the operator
API's functions with the principal the session stands for (see :mod:`awfdrs.console.web`).
"""

from __future__ import annotations

import secrets
import time
import urllib.parse
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from awfdrs.api import operator
from awfdrs.api.auth import Principal
from awfdrs.api.edge import edge_of
from awfdrs.api.errors import ApiError
from awfdrs.api.keys import READ_ROLES
from awfdrs.api.operator_schemas import (
    CloseAnswer,
    PlanAnswer,
)
from awfdrs.config import Settings
from awfdrs.console.session import COOKIE, PATH, PRE_COOKIE, SignInRefused
from awfdrs.console.web import (
    ConsoleRoute,
    Refused,
    SignedOut,
    Viewer,
    acting,
    back,
    check_origin,
    check_query,
    console_state,
    current,
    error_page,
    fragment,
    in_words,
    page,
    posted,
    principal_for,
    query,
    read_form,
    refused,
    safe_next,
    set_cookie,
    state_of,
    static_file,
    tenant_param,
    to_sign_in,
    viewing,
)
from awfdrs.enums import IncidentStatus, Phase, Severity
from awfdrs.queries import NEEDS_A_HUMAN, list_incidents

router = APIRouter(prefix="/console", include_in_schema=False, route_class=ConsoleRoute)
AGES = {"1h": timedelta(hours=1), "24h": timedelta(days=1), "7d": timedelta(days=7)}
QUEUE_LIMIT = 200
STATIC = {"console.css": "text/css", "console.js": "text/javascript"}


def install(app: FastAPI, settings: Settings) -> None:
    """Serve the console from ``app``: its state, its routes, and where a dead session goes."""
    from awfdrs.console import controls

    app.state.console = console_state(settings)
    app.include_router(router)
    app.include_router(controls.router)

    async def signed_out(request: Request, error: Exception) -> Response:
        # A fragment's poll gets 401 (its script goes to the sign-in page); a page or a form
        # is sent there (a dead cookie dropped). Console routes catch it themselves
        # (ConsoleRoute); this is for anything else that raises it.
        if request.url.path.endswith(("/rows", "/live")):
            return Response("signed out", status_code=401, media_type="text/plain")
        return to_sign_in(request)

    app.add_exception_handler(SignedOut, signed_out)


# --- static, sign-in, sign-out ------------------------------------------------------------------


@router.get("/static/{name}")
async def static(name: str) -> Response:
    if name not in STATIC:
        return Response("not found", status_code=404, media_type="text/plain")
    return Response(
        static_file(name),
        media_type=STATIC[name],
        headers={"Cache-Control": "public, max-age=300"},
    )


@router.get("")
@router.get("/")
async def home() -> RedirectResponse:
    return RedirectResponse(f"{PATH}/queue", status_code=303)


@router.get("/signin")
async def signin_page(request: Request) -> HTMLResponse:
    pre = request.cookies.get(PRE_COOKIE) or secrets.token_urlsafe(24)
    after = safe_next(request.query_params.get("next")) or ""
    response = page(request, "signin.html", pre=pre, sso=state_of(request).sso.enabled, next=after)
    set_cookie(request, response, PRE_COOKIE, pre, 3600)
    return response


@router.post("/signin")
async def signin(request: Request) -> Response:
    state = state_of(request)
    try:
        check_origin(request)
        form = await read_form(request)
    except Refused as error:
        return refused(request, str(error))
    pre = request.cookies.get(PRE_COOKIE)
    given = form.get("pre", "").encode("utf-8", "surrogatepass")
    if not pre or not secrets.compare_digest(pre.encode("utf-8", "surrogatepass"), given):
        return refused(request, "the sign-in form expired: reload the page and try again")
    key, token = form.get("key", "").strip(), form.get("sso_token", "").strip()
    after = safe_next(form.get("next")) or ""
    lifetime = int(state.settings.console_session_hours * 3600)
    dropped: list[uuid.UUID] = []
    try:
        if key:
            try:
                principal = await edge_of(request).keys.authenticate(key)
            except ApiError as error:
                raise SignInRefused(error.message) from None
            if principal.role not in READ_ROLES:
                raise SignInRefused(
                    f"a {principal.role.value} key cannot use the console; use a viewer, "
                    "operator or admin key"
                )
            cookie, _ = state.codec.issue(
                kind="key",
                name=principal.actor,
                role=principal.role,
                tenants=(principal.tenant_id,),
                key_id=principal.key_id,
                key_prefix=principal.key_prefix,
            )
        elif token:
            identity = state.sso.verify(token)
            tenants, dropped = await _existing(request, identity.tenants)
            # The session never outlives the identity provider's token.
            cookie, session = state.codec.issue(
                kind="sso",
                name=identity.actor,
                role=identity.role,
                tenants=tenants,
                not_after=identity.expires,
            )
            lifetime = max(1, session.expires - int(time.time()))
        else:
            raise SignInRefused("enter a key (or a sign-in token from your identity provider)")
    except SignInRefused as error:
        response = page(request, "signin.html", status=401, pre=pre, sso=state.sso.enabled,
                        next=after, flash=(f"Not signed in: {error}", False))  # fmt: skip
        return response
    if dropped:
        # Said on the page signed in to: the token named tenants this deployment lacks.
        named = ", ".join(str(t) for t in dropped)
        done = back(request, after or f"{PATH}/queue",
                    f"Signed in; the sign-in token also named tenant(s) that do not exist here, "
                    f"left out: {named}", ok=False)  # fmt: skip
    else:
        done = RedirectResponse(after or f"{PATH}/queue", status_code=303)
    set_cookie(request, done, COOKIE, cookie, lifetime)
    done.delete_cookie(PRE_COOKIE, path=PATH)
    return done


async def _existing(
    request: Request, tenants: tuple[uuid.UUID, ...]
) -> tuple[tuple[uuid.UUID, ...], list[uuid.UUID]]:
    """The token's tenants that exist, and those that do not; none existing: refused."""
    from awfdrs.db.repositories import TenantRepository
    from awfdrs.db.session import tenant_session

    found: list[uuid.UUID] = []
    missing: list[uuid.UUID] = []
    for tenant_id in tenants:
        async with tenant_session(edge_of(request).sessions, tenant_id) as db:
            tenant = await TenantRepository(db, tenant_id=tenant_id).find(tenant_id)
        (found if tenant is not None else missing).append(tenant_id)
    if not found:
        raise SignInRefused(
            "the sign-in token names no tenant that exists on this deployment; ask the "
            "identity provider's administrator to correct its awfdrs_tenants claim"
        )
    return tuple(found), missing


@router.post("/signout")
async def signout(request: Request) -> Response:
    """Always clears the cookie and goes to sign-in, whatever state the session is in: signing
    out changes nothing but this browser's cookie, so it needs no CSRF token. (A copy of the
    cookie taken before stays valid until it expires or its key is revoked: docs/CONSOLE.md.)"""
    response = RedirectResponse(f"{PATH}/signin", status_code=303)
    response.delete_cookie(COOKIE, path=PATH)
    return response


# --- the queue ----------------------------------------------------------------------------------


def _filters(request: Request) -> dict[str, str]:
    names = ("tenant", "workflow", "status", "severity", "age")
    return {n: query(request, n) for n in names}


async def _tenant_names(request: Request, tenants: tuple[uuid.UUID, ...]) -> dict[str, str]:
    """Each tenant's name, read in its own transaction (row-level security)."""
    from awfdrs.db.repositories import TenantRepository
    from awfdrs.db.session import tenant_session

    names: dict[str, str] = {}
    for tenant_id in tenants:
        async with tenant_session(edge_of(request).sessions, tenant_id) as db:
            found = await TenantRepository(db, tenant_id=tenant_id).find(tenant_id)
        names[str(tenant_id)] = found.name if found is not None else str(tenant_id)
    return names


async def _queue_rows(request: Request, viewer: Viewer, filters: dict[str, str]) -> list[Any]:
    """The incidents of the session's tenants (or the one filtered), needing a human first."""
    from awfdrs.admin import list_workflows

    wanted = [tenant_param(viewer, filters["tenant"])] if filters["tenant"] else None
    tenants = wanted or list(viewer.session.tenants)
    statuses, severities = {s.value for s in IncidentStatus}, {s.value for s in Severity}
    status = IncidentStatus(filters["status"]) if filters["status"] in statuses else None
    severity = Severity(filters["severity"]) if filters["severity"] in severities else None
    age = AGES.get(filters["age"])
    rows: list[dict[str, Any]] = []
    for tenant_id in tenants:
        principal = await principal_for(request, viewer, tenant_id)
        workflows = {
            str(w.id): w.name for w in await list_workflows(edge_of(request).sessions, tenant_id)
        }
        workflow_id = None
        if filters["workflow"]:
            ids = [i for i, n in workflows.items() if filters["workflow"] in (n, i)]
            if not ids:
                continue
            workflow_id = uuid.UUID(ids[0])
        found = await list_incidents(
            edge_of(request).sessions,
            principal.tenant_id,
            status=status,
            severity=severity,
            workflow_id=workflow_id,
            seen_since=datetime.now(UTC) - age if age else None,
            first=NEEDS_A_HUMAN,
            limit=QUEUE_LIMIT,
        )
        for row in found:
            row["workflow"] = workflows.get(row["workflow_id"] or "", row["workflow_id"] or "—")
        rows.extend(found)
    human = [r for r in rows if r["needs_a_human"]]
    rest = [r for r in rows if not r["needs_a_human"]]
    human.sort(key=lambda r: r["first_seen_at"], reverse=True)
    rest.sort(key=lambda r: r["first_seen_at"], reverse=True)
    return (human + rest)[:QUEUE_LIMIT]


@router.get("/queue")
async def queue(request: Request) -> Response:
    viewer = await viewing(request)
    if isinstance(viewer, Response):
        return viewer
    filters = _filters(request)
    try:
        rows = await _queue_rows(request, viewer, filters)
        names = await _tenant_names(request, viewer.session.tenants)
    except ApiError as error:
        return error_page(request, viewer, error.status, error.message)
    return page(
        request,
        "queue.html",
        viewer=viewer,
        names=names,
        rows=rows,
        filters=filters,
        query=urllib.parse.urlencode(filters),
        statuses=list(IncidentStatus),
        severities=list(Severity),
        ages=list(AGES),
    )


@router.get("/queue/rows")
async def queue_rows(request: Request) -> Response:
    try:
        viewer = current(request)
        check_query(request)
        rows = await _queue_rows(request, viewer, _filters(request))
        names = await _tenant_names(request, viewer.session.tenants)
    except SignedOut:
        return Response("signed out", status_code=401, media_type="text/plain")
    except ApiError as error:
        return Response(error.message, status_code=error.status, media_type="text/plain")
    return fragment(request, "queue_rows.html", rows=rows, names=names)


# --- an incident --------------------------------------------------------------------------------


async def _incident(
    request: Request, viewer: Viewer, incident_id: uuid.UUID, tenant: str | None
) -> tuple[dict[str, Any], Principal]:
    # A link without its tenant (an escalation's) finds it among the session's tenants.
    candidates = [tenant_param(viewer, tenant)] if tenant else list(viewer.session.tenants)
    for tenant_id in candidates:
        principal = await principal_for(request, viewer, tenant_id)
        try:
            detail = await operator.incident_detail(request, principal, incident_id)
        except ApiError as refusal:
            if refusal.status != 404 or tenant_id == candidates[-1]:
                raise
            continue
        break
    values = detail.model_dump(mode="json")
    timeline: list[dict[str, Any]] = []
    for e in values["events_shown"]:
        failure = e["error"] if isinstance(e["error"], dict) else {}
        text = " ".join(str(failure.get(k, "")) for k in ("code", "message")).strip()
        timeline.append({"at": e["at"], "kind": "event", "what": e["type"], "text": text,
                         "who": e["key"]})  # fmt: skip
    for d in values["decisions"]:
        timeline.append({"at": d["at"], "kind": "decision", "what": d["type"],
                         "text": d["reasoning"], "who": d["by"] or "",
                         "confidence": d["confidence"], "model": d["model"],
                         "gate": d["gate"], "gate_reason": d["gate_reason"]})  # fmt: skip
    for a in values["actions"]:
        timeline.append({"at": a["at"], "kind": "action", "what": f"{a['type']}: {a['status']}",
                         "text": a["summary"] or a["error"] or "", "who": "",
                         "attempts": a["attempts"]})  # fmt: skip
    timeline.sort(key=lambda t: t["at"])
    values["timeline"] = timeline
    values["tenant_id"] = str(tenant_id)
    values["temporal_ui"] = state_of(request).settings.temporal_ui_link(incident_id)
    return values, principal


def _incident_url(incident_id: uuid.UUID, tenant_id: uuid.UUID | str) -> str:
    return f"{PATH}/incidents/{incident_id}?tenant={tenant_id}"


@router.get("/incidents/{incident_id}")
async def incident(request: Request, incident_id: uuid.UUID) -> Response:
    viewer = await viewing(request)
    if isinstance(viewer, Response):
        return viewer
    try:
        tenant = request.query_params.get("tenant")
        values, _ = await _incident(request, viewer, incident_id, tenant)
    except ApiError as error:
        return error_page(request, viewer, error.status, error.message)
    return page(request, "incident.html", viewer=viewer, i=values)


@router.get("/incidents/{incident_id}/live")
async def incident_live(request: Request, incident_id: uuid.UUID) -> Response:
    try:
        viewer = current(request)
        check_query(request)
        tenant = request.query_params.get("tenant")
        values, _ = await _incident(request, viewer, incident_id, tenant)
    except SignedOut:
        return Response("signed out", status_code=401, media_type="text/plain")
    except ApiError as error:
        return Response(error.message, status_code=error.status, media_type="text/plain")
    return fragment(request, "incident_live.html", viewer=viewer, i=values)


@router.post("/incidents/{incident_id}/{verb}")
async def answer(request: Request, incident_id: uuid.UUID, verb: str) -> Response:
    if verb not in ("approve", "reject", "resolve", "ignore"):
        return Response("not found", status_code=404, media_type="text/plain")
    try:
        viewer, form = await posted(request)
    except (Refused, SignedOut) as error:
        return refused(request, str(error) or "not signed in: sign in again")
    tenant = form.get("tenant")
    try:
        principal = await acting(request, form, viewer, tenant)
    except ApiError as error:
        return error_page(request, viewer, error.status, error.message)
    to = _incident_url(incident_id, principal.tenant_id)
    reason = form.get("reason", "").strip() or None
    try:
        body: PlanAnswer | CloseAnswer
        if verb in ("approve", "reject"):
            body = PlanAnswer(plan_id=form.get("plan_id", ""), reason=reason)
        else:
            body = CloseAnswer(reason=reason or f"{verb}d from the console")
        after = await operator.answer_incident(request, principal, incident_id, verb, body)
    except ApiError as error:
        if error.status == 404:
            return error_page(request, viewer, 404, error.message)
        return back(request, to, f"Not done ({verb}): {error.message}", ok=False)
    except ValueError as error:  # the body's own validation
        return back(request, to, f"Not done ({verb}): {in_words(error)}", ok=False)
    words = {"approve": "Plan approved", "reject": "Plan rejected", "resolve": "Resolved",
             "ignore": "Ignored"}  # fmt: skip
    message = f"{words[verb]} by {principal.actor}."
    if verb == "approve" and after.phase is Phase.AWAITING_APPROVAL:
        # An irreversible plan waits for a second principal: say so rather than "approved".
        message = f"Approval by {principal.actor} recorded; {after.details}"
    return back(request, to, message)
