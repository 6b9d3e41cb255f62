"""Executors: retry a request through its vendor, escalate to the tenant's pager, hand over.

An executor performs one attempt. It returns an :class:`Executed` when the attempt has a final
answer (success or a permanent failure) and raises :class:`TransientActionError` when trying
again later may work; Temporal owns the retrying.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import httpx

from awfdrs.contracts import TenantSettings
from awfdrs.enums import ActionType, Severity

IDEMPOTENT_METHODS = frozenset({"GET", "PUT", "DELETE"})
RESPONSE_EXCERPT = 2048


class TransientActionError(Exception):
    """This attempt failed in a way that another attempt may not (5xx, timeout, refused)."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        rate_limited: bool = False,
        status_code: int | None = None,
        response: str | None = None,
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.rate_limited = rate_limited
        self.status_code = status_code
        self.response = response


@dataclass(frozen=True)
class Executed:
    succeeded: bool
    summary: str
    result: dict[str, Any]
    error: str | None = None
    status_code: int | None = None
    response: str | None = None


@dataclass(frozen=True)
class Replay:
    """One affected request to send again, exactly as it failed, under its stable key."""

    idempotency_key: str
    method: str
    path: str
    body: Any
    # The connection's credentials are merged in: never in a repr, a log line or an error.
    headers: dict[str, str] = field(repr=False)
    vendor_base_url: str | None
    timeout: float


@dataclass(frozen=True)
class IncidentBrief:
    incident_id: uuid.UUID
    tenant_id: uuid.UUID
    tenant_name: str
    workflow_name: str
    title: str
    signature: str
    severity: Severity
    event_count: int
    first_seen_at: datetime
    last_seen_at: datetime
    status: str


@dataclass(frozen=True)
class ExecutionContext:
    """What one attempt needs. A retry needs only its request and vendor; the hand-over
    actions also get the incident, the tenant's settings and the decision they report."""

    action_id: uuid.UUID
    parameters: dict[str, Any]
    incident: IncidentBrief | None = None
    settings: TenantSettings = field(default_factory=TenantSettings)
    decision: dict[str, Any] = field(default_factory=dict)
    # What on-call needs: the affected requests (a sample), their counts, where to look.
    requests: list[dict[str, Any]] = field(default_factory=list)
    request_counts: dict[str, int] = field(default_factory=dict)
    error: dict[str, Any] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    shadow: bool = False


class Executor(Protocol):
    """A hand-over to humans (escalate, manual); one attempt per call."""

    action_type: ActionType

    async def execute(self, context: ExecutionContext) -> Executed: ...


def _excerpt(response: httpx.Response) -> str:
    return response.text[:RESPONSE_EXCERPT]


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: let the retry policy's backoff decide


async def _send(http: httpx.AsyncClient, request: httpx.Request, what: str) -> httpx.Response:
    try:
        return await http.send(request)
    except httpx.TimeoutException as exc:
        raise TransientActionError(f"{what}: timed out ({type(exc).__name__})") from exc
    except httpx.TransportError as exc:
        raise TransientActionError(f"{what}: {type(exc).__name__}: {exc}") from exc


def _judge(response: httpx.Response, what: str) -> Executed:
    """2xx succeeds; 408, 429 and 5xx are transient; anything else fails for good."""
    status = response.status_code
    excerpt = _excerpt(response)
    result = {"status": status, "body": excerpt}
    if 200 <= status < 300:
        return Executed(
            True, f"{what}: HTTP {status}", result, status_code=status, response=excerpt
        )
    if status in (408, 429) or status >= 500:
        raise TransientActionError(
            f"{what}: HTTP {status}",
            retry_after=_retry_after(response),
            rate_limited=status == 429,
            status_code=status,
            response=excerpt,
        )
    return Executed(
        False,
        f"{what}: HTTP {status}",
        result,
        error=f"HTTP {status}: {excerpt[:200]}",
        status_code=status,
        response=excerpt,
    )


class RequestCannotBeSent(Exception):
    """The request can never go out as it is (e.g. a header value HTTP cannot carry)."""


class RetryExecutor:
    """Send an affected request again to its vendor, with its stable ``Idempotency-Key``.

    The key is derived from the tenant and the failed event (never from an action or a decision),
    so every attempt, re-analysis, approval and restart sends the same key, and a vendor that
    honours it applies the request at most once. The HTTP timeout is the caller's (bounded by
    the activity's timeout), so an attempt is over before another may start.
    """

    action_type = ActionType.RETRY

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http

    @staticmethod
    def reversible(method: str | None, declared: bool | None) -> bool:
        """Replaying cannot apply a change twice: an idempotent HTTP method, or the tenant said
        so (``payload.retry.reversible``)."""
        if declared is not None:
            return declared
        return method in IDEMPOTENT_METHODS

    async def send(self, replay: Replay) -> Executed:
        if not replay.vendor_base_url:
            return Executed(False, "no vendor base_url", {}, error="vendor has no base_url")
        url = replay.vendor_base_url.rstrip("/") + replay.path
        headers = {**replay.headers, "Idempotency-Key": replay.idempotency_key}
        what = f"{replay.method} {replay.path}"
        try:
            request = self._http.build_request(
                replay.method,
                url,
                headers=headers,
                json=replay.body if replay.body is not None and replay.method != "GET" else None,
                timeout=replay.timeout,
            )
        except (UnicodeEncodeError, ValueError, TypeError, httpx.InvalidURL) as exc:
            raise RequestCannotBeSent(f"{what}: cannot be sent: {exc}") from exc
        # httpx's timeout bounds each read, not the call: a vendor trickling its answer a byte
        # at a time would outlive the attempt's lease. This is the whole call's deadline.
        try:
            async with asyncio.timeout(replay.timeout):
                response = await _send(self._http, request, what)
        except TimeoutError as exc:
            raise TransientActionError(f"{what}: no answer within {replay.timeout:g}s") from exc
        return _judge(response, what)


class EscalateExecutor:
    """Post a PagerDuty Events API v2 ``trigger`` to the tenant's escalation webhook.

    ``dedup_key`` is the incident id, so repeated attempts and later escalations of the same
    incident update one alert instead of paging again.
    """

    action_type = ActionType.ESCALATE

    def __init__(self, http: httpx.AsyncClient, timeout: float = 10.0) -> None:
        self._http = http
        self._timeout = timeout

    @staticmethod
    def body(context: ExecutionContext, *, kind: str = "escalation") -> dict[str, Any]:
        """What on-call needs to act without opening awfdrs first: the error, the affected
        requests (with their idempotency keys and correlation ids), counts, the decision and
        where to look. In shadow mode the page is delivered and says so."""
        incident = context.incident
        assert incident is not None, "an escalation is about an incident"
        shadow = "[shadow] " if context.shadow else ""
        manual = "manual work needed: " if kind == "manual" else ""
        summary = f"{shadow}[{incident.tenant_name}/{incident.workflow_name}] {manual}"
        summary += incident.title
        return {
            "routing_key": context.settings.escalation_routing_key or "",
            "event_action": "trigger",
            "dedup_key": str(incident.incident_id),
            "client": "awfdrs",
            **({"client_url": context.links["console"]} if "console" in context.links else {}),
            "payload": {
                "summary": summary[:1024],
                "severity": incident.severity.value,
                "source": f"awfdrs/{incident.tenant_name}/{incident.workflow_name}",
                "component": incident.workflow_name,
                "group": incident.tenant_name,
                "class": context.decision.get("classification") or "unknown",
                "custom_details": {
                    "incident_id": str(incident.incident_id),
                    "tenant_id": str(incident.tenant_id),
                    "signature": incident.signature,
                    "status": incident.status,
                    "kind": kind,
                    "shadow": context.shadow,
                    "error": context.error,
                    "event_count": incident.event_count,
                    "first_seen_at": incident.first_seen_at.isoformat(),
                    "last_seen_at": incident.last_seen_at.isoformat(),
                    "requests": context.requests,
                    "request_counts": context.request_counts,
                    "decision": context.decision,
                    "where_to_look": context.links,
                },
            },
        }

    @staticmethod
    def episode_body(
        settings: TenantSettings,
        *,
        tenant_name: str,
        tenant_id: uuid.UUID,
        episode_id: uuid.UUID,
        incident_count: int,
        threshold: int,
        window_seconds: float,
        first_incident: uuid.UUID,
    ) -> dict[str, Any]:
        """One trigger for a whole systemic-failure episode, instead of one per incident."""
        return {
            "routing_key": settings.escalation_routing_key or "",
            "event_action": "trigger",
            "dedup_key": f"awfdrs-fuse-{episode_id}",
            "client": "awfdrs",
            "payload": {
                "summary": f"[{tenant_name}] systemic failure: {incident_count} incidents opened "
                f"within {window_seconds:g}s (more than {threshold}); automation stopped",
                "severity": Severity.CRITICAL.value,
                "source": f"awfdrs/{tenant_name}",
                "group": tenant_name,
                "class": "systemic-failure",
                "custom_details": {
                    "tenant_id": str(tenant_id),
                    "episode_id": str(episode_id),
                    "incident_count": incident_count,
                    "threshold": threshold,
                    "window_seconds": window_seconds,
                    "first_held_incident": str(first_incident),
                },
            },
        }

    async def post(self, settings: TenantSettings, body: dict[str, Any]) -> Executed:
        url = settings.escalation_webhook_url
        if url is None:
            return Executed(
                False,
                "no escalation webhook configured",
                {},
                error="tenant setting escalation_webhook_url is not set",
            )
        request = self._http.build_request("POST", str(url), json=body, timeout=self._timeout)
        return _judge(await _send(self._http, request, "escalation"), "escalation")

    async def execute(self, context: ExecutionContext) -> Executed:
        return await self.post(context.settings, self.body(context))


class ManualExecutor(EscalateExecutor):
    """Hand over for manual work: the same page as an escalation, marked as manual work, so a
    human hears of it; without a webhook the incident waits in the operators' queue."""

    action_type = ActionType.MANUAL

    async def execute(self, context: ExecutionContext) -> Executed:
        return await self.post(context.settings, self.body(context, kind="manual"))


def build_executors(http: httpx.AsyncClient) -> dict[ActionType, Executor]:
    """The hand-over executors by action type; retries go through :class:`RetryExecutor`."""
    executors: list[Executor] = [EscalateExecutor(http), ManualExecutor(http)]
    return {e.action_type: e for e in executors}
