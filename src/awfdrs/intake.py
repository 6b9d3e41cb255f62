"""The pure half of ingest: validate, fingerprint and group a batch before any I/O.

Kept free of database and Temporal code so the rules can be tested exhaustively and the
activity's transaction holds only what needs the database.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from awfdrs.contracts import (
    EventIn,
    EventResult,
    Outcome,
    canonical_json,
    describe_validation_error,
)
from awfdrs.db.repositories import FailureGroup, NewEvent
from awfdrs.enums import EventOutcome, Severity
from awfdrs.fingerprint import FINGERPRINT_VERSION, signature, split_event_type

TITLE_LIMIT = 500


@dataclass(frozen=True, slots=True)
class Accepted:
    """A valid event, fingerprinted, with what its incident needs."""

    index: int
    event: EventIn
    row: NewEvent
    operation: str
    title: str


@dataclass
class PreparedBatch:
    """Per input position either a final result or an event to try to store."""

    results: list[EventResult | None]
    accepted: list[Accepted] = field(default_factory=list)
    # Later deliveries of a key already in this batch: index → the first one's index.
    repeats: dict[int, int] = field(default_factory=dict)

    @property
    def workflow_ids(self) -> set[uuid.UUID]:
        return {a.event.workflow_id for a in self.accepted}


def payload_hash(event: EventIn, payload_json: str) -> str:
    """What "the same event" means: every field the sender set except the key itself.

    The payload enters as its canonical text, already serialised for storage.
    """
    # Unit-separated rather than JSON: the fields cannot contain U+001F (NUL and control
    # characters are refused), and this runs once per event on the hot path.
    header = "\x1f".join(
        (
            str(event.workflow_id),
            event.event_type,
            event.occurred_at.isoformat(),
            event.correlation_id or "\x00",
            event.severity.value if event.severity else "\x00",
        )
    )
    digest = hashlib.sha256(header.encode())
    digest.update(b"\x1e")
    digest.update(payload_json.encode())
    return digest.hexdigest()


def _title(operation: str, event: EventIn) -> str:
    error = event.payload.error
    detail = (error.code or error.message) if error else None
    title = f"{operation} failed: {detail}" if detail else f"{operation} failed"
    return title[:TITLE_LIMIT]


def _reject(key: object, reason: str) -> EventResult:
    return EventResult(
        idempotency_key=key if isinstance(key, str) else None,
        outcome=Outcome.REJECTED,
        reason=reason,
    )


def prepare(tenant_id: uuid.UUID, raw_events: Iterable[object], now: datetime) -> PreparedBatch:
    """Validate each event on its own and fingerprint the failures."""
    raws = list(raw_events)
    batch = PreparedBatch(results=[None] * len(raws))
    first_by_key: dict[str, Accepted] = {}
    for index, raw in enumerate(raws):
        if not isinstance(raw, dict):
            batch.results[index] = _reject(None, "event: must be a JSON object")
            continue
        key = raw.get("idempotency_key")
        context: dict[str, Any] = {"now": now}
        try:
            event = EventIn.model_validate(raw, context=context)
        except ValidationError as exc:
            batch.results[index] = _reject(key, describe_validation_error(exc))
            continue
        if event.tenant_id != tenant_id:
            batch.results[index] = _reject(key, "tenant_id: does not match the batch's tenant_id")
            continue
        payload_json = context.get("payload_json") or canonical_json(raw.get("payload", {}))
        digest = payload_hash(event, payload_json)
        earlier = first_by_key.get(event.idempotency_key)
        if earlier is not None:
            batch.repeats[index] = earlier.index
            if earlier.row.payload_hash == digest:
                batch.results[index] = EventResult(
                    idempotency_key=event.idempotency_key, outcome=Outcome.DUPLICATE
                )
            else:
                batch.results[index] = conflict(
                    event.idempotency_key, earlier.row.payload_hash, digest
                )
            continue
        operation, outcome = split_event_type(event.event_type)
        error = event.payload.error
        if error is not None and outcome is EventOutcome.NEUTRAL:
            outcome = EventOutcome.FAILURE  # an error report is a failure whatever its name
        failure = outcome is EventOutcome.FAILURE
        row = NewEvent(
            workflow_id=event.workflow_id,
            event_type=event.event_type,
            outcome=outcome,
            payload_json=payload_json,
            idempotency_key=event.idempotency_key,
            occurred_at=event.occurred_at,
            severity=event.severity or (Severity.ERROR if failure else None),
            signature=signature(
                workflow_id=event.workflow_id,
                operation=operation,
                code=error.code if error else None,
                message=error.message if error else None,
                fingerprint=event.payload.fingerprint,
            )
            if failure
            else None,
            fingerprint_version=FINGERPRINT_VERSION if failure else None,
            payload_hash=digest,
            correlation_id=event.correlation_id,
        )
        accepted = Accepted(index, event, row, operation, _title(operation, event))
        first_by_key[event.idempotency_key] = accepted
        batch.accepted.append(accepted)
    return batch


def conflict(key: str, stored: str, received: str) -> EventResult:
    return EventResult(
        idempotency_key=key,
        outcome=Outcome.CONFLICT,
        reason=f"idempotency_key: already used with payload sha256:{stored}, "
        f"this delivery has sha256:{received}",
    )


def group_failures(accepted: Iterable[Accepted]) -> list[FailureGroup]:
    """One group per signature: count, time span, highest severity, a title."""
    groups: dict[str, FailureGroup] = {}
    for item in accepted:
        row = item.row
        if row.signature is None:
            continue
        severity = row.severity or Severity.ERROR
        current = groups.get(row.signature)
        if current is None:
            groups[row.signature] = FailureGroup(
                signature=row.signature,
                workflow_id=row.workflow_id,
                operation=item.operation,
                title=item.title,
                count=1,
                first_seen_at=row.occurred_at,
                last_seen_at=row.occurred_at,
                severity=severity,
                correlation_id=row.correlation_id,
            )
        else:
            groups[row.signature] = replace(
                current,
                count=current.count + 1,
                first_seen_at=min(current.first_seen_at, row.occurred_at),
                last_seen_at=max(current.last_seen_at, row.occurred_at),
                severity=max(current.severity, severity, key=lambda s: s.rank),
                correlation_id=current.correlation_id or row.correlation_id,
            )
    return list(groups.values())


def latest_successes(accepted: Iterable[Accepted]) -> list[tuple[uuid.UUID, str, datetime]]:
    """Per (workflow, operation) the latest success: the recovery evidence of a batch."""
    latest: dict[tuple[uuid.UUID, str], datetime] = {}
    for item in accepted:
        if item.row.outcome is EventOutcome.SUCCESS:
            key = (item.row.workflow_id, item.operation)
            latest[key] = max(latest.get(key, item.row.occurred_at), item.row.occurred_at)
    return [(workflow_id, operation, at) for (workflow_id, operation), at in latest.items()]
