"""The formats senders already speak, turned into native events (pure: no I/O).

Each adapter returns one item per input event, in input order: a native event (a dict that the
ingest core validates like any other), or a :class:`~awfdrs.jsonbatch.Undecodable` carrying the
reason that event is refused on its own. A fault of the request as a whole raises
:class:`~awfdrs.api.errors.ApiError` (400) naming what is wrong. The tenant never comes from
the body: the ingest core is called with the key's tenant, ``implied_tenant=True``.

``workflow_id`` is left as the sender named it (a workflow's name or id); the caller resolves
names with :func:`resolve_workflows` once it has read the tenant's workflows.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from awfdrs.api.errors import ApiError
from awfdrs.contracts.events import EVENT_TYPE_PATTERN
from awfdrs.jsonbatch import Item, MalformedJson, Undecodable

Native = dict[str, Any] | Undecodable
_EVENT_TYPE = re.compile(EVENT_TYPE_PATTERN)
_FRACTION = re.compile(r"(\.\d{6})\d+")  # Go writes nanoseconds; Python reads microseconds
_SLUG = re.compile(r"[^a-z0-9_]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
SEVERITIES = frozenset({"info", "warning", "error", "critical"})


def reject(index: int, reason: str) -> Undecodable:
    return Undecodable(f"event {index}: {reason}", "", 0)


def malformed(error: MalformedJson) -> ApiError:
    return ApiError(400, "malformed_json", str(error))


def slug(text: str) -> str:
    """``HighErrorRate`` → ``high_error_rate``: a name as an event-type segment."""
    lowered = _CAMEL.sub("_", text.strip()).lower()
    return _SLUG.sub("_", lowered).strip("_")[:100] or "unnamed"


def _minute(now: datetime, *, end: bool) -> datetime:
    """The minute ``now`` falls in (its end with ``end``): a stand-in occurrence time for a
    sender that gives none, identical for resends within that minute, so they stay duplicates
    (the occurrence is part of what makes two deliveries the same event)."""
    start = now.astimezone(UTC).replace(second=0, microsecond=0)
    return start + timedelta(minutes=1) if end else start


# --- native ---------------------------------------------------------------------------------


def native(fields: Mapping[str, Any], items: Sequence[Item], tenant_id: uuid.UUID) -> list[Item]:
    """``{"events": [...]}``; ``tenant_id`` may be given at the top, and must be the key's."""
    for name in fields:
        if name != "tenant_id":
            raise ApiError(
                400, "bad_request", f'{name}: unknown member; the body is {{"events": [...]}}'
            )
    if "tenant_id" in fields and str(fields["tenant_id"]).lower() != str(tenant_id):
        raise ApiError(
            403,
            "wrong_tenant",
            "tenant_id: names another tenant than the API key's; nothing was written",
        )
    return list(items)


# --- CloudEvents 1.0 ------------------------------------------------------------------------

CE_REQUIRED = ("specversion", "id", "source", "type")


def ce_idempotency_key(source: str, event_id: str) -> str:
    """(source, id) identifies a CloudEvent; hashed, as both may be long and hold any text."""
    # json.dumps escapes what UTF-8 cannot carry (a lone surrogate) instead of failing on it.
    digest = hashlib.sha256(json.dumps([source, event_id]).encode()).hexdigest()
    return f"ce:{digest}"


def cloudevent(index: int, event: Any, *, label: str = "") -> Native:
    """One CloudEvent (structured form, attributes as members) as a native event.

    ``type`` becomes ``event_type`` unchanged (its last dot-separated segment is the outcome),
    ``time`` ``occurred_at``, ``data`` the payload; the extensions ``workflow`` (name or id),
    ``correlationid`` and ``severity`` fill the fields of the same name.
    """
    if not isinstance(event, dict):
        return reject(index, "a CloudEvent must be a JSON object")
    for attribute in CE_REQUIRED:
        value = event.get(attribute)
        if not isinstance(value, str) or not value:
            what = "is missing" if value is None else "must be a non-empty string"
            return reject(index, f"{label}{attribute}: required CloudEvents attribute {what}")
    if event["specversion"] != "1.0":
        return reject(index, f"{label}specversion: {event['specversion']!r} is not 1.0")
    if not _EVENT_TYPE.match(event["type"]):
        return reject(
            index,
            f"{label}type: becomes the event_type, so it must match {EVENT_TYPE_PATTERN} "
            "(lowercase; the last segment is the outcome, e.g. com.acme.payment.failed)",
        )
    time_ = event.get("time")
    if not isinstance(time_, str) or not time_:
        return reject(
            index,
            f"{label}time: required by awfdrs (it becomes occurred_at, and a resend must "
            "repeat it to be recognised as a duplicate)",
        )
    workflow = event.get("workflow")
    if not isinstance(workflow, str) or not workflow:
        return reject(
            index,
            f"{label}workflow: extension attribute naming the workflow (name or id) is missing",
        )
    if "data_base64" in event:
        return reject(index, f"{label}data_base64: binary data is not supported; send JSON data")
    content_type = event.get("datacontenttype")
    if isinstance(content_type, str) and not is_json(content_type):
        return reject(index, f"{label}datacontenttype: {content_type!r} is not JSON")
    data = event.get("data", {})
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return reject(index, f"{label}data: must be a JSON object (it becomes the payload)")
    native_event: dict[str, Any] = {
        "workflow_id": workflow,
        "event_type": event["type"],
        "idempotency_key": ce_idempotency_key(event["source"], event["id"]),
        "occurred_at": time_,
        "payload": data,
    }
    for extension, field in (("correlationid", "correlation_id"), ("severity", "severity")):
        if extension in event:
            native_event[field] = event[extension]
    return native_event


def is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json") or media == "text/json"


def cloudevent_binary(headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
    """Binary mode: attributes in ``ce-*`` headers, ``data`` is the body (JSON)."""
    from awfdrs import jsonbatch

    event: dict[str, Any] = {}
    for name, value in headers.items():
        lowered = name.lower()
        if lowered.startswith("ce-") and len(lowered) > 3:
            event[lowered[3:]] = value
    missing = [a for a in CE_REQUIRED if not event.get(a)]
    if missing:
        raise ApiError(
            400,
            "missing_attribute",
            f"ce-{missing[0]}: required CloudEvents attribute is missing (binary mode carries "
            "the attributes in ce-* headers)",
        )
    if body.strip():
        try:
            event["data"] = jsonbatch.decode_one(body)
        except MalformedJson as exc:
            raise malformed(exc) from None
    return event


def single(event: Native) -> Native:
    """Structured and binary modes carry one event: its refusal is the request's (400)."""
    if isinstance(event, Undecodable):
        reason = event.reason.removeprefix("event 0: ")
        error = "missing_attribute" if "required" in reason else "invalid_event"
        raise ApiError(400, error, reason)
    return event


# --- Prometheus Alertmanager webhook (version 4) --------------------------------------------


def alertmanager(body: Any) -> list[Any]:
    """The alerts of a webhook payload; 400 when it is not one (Alertmanager sends version 4)."""
    if not isinstance(body, dict):
        raise ApiError(400, "bad_request", "body: must be Alertmanager's webhook JSON object")
    version = body.get("version")
    if version != "4":
        raise ApiError(400, "bad_request", f'version: {version!r}; only version "4" is known')
    alerts = body.get("alerts")
    if not isinstance(alerts, list):
        raise ApiError(400, "bad_request", "alerts: must be an array")
    return alerts


def alert(index: int, item: Any, workflow: str | None) -> Native:
    """One alert: firing is a failure, resolved the matching success.

    Key: fingerprint, startsAt and status, so Alertmanager's resends and the copies of an HA
    pair are duplicates. The correlation id is the fingerprint: the resolved notification is
    evidence for exactly its own firing alert. ``endsAt`` of a firing alert moves on every
    resend, so it is not stored.
    """
    if not isinstance(item, dict):
        return reject(index, "alerts[]: must be an object")
    label = f"alerts[{index}]."
    labels = item.get("labels")
    if not isinstance(labels, dict):
        return reject(index, f"{label}labels: must be an object")
    for name in ("status", "fingerprint", "startsAt"):
        if not isinstance(item.get(name), str) or not item[name]:
            return reject(index, f"{label}{name}: missing")
    status = item["status"]
    if status not in ("firing", "resolved"):
        return reject(index, f"{label}status: {status!r} is neither firing nor resolved")
    workflow = labels.get("workflow") if isinstance(labels.get("workflow"), str) else workflow
    if not workflow:
        return reject(
            index, f"{label}labels.workflow: missing (or give ?workflow=NAME in the webhook URL)"
        )
    alertname = labels.get("alertname") if isinstance(labels.get("alertname"), str) else None
    operation = f"alert.{slug(alertname or 'unnamed')}"
    firing = status == "firing"
    at = item["startsAt"] if firing else item.get("endsAt")
    if not isinstance(at, str) or at.startswith("0001-"):
        return reject(index, f"{label}endsAt: a resolved alert needs its end time")
    # Annotations are left out of the event: Prometheus re-templates them ({{ $value }}) at
    # every evaluation and Alertmanager resends the whole group, so with them every resend of
    # one alert would be a conflict instead of a duplicate. The labels identify it.
    details: dict[str, Any] = {
        "labels": labels,
        "startsAt": item["startsAt"],
        "fingerprint": item["fingerprint"],
        "generatorURL": item.get("generatorURL"),
    }
    event: dict[str, Any] = {
        "workflow_id": workflow,
        "event_type": f"{operation}.failed" if firing else f"{operation}.recovered",
        "idempotency_key": f"am:{item['fingerprint']}:{item['startsAt']}:{status}"[:255],
        "occurred_at": _FRACTION.sub(r"\1", at),
        "correlation_id": f"am:{item['fingerprint']}"[:255],
        "payload": {"alert": details},
    }
    if firing:
        event["payload"]["error"] = {"code": (alertname or "alert")[:128]}
        severity = str(labels.get("severity", "")).lower()
        if severity in SEVERITIES:
            event["severity"] = severity
    else:
        details["endsAt"] = item.get("endsAt")
    return event


# --- PagerDuty Events API v2 ----------------------------------------------------------------

PD_ACTIONS = ("trigger", "acknowledge", "resolve")


@dataclass(frozen=True)
class PagerDutyEvent:
    routing_key: str
    dedup_key: str
    event: dict[str, Any]


def pd_invalid(*errors: str) -> ApiError:
    # PagerDuty's own answer to an invalid event is a 400 with this shape; keeping it lets
    # tools that parse it show the reason.
    return ApiError(
        400,
        "invalid event",
        "Event object is invalid",
        extra={"status": "invalid event", "errors": list(errors)},
    )


def pagerduty(
    body: Any, workflow: str | None, now: datetime, fallback_key: str | None = None
) -> PagerDutyEvent:
    """One PagerDuty Events v2 event. ``routing_key`` is an awfdrs ingest key (or the bearer
    key is used when it is absent); ``dedup_key`` is the correlation id that lets ``resolve``
    meet its ``trigger``. Without a ``dedup_key``, a trigger gets one derived from its content,
    so a resend is a duplicate rather than a second alert (PagerDuty itself would make up a
    random one)."""
    if not isinstance(body, dict):
        raise pd_invalid("body must be a JSON object")
    routing_key = body.get("routing_key") or fallback_key
    if not isinstance(routing_key, str) or not routing_key:
        raise pd_invalid("'routing_key' is missing or blank")
    action = body.get("event_action")
    if action not in PD_ACTIONS:
        raise pd_invalid("'event_action' must be one of trigger, acknowledge or resolve")
    dedup_key = body.get("dedup_key")
    if dedup_key is not None and (not isinstance(dedup_key, str) or not 0 < len(dedup_key) <= 255):
        raise pd_invalid("'dedup_key' must be a string of 1 to 255 characters")
    payload = body.get("payload")
    if action == "trigger":
        if not isinstance(payload, dict):
            raise pd_invalid("'payload' is missing for a trigger event")
        for name in ("summary", "source", "severity"):
            if not isinstance(payload.get(name), str) or not payload[name]:
                raise pd_invalid(f"'payload.{name}' is missing or blank")
        if payload["severity"] not in SEVERITIES:
            raise pd_invalid("'payload.severity' must be one of critical, error, warning, info")
        details = payload.get("custom_details")
        if workflow is None and isinstance(details, dict):
            named = details.get("workflow")
            workflow = named if isinstance(named, str) else None
        # ASCII-escaped (json.dumps's default), so text UTF-8 cannot carry hashes instead of
        # failing; the ingest core then rejects such an event with its reason.
        content = json.dumps(
            {k: v for k, v in body.items() if k != "routing_key"},
            sort_keys=True,
            separators=(",", ":"),
        )
        content_hash = hashlib.sha256(content.encode()).hexdigest()
        dedup_key = dedup_key or f"awfdrs-{content_hash[:32]}"
    elif dedup_key is None:
        raise pd_invalid(f"'dedup_key' is required for a {action} event")
    if not workflow:
        raise pd_invalid(
            "workflow: give ?workflow=NAME in the URL (or payload.custom_details.workflow in a "
            "trigger); resolve and acknowledge events carry no payload to name it"
        )
    assert isinstance(dedup_key, str)
    event: dict[str, Any] = {"workflow_id": workflow, "correlation_id": dedup_key}
    if action == "trigger":
        assert isinstance(payload, dict)
        timestamp = payload.get("timestamp")
        # Without a timestamp the minute stands in for it, and is then part of the key: a
        # resend in the next minute is a new sighting, not a conflict with the first.
        occurred = timestamp if isinstance(timestamp, str) else _minute(now, end=False).isoformat()
        when = "" if isinstance(timestamp, str) else f":{occurred[:16]}"
        event |= {
            "event_type": "pagerduty.failed",
            "idempotency_key": f"pd:{content_hash[:32]}:trigger:{_digest(dedup_key)}{when}",
            "occurred_at": occurred,
            "severity": payload["severity"],
            "payload": {
                "error": {
                    **(
                        {"code": payload["class"][:128]}
                        if isinstance(payload.get("class"), str)
                        else {}
                    ),
                    "message": payload["summary"][:4096],
                },
                "pagerduty": {
                    k: body.get(k) for k in ("client", "client_url", "links", "images") if k in body
                }
                | {"payload": payload, "dedup_key": dedup_key},
            },
        }
    else:
        # No time and no content: the minute's end stands in for the occurrence, so resends
        # within the minute are duplicates and the success is never older than its trigger.
        at = _minute(now, end=True)
        stamp = at.strftime("%Y%m%dT%H%M")
        event |= {
            "event_type": "pagerduty.recovered"
            if action == "resolve"
            else "pagerduty.acknowledged",
            "idempotency_key": f"pd:{action}:{stamp}:{_digest(dedup_key)}",
            "occurred_at": at.isoformat(),
            "payload": {"pagerduty": {"event_action": action, "dedup_key": dedup_key}},
        }
    return PagerDutyEvent(routing_key, dedup_key, event)


def _digest(dedup_key: str) -> str:
    """A dedup key in an idempotency key: hashed, so two long keys sharing a prefix never meet
    by truncation."""
    return hashlib.sha256(dedup_key.encode("utf-8", "surrogatepass")).hexdigest()[:40]


# --- workflow names -------------------------------------------------------------------------


def workflow_refs(events: Sequence[Native]) -> set[str]:
    """The workflow references (names or ids as sent) that are not UUIDs."""
    refs: set[str] = set()
    for event in events:
        if isinstance(event, dict):
            ref = event.get("workflow_id")
            if isinstance(ref, str) and not _is_uuid(ref):
                refs.add(ref)
    return refs


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def resolve_workflows(events: Sequence[Native], names: Mapping[str, uuid.UUID]) -> list[Native]:
    """Names replaced by ids; an event naming a workflow the tenant does not have is refused
    on its own, naming it (an id is checked by the ingest core, as for native events)."""
    resolved: list[Native] = []
    for index, event in enumerate(events):
        if isinstance(event, dict):
            ref = event.get("workflow_id")
            if isinstance(ref, str) and not _is_uuid(ref):
                found = names.get(ref)
                if found is None:
                    shown = ref if len(ref) <= 80 else ref[:79] + "…"
                    resolved.append(
                        reject(index, f"workflow: {shown!r} is not a workflow of this tenant")
                    )
                    continue
                event = {**event, "workflow_id": str(found)}
        resolved.append(event)
    return resolved


__all__ = [
    "Native",
    "PagerDutyEvent",
    "alert",
    "alertmanager",
    "ce_idempotency_key",
    "cloudevent",
    "cloudevent_binary",
    "is_json",
    "native",
    "pagerduty",
    "resolve_workflows",
    "single",
    "slug",
    "workflow_refs",
]
