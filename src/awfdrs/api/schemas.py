"""What the edge answers, and the request bodies as its OpenAPI document describes them."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel

from awfdrs.contracts import IncidentChange, IngestResult, Outcome


def _sendable(text: str | None) -> str | None:
    """Text echoed from the sender as valid UTF-8: a rejected key may hold a lone surrogate,
    which JSON cannot carry; it is shown escaped (``\\ud800``) instead of failing the answer."""
    if text is None or text.isascii():
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


class EventOutcome(BaseModel):
    """One input event's fate. ``index`` is its position in the request."""

    index: int
    idempotency_key: str | None
    outcome: Outcome
    reason: str | None = None


class IngestResponse(BaseModel):
    """Every event's outcome in input order, and the incidents the request opened or counted on.

    Everything accepted is committed (events, incidents and the outbox that starts their
    workflows) before this answer is sent.
    """

    tenant_id: uuid.UUID
    accepted: int
    duplicate: int
    conflict: int
    rejected: int
    outcomes: list[EventOutcome]
    incidents: list[IncidentChange]

    @classmethod
    def of(cls, result: IngestResult) -> IngestResponse:
        return cls(
            tenant_id=result.tenant_id,
            accepted=result.count(Outcome.ACCEPTED),
            duplicate=result.count(Outcome.DUPLICATE),
            conflict=result.count(Outcome.CONFLICT),
            rejected=result.count(Outcome.REJECTED),
            outcomes=[
                EventOutcome(
                    index=i,
                    idempotency_key=_sendable(o.idempotency_key),
                    outcome=o.outcome,
                    reason=_sendable(o.reason),
                )
                for i, o in enumerate(result.outcomes)
            ],
            incidents=result.incidents,
        )


class PagerDutyResponse(BaseModel):
    """PagerDuty's own 202 answer, with awfdrs's outcome beside it."""

    status: Literal["success"]
    message: str
    dedup_key: str
    outcome: EventOutcome
    incidents: list[IncidentChange]


class Check(BaseModel):
    ok: bool
    detail: str


class Health(BaseModel):
    """``ok``: both answer; ``degraded``: PostgreSQL answers (ingest works), Temporal does not
    (incident workflows start once it is back); ``unavailable``: PostgreSQL does not answer."""

    status: Literal["ok", "degraded", "unavailable"]
    postgres: Check
    temporal: Check


# --- request bodies, for the OpenAPI document (bodies are parsed by jsonbatch, not here) -------

_TIME = {"type": "string", "format": "date-time"}
_EVENT: dict[str, Any] = {
    "type": "object",
    "description": "One event; the tenant is the API key's (tenant_id may be left out).",
    "required": ["workflow_id", "event_type", "idempotency_key", "occurred_at"],
    "properties": {
        "tenant_id": {"type": "string", "format": "uuid"},
        "workflow_id": {"type": "string", "format": "uuid"},
        "event_type": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_.-]{0,254}$"},
        "idempotency_key": {"type": "string", "minLength": 1, "maxLength": 255},
        "occurred_at": _TIME,
        "correlation_id": {"type": "string", "maxLength": 255},
        "severity": {"type": "string", "enum": ["info", "warning", "error", "critical"]},
        "payload": {"type": "object"},
    },
}
NATIVE_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["events"],
    "properties": {"events": {"type": "array", "maxItems": 1000, "items": _EVENT}},
}
_CLOUDEVENT: dict[str, Any] = {
    "type": "object",
    "required": ["specversion", "id", "source", "type", "time", "workflow"],
    "properties": {
        "specversion": {"type": "string", "enum": ["1.0"]},
        "id": {"type": "string", "minLength": 1},
        "source": {"type": "string", "minLength": 1},
        "type": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_.-]{0,254}$"},
        "time": _TIME,
        "workflow": {"type": "string", "minLength": 1, "description": "workflow name or id"},
        "correlationid": {"type": "string"},
        "severity": {"type": "string"},
        "datacontenttype": {"type": "string"},
        "data": {"type": "object"},
    },
}
CLOUDEVENTS_CONTENT: dict[str, Any] = {
    "application/cloudevents+json": {"schema": _CLOUDEVENT},
    "application/cloudevents-batch+json": {
        "schema": {"type": "array", "maxItems": 1000, "items": _CLOUDEVENT}
    },
    "application/json": {
        "schema": {"type": "object", "description": "binary mode: data, with ce-* headers"}
    },
}
_ALERT: dict[str, Any] = {
    "type": "object",
    "required": ["status", "labels", "startsAt", "fingerprint"],
    "properties": {
        "status": {"type": "string", "enum": ["firing", "resolved"]},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
        "startsAt": _TIME,
        "endsAt": _TIME,
        "generatorURL": {"type": "string"},
        "fingerprint": {"type": "string"},
    },
}
ALERTMANAGER_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["version", "alerts"],
    "properties": {
        "version": {"type": "string", "enum": ["4"]},
        "status": {"type": "string"},
        "receiver": {"type": "string"},
        "groupKey": {"type": "string"},
        "alerts": {"type": "array", "maxItems": 1000, "items": _ALERT},
    },
}
PAGERDUTY_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["routing_key", "event_action"],
    "properties": {
        "routing_key": {"type": "string", "description": "an awfdrs ingest key"},
        "event_action": {"type": "string", "enum": ["trigger", "acknowledge", "resolve"]},
        "dedup_key": {"type": "string", "maxLength": 255},
        "payload": {
            "type": "object",
            "required": ["summary", "source", "severity"],
            "properties": {
                "summary": {"type": "string"},
                "source": {"type": "string"},
                "severity": {"type": "string", "enum": ["critical", "error", "warning", "info"]},
                "timestamp": _TIME,
                "component": {"type": "string"},
                "group": {"type": "string"},
                "class": {"type": "string"},
                "custom_details": {"type": "object"},
            },
        },
    },
}
