"""What every console route shares: the templates, the session read from its cookie, the
principal it stands for in one tenant, and the checks every POST passes (same origin, CSRF).

A POST that fails a check is answered 403 before its form is acted on, so nothing is sent,
changed or recorded. Reads and acts then go through the operator API's own functions
(:mod:`awfdrs.api.operator` and friends) with the :class:`~awfdrs.api.auth.Principal` the
session stands for: the same tenant scoping, role checks, command signing and audit rows.
"""

from __future__ import annotations

import logging
import urllib.parse
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import jinja2
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError

from awfdrs.api.auth import Principal, require_actor
from awfdrs.api.edge import edge_of
from awfdrs.api.errors import ApiError, database_unavailable
from awfdrs.api.keys import ACT_ROLES, READ_ROLES, Role
from awfdrs.config import Settings
from awfdrs.console.session import (
    COOKIE,
    FLASH_COOKIE,
    PATH,
    ConsoleSession,
    SessionCodec,
    SsoVerifier,
    session_secret,
)
from awfdrs.contracts import TenantSettings
from awfdrs.db.repositories import TenantRepository
from awfdrs.db.session import tenant_session

log = logging.getLogger("awfdrs.console")
MAX_FORM_BYTES = 64 * 1024
PHASE_WORDS = {
    "grouping": "gathering related events before deciding",
    "analyzing": "being analysed",
    "awaiting_approval": "waits for a person to approve or reject its plan",
    "held": "held by a control (kill switch, fuse or breaker) until it is released",
    "acting": "remediation is running",
    "verifying": "checking that the remediation worked",
    "awaiting_operator": "escalated: waits for an operator to resolve or ignore it",
    "closed": "closed",
}


def _when(value: Any) -> str:
    if not value:
        return "—"
    at = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _ago(value: Any) -> str:
    if not value:
        return ""
    at = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    seconds = max(0, int((datetime.now(UTC) - at).total_seconds()))
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("awfdrs.console", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["ago"] = _ago
    env.globals["phase_words"] = PHASE_WORDS
    return env


@dataclass
class ConsoleState:
    """Built once per app: the session codec, the SSO verifier, the templates."""

    settings: Settings
    codec: SessionCodec
    sso: SsoVerifier
    templates: jinja2.Environment


def console_state(settings: Settings) -> ConsoleState:
    if not settings.console_session_secret:
        log.info(
            "AWFDRS_CONSOLE_SESSION_SECRET is not set: console sessions are this process's "
            "own and end when it restarts (set it, the same on every API process)"
        )
    return ConsoleState(
        settings=settings,
        codec=SessionCodec(session_secret(settings), settings.console_session_hours),
        sso=SsoVerifier(settings),
        templates=_environment(),
    )


def state_of(request: Request) -> ConsoleState:
    state: ConsoleState = request.app.state.console
    return state


def static_file(name: str) -> bytes:
    return resources.files("awfdrs.console").joinpath("static", name).read_bytes()


def secure(request: Request) -> bool:
    return request.url.scheme == "https"


def set_cookie(request: Request, response: Response, name: str, value: str, age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=age,
        path=PATH,
        httponly=True,
        # Lax, not Strict: an escalation link clicked in Slack or a mail client is a cross-site
        # top-level GET and must arrive signed in. POSTs stay guarded by the CSRF token and the
        # Origin / Sec-Fetch-Site checks (cross-site and same-site refused).
        samesite="lax",
        secure=secure(request),
    )


@dataclass(frozen=True)
class Viewer:
    """The signed-in person on one request: the session, its CSRF token, its principals."""

    session: ConsoleSession
    csrf: str

    @property
    def can_act(self) -> bool:
        return self.session.role in ACT_ROLES

    @property
    def is_admin(self) -> bool:
        return self.session.role is Role.ADMIN


class SignedOut(Exception):
    """No valid session: the page sends the person to sign in."""


def current(request: Request) -> Viewer:
    state = state_of(request)
    session = state.codec.read(request.cookies.get(COOKIE))
    if session is None:
        raise SignedOut
    return Viewer(session, state.codec.csrf(session.sid))


def tenant_param(viewer: Viewer, value: str | None) -> uuid.UUID:
    """The tenant a request is about: one of the session's (404 otherwise), else its first."""
    if not value:
        return viewer.session.tenants[0]
    try:
        wanted = uuid.UUID(value)
    except ValueError:
        raise ApiError(404, "not_found", "no such tenant in this session") from None
    if wanted not in viewer.session.tenants:
        raise ApiError(404, "not_found", "no such tenant in this session")
    return wanted


async def principal_for(request: Request, viewer: Viewer, tenant_id: uuid.UUID) -> Principal:
    """The principal the session stands for in ``tenant_id``. A key's session is re-checked
    through the API's key cache (revoked or expired: 401); an SSO session's tenant must still
    exist. The role is the key's current one, not the cookie's."""
    session = viewer.session
    edge = edge_of(request)
    if tenant_id not in session.tenants:
        raise ApiError(404, "not_found", "no such tenant in this session")
    if session.kind == "key":
        if session.key_prefix is None or session.key_id is None:
            raise SignedOut
        try:
            principal = await edge.keys.recheck(session.key_prefix, session.key_id)
        except ApiError as error:
            if error.status == 401:
                raise SignedOut from None
            raise
        if principal.tenant_id != tenant_id or principal.role not in READ_ROLES:
            raise SignedOut
        return principal
    try:
        async with tenant_session(edge.sessions, tenant_id) as db:
            tenant = await TenantRepository(db, tenant_id=tenant_id).find(tenant_id)
    except Exception as error:
        if database_unavailable(error):
            raise ApiError(503, "unavailable", "PostgreSQL cannot be reached now") from error
        raise
    if tenant is None:
        raise ApiError(404, "not_found", "no such tenant")
    return Principal(
        key_id=uuid.uuid5(uuid.NAMESPACE_URL, f"awfdrs-sso:{session.name}"),
        tenant_id=tenant_id,
        role=session.role,
        tenant_active=tenant.is_active,
        settings=TenantSettings.model_validate(tenant.settings),
        key_name=session.name,
        key_prefix="sso",
    )


class Refused(Exception):
    """A POST refused before anything was done (403): bad origin, no session, bad CSRF."""


class BadInput(Exception):
    """A query or form value the console does not accept (400), naming the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


MAX_VALUE = 10_000
MAX_SEQ = 2**63 - 1


def _unprintable(value: str) -> bool:
    # Tab, newline and carriage return are what a textarea may send; the rest never are.
    return any((ord(c) < 32 and c not in "\t\n\r") or 0x7F <= ord(c) < 0xA0 for c in value)


def checked(field: str, value: str) -> str:
    """``value`` when it holds no control characters (NUL, DEL, C1) and is not huge."""
    if _unprintable(value):
        raise BadInput(field, "contains control characters")
    if len(value) > MAX_VALUE:
        raise BadInput(field, f"is longer than {MAX_VALUE} characters")
    return value


def query(request: Request, field: str) -> str:
    """One query parameter, checked (absent: empty)."""
    return checked(field, request.query_params.get(field, ""))


def check_query(request: Request) -> None:
    """Every query parameter of a console page, checked: :class:`BadInput` otherwise."""
    for field, value in request.query_params.multi_items():
        checked(checked("a query parameter's name", field)[:40], value)


def sequence(field: str, value: str) -> int | None:
    """An audit sequence number from a query: 1 to 2^63-1 (empty: None)."""
    if not value:
        return None
    try:
        number = int(value)
    except ValueError:
        raise BadInput(field, "is not a whole number") from None
    if not 1 <= number <= MAX_SEQ:
        raise BadInput(field, f"must be between 1 and {MAX_SEQ}")
    return number


def check_origin(request: Request) -> None:
    """Same-origin only: ``Sec-Fetch-Site`` (sent by browsers) and ``Origin`` when present."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        raise Refused(f"a {site} request cannot act here")
    origin = request.headers.get("origin")
    if origin is not None:
        # The host, not the scheme: behind a proxy that terminates TLS this process sees http
        # while the browser's origin is https (the CSRF token is the defence either way).
        host = request.headers.get("host", "").lower()
        if not host or urllib.parse.urlsplit(origin).netloc.lower() != host:
            raise Refused("a request from another origin cannot act here")


async def read_form(request: Request) -> dict[str, str]:
    """An urlencoded form (the console's only kind); the first value of each field."""
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise Refused("the console takes forms only")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise Refused("the form is too large")
    try:
        parsed = urllib.parse.parse_qs(
            body.decode("utf-8"), keep_blank_values=True, strict_parsing=False
        )
    except (UnicodeDecodeError, ValueError):
        raise Refused("the form is not readable") from None
    form = {k: v[0] for k, v in parsed.items()}
    for field, value in form.items():
        checked(checked("a field's name", field)[:40], value)
    return form


async def posted(request: Request) -> tuple[Viewer, dict[str, str]]:
    """The session and form of a console POST, or :class:`Refused`/:class:`SignedOut`/
    :class:`BadInput`."""
    check_origin(request)
    viewer = current(request)
    form = await read_form(request)
    if not state_of(request).codec.csrf_ok(viewer.session.sid, form.get("csrf")):
        raise Refused("the form's CSRF token is missing or wrong: reload the page and try again")
    return viewer, form


def page(
    request: Request,
    template: str,
    status: int = 200,
    viewer: Viewer | None = None,
    **values: Any,
) -> HTMLResponse:
    """A page, with the flash message left by the previous POST (then cleared)."""
    state = state_of(request)
    flash = state.codec.read_flash(request.cookies.get(FLASH_COOKIE))
    if "flash" in values:
        flash = values.pop("flash")
    html = state.templates.get_template(template).render(
        viewer=viewer, flash=flash, request_path=request.url.path, **values
    )
    response = HTMLResponse(html, status_code=status)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'"
    )
    response.headers["Referrer-Policy"] = "same-origin"
    if request.cookies.get(FLASH_COOKIE):
        response.delete_cookie(FLASH_COOKIE, path=PATH)
    return response


def fragment(request: Request, template: str, **values: Any) -> HTMLResponse:
    html = state_of(request).templates.get_template(template).render(**values)
    response = HTMLResponse(html)
    response.headers["Cache-Control"] = "no-store"
    return response


def back(request: Request, to: str, message: str, ok: bool = True) -> RedirectResponse:
    """After a POST: back to the page it came from (303), the outcome flashed there."""
    response = RedirectResponse(to, status_code=303)
    set_cookie(request, response, FLASH_COOKIE, state_of(request).codec.flash(message, ok), 60)
    return response


def in_words(error: ValueError) -> str:
    """A refused value's message for a person: each field and what is wrong with it, not
    pydantic's own text ("1 validation error for ActivateSwitch ...")."""
    if isinstance(error, ValidationError):
        parts = []
        for problem in error.errors(include_url=False):
            field = ".".join(str(p) for p in problem["loc"]) or "the form"
            message = str(problem["msg"]).removeprefix("Value error, ")
            parts.append(f"{field.replace('_', ' ')}: {message}")
        return "; ".join(parts)
    return str(error)


def safe_next(value: str | None) -> str | None:
    """Where sign-in may send a person afterwards: a path of this console, nothing else (no
    other host, scheme, ``//``, backslash, dot segment or control character)."""
    if not value or len(value) > 2000 or not value.startswith(f"{PATH}/"):
        return None
    if "\\" in value or "//" in value or _unprintable(value) or any(c.isspace() for c in value):
        return None
    parts = urllib.parse.urlsplit(value)
    if parts.scheme or parts.netloc:
        return None
    path = urllib.parse.unquote(parts.path)
    if "\\" in path or "//" in path or _unprintable(path):
        return None
    if any(segment in (".", "..") for segment in path.split("/")):
        return None
    return value


def to_sign_in(request: Request) -> RedirectResponse:
    """The redirect to sign in, coming back here afterwards (a GET's own path and query).
    The cookie is dropped only when one was presented (and found dead)."""
    target = f"{PATH}/signin"
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.method == "GET" and safe_next(here) and request.url.path != target:
        target += "?" + urllib.parse.urlencode({"next": here})
    response = RedirectResponse(target, status_code=303)
    if request.cookies.get(COOKIE):
        response.delete_cookie(COOKIE, path=PATH)
    return response


async def viewing(request: Request) -> Viewer | Response:
    """The signed-in person of a page, or the redirect to sign in, or an error page (a bad
    query parameter: 400; PostgreSQL down: 503; the session's tenant gone: 404)."""
    try:
        viewer = current(request)
    except SignedOut:
        return to_sign_in(request)
    try:
        check_query(request)
        await principal_for(request, viewer, viewer.session.tenants[0])
    except SignedOut:
        return to_sign_in(request)
    except BadInput as error:
        return error_page(request, viewer, 400, str(error))
    except ApiError as error:
        return error_page(request, viewer, error.status, error.message)
    return viewer


def error_page(request: Request, viewer: Viewer | None, status: int, message: str) -> Response:
    """A refusal shown as a page with its message (404 another tenant's, 403 a role, …)."""
    return page(request, "error.html", status=status, viewer=viewer, message=message,
                flash=(message, False))  # fmt: skip


def refused(request: Request, message: str) -> Response:
    """403 for a POST that failed a check: nothing was done or recorded."""
    return page(request, "error.html", status=403, message=message, flash=(message, False))


async def acting(
    request: Request, form: dict[str, str], viewer: Viewer, tenant: str | None = None
) -> Principal:
    """The principal acting, refused (403) when it may only read."""
    principal = await principal_for(request, viewer, tenant_param(viewer, tenant))
    require_actor(principal)
    return principal


class ConsoleRoute(APIRoute):
    """A console route: whatever a handler lets escape is shown as the console's error page,
    never the API's JSON or a bare 500 (a malformed path parameter: 404; a bad value: 400;
    PostgreSQL unreachable: 503; a refusal of the API: its status and message)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except SignedOut:
                if request.url.path.endswith(("/rows", "/live")):
                    return Response("signed out", status_code=401, media_type="text/plain")
                return to_sign_in(request)
            except RequestValidationError:
                return _failed(request, 404, "there is no such page (a malformed address)")
            except BadInput as error:
                return _failed(request, 400, str(error))
            except Refused as error:
                return _failed(request, 403, str(error))
            except ApiError as error:
                return _failed(request, error.status, error.message)
            except DBAPIError as error:
                if database_unavailable(error):
                    return _failed(request, 503, "PostgreSQL cannot be reached now: try again")
                log.exception("console: the database refused %s", request.url.path)
                return _failed(request, 400, "the database refused this request's values")

        return handle


def _failed(request: Request, status: int, message: str) -> Response:
    if request.url.path.endswith(("/rows", "/live")):
        return Response(message, status_code=status, media_type="text/plain")
    try:
        viewer: Viewer | None = current(request)
    except SignedOut:
        viewer = None
    return error_page(request, viewer, status, message)
