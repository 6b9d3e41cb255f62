"""Executors: retry through the vendor, escalate to the tenant's pager, hand over for manual work.

An executor performs one attempt. It returns an :class:`Executed` when the attempt has a final
answer (success or a permanent failure) and raises :class:`TransientActionError` when trying
again later may work; Temporal owns the retrying.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import httpx

from awfdrs.contracts import RetrySpec, TenantSettings
from awfdrs.enums import ActionType, Severity

IDEMPOTENT_METHODS = frozenset({"GET", "PUT", "DELETE"})
RESPONSE_EXCERPT = 2048


class TransientActionError(Exception):
    """This attempt failed in a way that another attempt may not (5xx, timeout, refused)."""

    def __init__(
        self, message: str, *, retry_after: float | None = None, rate_limited: bool = False
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.rate_limited = rate_limited


@dataclass(frozen=True)
class Executed:
    succeeded: bool
    summary: str
    result: dict[str, Any]
    error: str | None = None


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
    vendor_base_url: str | None = None
    incident: IncidentBrief | None = None
    settings: TenantSettings = field(default_factory=TenantSettings)
    decision: dict[str, Any] = field(default_factory=dict)


class Executor(Protocol):
    action_type: ActionType

    def is_reversible(self, parameters: dict[str, Any]) -> bool: ...

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
    result = {"status": status, "body": _excerpt(response)}
    if 200 <= status < 300:
        return Executed(True, f"{what}: HTTP {status}", result)
    if status in (408, 429) or status >= 500:
        raise TransientActionError(
            f"{what}: HTTP {status}",
            retry_after=_retry_after(response),
            rate_limited=status == 429,
        )
    return Executed(
        False, f"{what}: HTTP {status}", result, error=f"HTTP {status}: {_excerpt(response)[:200]}"
    )


class RetryExecutor:
    """Re-send the failed request to the vendor, with ``Idempotency-Key: <action id>``.

    The key is the same on every attempt of the action, so a vendor that honours it applies the
    request at most once however often Temporal retries. Reversible when replaying cannot apply a
    change twice: an idempotent HTTP method, or the tenant said so (``payload.retry.reversible``).
    """

    action_type = ActionType.RETRY

    def __init__(self, http: httpx.AsyncClient, timeout: float = 10.0) -> None:
        self._http = http
        self._timeout = timeout

    def is_reversible(self, parameters: dict[str, Any]) -> bool:
        spec = RetrySpec.model_validate(parameters["request"])
        if spec.reversible is not None:
            return spec.reversible
        return spec.method in IDEMPOTENT_METHODS

    async def execute(self, context: ExecutionContext) -> Executed:
        if not context.vendor_base_url:
            return Executed(False, "no vendor base_url", {}, error="vendor has no base_url")
        spec = RetrySpec.model_validate(context.parameters["request"])
        url = context.vendor_base_url.rstrip("/") + spec.path
        headers = {**spec.headers, "Idempotency-Key": str(context.action_id)}
        request = self._http.build_request(
            spec.method,
            url,
            headers=headers,
            json=spec.body if spec.body is not None and spec.method != "GET" else None,
            timeout=self._timeout,
        )
        return _judge(await _send(self._http, request, f"{spec.method} {spec.path}"), "retry")


class EscalateExecutor:
    """Post a PagerDuty Events API v2 ``trigger`` to the tenant's escalation webhook.

    ``dedup_key`` is the incident id, so repeated attempts and later escalations of the same
    incident update one alert instead of paging again.
    """

    action_type = ActionType.ESCALATE

    def __init__(self, http: httpx.AsyncClient, timeout: float = 10.0) -> None:
        self._http = http
        self._timeout = timeout

    def is_reversible(self, parameters: dict[str, Any]) -> bool:
        return True  # a notification changes nothing in the tenant's systems

    @staticmethod
    def body(context: ExecutionContext) -> dict[str, Any]:
        incident = context.incident
        assert incident is not None, "an escalation is about an incident"
        return {
            "routing_key": context.settings.escalation_routing_key or "",
            "event_action": "trigger",
            "dedup_key": str(incident.incident_id),
            "client": "awfdrs",
            "payload": {
                "summary": f"[{incident.tenant_name}/{incident.workflow_name}] {incident.title}"[
                    :1024
                ],
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
                    "event_count": incident.event_count,
                    "first_seen_at": incident.first_seen_at.isoformat(),
                    "last_seen_at": incident.last_seen_at.isoformat(),
                    "decision": context.decision,
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


class ManualExecutor:
    """Record the hand-over; the incident then waits for an operator's ``resolve``."""

    action_type = ActionType.MANUAL

    def is_reversible(self, parameters: dict[str, Any]) -> bool:
        return True

    async def execute(self, context: ExecutionContext) -> Executed:
        note = context.parameters.get("note") or "handed over for manual remediation"
        return Executed(True, "handed over to an operator", {"handed_over": True, "note": note})


def build_executors(http: httpx.AsyncClient) -> dict[ActionType, Executor]:
    executors: list[Executor] = [RetryExecutor(http), EscalateExecutor(http), ManualExecutor()]
    return {e.action_type: e for e in executors}
