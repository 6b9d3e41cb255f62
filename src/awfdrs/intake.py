"""The pure half of ingest: each event's outcome, its fingerprint, the requests it affects.

No database or Temporal code: the rules are tested exhaustively on their own, and the ingest
transaction holds only what needs the database. The value types the repositories store
(``NewEvent``, ``FailureGroup``, ``FailedRequest``, ``Evidence``) are defined here, so this module
depends on nothing below it and the database layer depends on it.

Every event's outcome is decided in one place, :class:`PreparedBatch`: rejected while it is
validated, or for naming an unknown workflow; accepted, duplicate or conflict once the database
said which keys it already held.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from awfdrs.contracts import (
    EventIn,
    EventResult,
    Outcome,
    canonical_json,
    describe_validation_error,
)
from awfdrs.enums import EventOutcome, Severity
from awfdrs.fingerprint import FINGERPRINT_VERSION, signature, split_event_type
from awfdrs.jsonbatch import Decoded, Undecodable

TITLE_LIMIT = 500
ERROR_MESSAGE_LIMIT = 2000
# What the payload hash covers besides the payload, named in conflict reasons.
HASHED_FIELDS = "workflow_id, event_type, occurred_at (as UTC), correlation_id, severity, payload"


@dataclass(frozen=True, slots=True)
class NewEvent:
    """A validated event ready to be stored; ``payload_json`` is its payload serialised once."""

    workflow_id: uuid.UUID
    event_type: str
    outcome: EventOutcome
    payload_json: str
    idempotency_key: str
    occurred_at: datetime
    severity: Severity | None
    signature: str | None
    fingerprint_version: int | None
    payload_hash: str
    correlation_id: str | None


@dataclass(frozen=True, slots=True)
class FailureGroup:
    """The failures of one signature among a batch's newly inserted events."""

    signature: str
    workflow_id: uuid.UUID
    operation: str
    title: str
    count: int
    first_seen_at: datetime
    last_seen_at: datetime
    severity: Severity
    correlation_id: str | None


@dataclass(frozen=True, slots=True)
class FailedRequest:
    """One distinct failed request among a batch's new failures, for the incident of
    ``signature``. ``event_key`` is the first event that carried it (its id becomes the row's
    ``first_event_id``); ``candidate_key`` is the Idempotency-Key derived from it, used unless
    the tenant already has a key for this request."""

    signature: str
    event_key: str
    request_hash: str
    candidate_key: str
    replayable: bool
    vendor: str | None
    method: str | None
    path: str | None
    body_json: str | None
    headers_json: str
    reversible: bool | None
    correlation_ids: tuple[str, ...]
    error_code: str | None
    error_message: str | None
    event_count: int
    first_failed_at: datetime
    last_failed_at: datetime


@dataclass(frozen=True, slots=True)
class Evidence:
    """A success of ``operation``: it proves recovered the failed requests of that operation
    that carry the same correlation id (or, inside the grouping window, those that carry none)."""

    workflow_id: uuid.UUID
    operation: str
    correlation_id: str | None
    occurred_at: datetime


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
    # Filled in by settle(): the events really inserted by this batch.
    new: list[Accepted] = field(default_factory=list)

    @property
    def workflow_ids(self) -> set[uuid.UUID]:
        return {a.event.workflow_id for a in self.accepted}

    def reject_workflows(self, active: Mapping[uuid.UUID, bool]) -> None:
        """Reject, each on its own, the events naming a workflow that is unknown for the tenant
        (absent from ``active``) or inactive (False there); the rest of the batch goes on."""
        kept: list[Accepted] = []
        for item in self.accepted:
            state = active.get(item.event.workflow_id)
            if state is True:
                kept.append(item)
                continue
            why = "is not a workflow of this tenant" if state is None else "is inactive"
            self.results[item.index] = _reject(
                item.event.idempotency_key, f"workflow_id: {item.event.workflow_id} {why}"
            )
        if len(kept) != len(self.accepted):
            dropped = {a.index for a in self.accepted} - {a.index for a in kept}
            self.accepted = kept
            # A repeat of a rejected event is rejected with it.
            for index, first in list(self.repeats.items()):
                if first in dropped:
                    self.results[index] = self.results[first]
                    del self.repeats[index]

    def settle(self, inserted: Mapping[str, uuid.UUID], stored: Mapping[str, str]) -> set[str]:
        """Decide accepted / duplicate / conflict from what the database did.

        ``inserted`` maps the keys this batch inserted to their event ids, ``stored`` the other
        keys to the payload hash already stored. Returns the signatures seen only as duplicates:
        their open incidents must still be told, in case a first delivery's notice was lost.
        """
        duplicate_signatures: set[str] = set()
        self.new = []
        for item in self.accepted:
            key = item.row.idempotency_key
            if key in inserted:
                self.results[item.index] = EventResult(
                    idempotency_key=key, outcome=Outcome.ACCEPTED
                )
                self.new.append(item)
            elif same_event(stored.get(key), item.event, item.row):
                self.results[item.index] = EventResult(
                    idempotency_key=key, outcome=Outcome.DUPLICATE
                )
                if item.row.signature is not None:
                    duplicate_signatures.add(item.row.signature)
            else:
                # Stored with another payload, or inserted concurrently and rolled back since.
                self.results[item.index] = conflict(
                    key, stored.get(key, "unknown"), item.row.payload_hash
                )
        return duplicate_signatures

    def outcomes(self) -> list[EventResult]:
        missing = [i for i, r in enumerate(self.results) if r is None]
        if missing:
            raise RuntimeError(f"events {missing} have no outcome: settle() was not called")
        return [r for r in self.results if r is not None]


def payload_hash(event: EventIn, payload_json: str) -> str:
    """What "the same event" means: every field the sender set except the key itself.

    The instant is hashed in UTC, so a resend that spells the same moment in another offset is
    the same event. The payload enters as its canonical text, already serialised for storage.
    """
    return _hash(event, payload_json, event.occurred_at.astimezone(UTC).isoformat())


def legacy_payload_hash(event: EventIn, payload_json: str) -> str:
    """The hash events were stored with before the instant was hashed in UTC (6297e64): the
    instant as the sender wrote its offset. The same for an instant sent in UTC; a resend,
    unchanged, of an event stored then with another offset matches only this one."""
    return _hash(event, payload_json, event.occurred_at.isoformat())


def same_event(stored_hash: str | None, event: EventIn, row: NewEvent) -> bool:
    """Whether the stored hash is this event's, by the current formula or the legacy one."""
    if stored_hash is None:
        return False
    if stored_hash == row.payload_hash:
        return True
    return stored_hash == legacy_payload_hash(event, row.payload_json)


def _hash(event: EventIn, payload_json: str, instant: str) -> str:
    # Unit-separated rather than JSON: the fields cannot contain U+001F (NUL and control
    # characters are refused), and this runs once per event on the hot path.
    header = "\x1f".join(
        (
            str(event.workflow_id),
            event.event_type,
            instant,
            event.correlation_id or "\x00",
            event.severity.value if event.severity else "\x00",
        )
    )
    digest = hashlib.sha256(header.encode())
    digest.update(b"\x1e")
    digest.update(payload_json.encode())
    return digest.hexdigest()


def request_key(tenant_id: uuid.UUID, event_key: str) -> str:
    """The Idempotency-Key a request first carried by event ``event_key`` is sent with.

    A digest rather than the event's key itself: fixed length, plain ASCII whatever the sender
    chose, and different for two tenants that happen to use the same keys.
    """
    digest = hashlib.sha256(f"{tenant_id}\x1f{event_key}".encode()).hexdigest()
    return f"awfdrs-{digest[:40]}"


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


def prepare(
    tenant_id: uuid.UUID,
    raw_events: Iterable[object],
    now: datetime,
    *,
    implied_tenant: bool = False,
) -> PreparedBatch:
    """Validate each event on its own and fingerprint the failures.

    ``raw_events`` are decoded JSON values (or :class:`~awfdrs.jsonbatch.Decoded` items), or
    :class:`~awfdrs.jsonbatch.Undecodable` for an element that could not be decoded (rejected
    with its reason). With ``implied_tenant`` (the
    HTTP edge: the key names the tenant) an event may leave ``tenant_id`` out; one that names
    another tenant is rejected either way.
    """
    raws = list(raw_events)
    batch = PreparedBatch(results=[None] * len(raws))
    first_by_key: dict[str, Accepted] = {}
    for index, raw in enumerate(raws):
        if isinstance(raw, Decoded):
            raw = raw.value
        if isinstance(raw, Undecodable):
            batch.results[index] = _reject(None, raw.reason)
            continue
        if not isinstance(raw, dict):
            batch.results[index] = _reject(None, "event: must be a JSON object")
            continue
        key = raw.get("idempotency_key")
        if implied_tenant and "tenant_id" not in raw:
            raw = {**raw, "tenant_id": str(tenant_id)}
        context: dict[str, Any] = {"now": now}
        try:
            event = EventIn.model_validate(raw, context=context)
        except ValidationError as exc:
            batch.results[index] = _reject(key, describe_validation_error(exc))
            continue
        if event.tenant_id != tenant_id:
            batch.results[index] = _reject(
                key,
                "tenant_id: names another tenant than the one this batch is for"
                + (" (the API key's)" if implied_tenant else ""),
            )
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
        accepted = _accept(index, event, payload_json, digest)
        first_by_key[event.idempotency_key] = accepted
        batch.accepted.append(accepted)
    return batch


def _accept(index: int, event: EventIn, payload_json: str, digest: str) -> Accepted:
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
    return Accepted(index, event, row, operation, _title(operation, event))


def conflict(key: str, stored: str, received: str) -> EventResult:
    return EventResult(
        idempotency_key=key,
        outcome=Outcome.CONFLICT,
        reason=f"idempotency_key: already used for a different event (sha256:{stored}); this "
        f"delivery hashes to sha256:{received}. The hash covers {HASHED_FIELDS}: a resend must "
        "repeat them all, occurred_at included",
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


# Headers that change from one attempt of the same request to the next (tracing, transport,
# dates, the sender's own idempotency key): neither part of what the request is nor replayed
# (a stale trace id or date is wrong on a new attempt; the Idempotency-Key is awfdrs's own).
PER_ATTEMPT_HEADERS = frozenset(
    {
        "idempotency-key",
        "x-idempotency-key",
        "x-request-id",
        "request-id",
        "x-correlation-id",
        "traceparent",
        "tracestate",
        "baggage",
        "b3",
        "sentry-trace",
        "x-amzn-trace-id",
        "x-cloud-trace-context",
        "date",
        "x-amz-date",
        "user-agent",
        "content-length",
        "content-type",
        "accept-encoding",
        "connection",
        "host",
    }
)
PER_ATTEMPT_PREFIXES = ("x-datadog-", "x-b3-", "x-ot-", "uber-trace", "x-trace", "x-span")
# Credentials: refused at intake (RetrySpec's allow-list; they come from the tenant's vendor
# connection). Kept out of the identity for events stored before that refusal existed: a
# rotated token or a fresh signature does not make it another request.
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "x-api-key", "api-key"})
CREDENTIAL_PREFIXES = ("x-signature", "x-hub-signature")


def _per_attempt(name: str) -> bool:
    return name in PER_ATTEMPT_HEADERS or name.startswith(PER_ATTEMPT_PREFIXES)


def identity_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The headers that say what a request is (``Stripe-Account``: the account a charge is
    made on), by lower-cased name: HTTP names are not case-sensitive."""
    return {
        name.lower(): value
        for name, value in headers.items()
        if not _per_attempt(name.lower())
        and name.lower() not in CREDENTIAL_HEADERS
        and not name.lower().startswith(CREDENTIAL_PREFIXES)
    }


def replayed_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """What a new attempt sends of the failed request's headers: all but those of one
    attempt, one of each name (lower-cased)."""
    return {
        name.lower(): value for name, value in headers.items() if not _per_attempt(name.lower())
    }


def request_hash(event: EventIn) -> str:
    """The identity of the request a failure affects, within its incident.

    Replayable: vendor, method, path, canonical body and the headers that say what it is (not
    those of one attempt). Otherwise the failure's trace: its correlation id, or the event.
    """
    spec = event.payload.retry
    vendor = event.payload.error.vendor if event.payload.error else None
    parts: tuple[str, ...]
    if spec is not None:
        parts = (
            "r",
            vendor or "",
            spec.method,
            spec.path,
            canonical_json(spec.body),
            canonical_json(identity_headers(spec.headers)),
        )
    elif event.correlation_id is not None:
        parts = ("c", event.correlation_id)
    else:
        parts = ("e", event.idempotency_key)
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def failed_requests(tenant_id: uuid.UUID, accepted: Iterable[Accepted]) -> list[FailedRequest]:
    """The distinct requests among the new failures, per signature, in first-seen order."""
    found: dict[tuple[str, str], FailedRequest] = {}
    for item in accepted:
        row = item.row
        if row.signature is None:
            continue
        event = item.event
        digest = request_hash(event)
        correlation = (event.correlation_id,) if event.correlation_id else ()
        current = found.get((row.signature, digest))
        if current is not None:
            found[(row.signature, digest)] = replace(
                current,
                event_count=current.event_count + 1,
                correlation_ids=tuple(dict.fromkeys((*current.correlation_ids, *correlation))),
                first_failed_at=min(current.first_failed_at, row.occurred_at),
                last_failed_at=max(current.last_failed_at, row.occurred_at),
            )
            continue
        spec = event.payload.retry
        error = event.payload.error
        found[(row.signature, digest)] = FailedRequest(
            signature=row.signature,
            event_key=row.idempotency_key,
            request_hash=digest,
            candidate_key=request_key(tenant_id, row.idempotency_key),
            replayable=spec is not None,
            vendor=error.vendor if error else None,
            method=spec.method if spec else None,
            path=spec.path if spec else None,
            body_json=canonical_json(spec.body) if spec and spec.body is not None else None,
            headers_json=canonical_json(replayed_headers(spec.headers) if spec else {}),
            reversible=spec.reversible if spec else None,
            correlation_ids=correlation,
            error_code=error.code if error else None,
            error_message=(error.message or "")[:ERROR_MESSAGE_LIMIT] or None if error else None,
            event_count=1,
            first_failed_at=row.occurred_at,
            last_failed_at=row.occurred_at,
        )
    return list(found.values())


def evidence(accepted: Iterable[Accepted]) -> list[Evidence]:
    """The successes of a batch, one per (workflow, operation, correlation id), the latest."""
    latest: dict[tuple[uuid.UUID, str, str | None], datetime] = {}
    for item in accepted:
        row = item.row
        if row.outcome is EventOutcome.SUCCESS:
            key = (row.workflow_id, item.operation, row.correlation_id)
            latest[key] = max(latest.get(key, row.occurred_at), row.occurred_at)
    return [Evidence(w, o, c, at) for (w, o, c), at in latest.items()]
