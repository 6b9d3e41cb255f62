"""Events as tenants send them, batches, and what ingest answers."""

from __future__ import annotations

import json
import math
import re
import uuid
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from awfdrs.contracts.base import Contract, Text255, field_name
from awfdrs.enums import (
    IncidentStatus,
    Severity,
)

MAX_PAYLOAD_BYTES = 64 * 1024
MAX_PAYLOAD_DEPTH = 32
MAX_FUTURE_SKEW = timedelta(minutes=5)
# Temporal refuses a payload over 2 MiB and warns from 512 KiB. A batch travels twice (workflow
# input, then activity input) and a typical event serialises to ~525 bytes, so clients cut
# batches at 256 KiB (about 490 typical events) or 1,000 events, whichever comes first: an
# eighth of the hard limit, half the warning threshold. docs/ARCHITECTURE.md has the measurement.
MAX_BATCH_EVENTS = 1000
MAX_BATCH_BYTES = 256 * 1024
EVENT_TYPE_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,254}$"
ISO_8601_START = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _check_json_value(value: Any, path: str, depth: int) -> None:
    """Refuse what JSON or PostgreSQL's jsonb cannot hold faithfully."""
    if depth > MAX_PAYLOAD_DEPTH:
        raise ValueError(f"{path}: nested deeper than {MAX_PAYLOAD_DEPTH} levels")
    if isinstance(value, str):
        _check_text(value, path)
    elif isinstance(value, bool) or value is None or isinstance(value, int):
        return
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{path}: NaN and infinity are not JSON")
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{path}: object keys must be strings")
            _check_text(key, f"{path} key")
            _check_json_value(item, f"{path}.{field_name(key)}", depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_json_value(item, f"{path}[{index}]", depth + 1)
    else:
        raise ValueError(f"{path}: {type(value).__name__} is not a JSON value")


def serialise_payload(payload: dict[str, Any]) -> str:
    """The payload's canonical JSON, or ValueError naming what PostgreSQL could not store.

    Serialising is the fast check (NaN and infinity refused, lone surrogates fail to encode,
    NUL shows as an escape); the slow walk that names the offending path runs only when the fast
    check fails, or when the payload may nest deeper than allowed (it has more containers).
    """
    try:
        text = json.dumps(
            payload, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False
        )
        size = len(text.encode("utf-8"))
    except (ValueError, TypeError, UnicodeEncodeError):
        _check_json_value(payload, "payload", 0)
        raise  # the walk found nothing more precise to say
    if "\\u0000" in text or text.count("{") + text.count("[") > MAX_PAYLOAD_DEPTH:
        _check_json_value(payload, "payload", 0)
    if size > MAX_PAYLOAD_BYTES:
        raise ValueError(f"{size} bytes serialised, at most {MAX_PAYLOAD_BYTES} allowed")
    return text


def _check_text(value: str, path: str) -> None:
    if "\x00" in value:
        raise ValueError(f"{path}: contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{path}: contains invalid Unicode (a lone surrogate)") from None


class ErrorInfo(BaseModel):
    """``payload.error``: what went wrong, as the tenant's workflow saw it."""

    model_config = ConfigDict(extra="allow", frozen=True)

    code: Annotated[str, StringConstraints(max_length=128)] | None = None
    message: Annotated[str, StringConstraints(max_length=4096)] | None = None
    retryable: bool | None = None
    vendor: Annotated[str, StringConstraints(max_length=255)] | None = None


FORBIDDEN_RETRY_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "idempotency-key",
        "x-idempotency-key",
    }
)
# What an event may say about how its request travels. Credentials never: they belong to the
# tenant's vendor connection (encrypted at rest, rotatable), while events are stored forever in
# an append-only table. An allow-list, because a deny-list of credential names is never complete.
ALLOWED_RETRY_HEADERS = frozenset(
    {
        "accept",
        "accept-language",
        "content-type",
        "content-language",
        "user-agent",
        # Tracing and dates: allowed so senders need not strip them, never replayed (intake
        # drops what belongs to one attempt).
        "traceparent",
        "tracestate",
        "baggage",
        "sentry-trace",
        "b3",
        "uber-trace-id",
        "request-id",
        "date",
        "accept-encoding",
        # What the request is at the vendor: the connected account a charge is made on.
        "stripe-account",
        "stripe-version",
    }
)
# Any other ``X-`` header is allowed unless its name has one of these in it.
CREDENTIAL_WORDS = (
    "auth",
    "token",
    "key",
    "secret",
    "signature",
    "session",
    "cookie",
    "password",
    "passwd",
    "credential",
    "bearer",
    "jwt",
    "csrf",
    "hmac",
    "passphrase",
    "private",
    "access",
    "nonce",
    "ticket",
    "login",
    "forwarded",
    "remote",
    "security",
    "vault",
)
# Short words that name a credential only as a whole part of the name (X-Pin, X-Api-Pwd), not
# inside another word (X-Shipping-Method).
CREDENTIAL_PARTS = frozenset(
    {"pass", "pwd", "pw", "otp", "pin", "sign", "sid", "cred", "cert", "code", "user", "sig"}
)
# Header names are HTTP tokens; ASCII only, so a lookalike letter cannot slip a credential's
# name past the words above.
HEADER_NAME = re.compile(r"[A-Za-z0-9_-]+")
# Query parameters that carry credentials without any of the words above in their name.
CREDENTIAL_PARAMETERS = frozenset({"apikey", "key"})
CREDENTIAL_REFUSAL = "credential headers are not accepted in events; configure a vendor connection"


def credential_like(name: str) -> bool:
    lower = name.lower()
    parts = set(re.split(r"[-_.]", lower))
    return any(word in lower for word in CREDENTIAL_WORDS) or bool(parts & CREDENTIAL_PARTS)


def retry_header_allowed(name: str) -> bool:
    if not HEADER_NAME.fullmatch(name):
        return False
    lower = name.lower()
    if lower in ALLOWED_RETRY_HEADERS:
        return True
    return lower.startswith("x-") and not credential_like(lower)


class RetrySpec(BaseModel):
    """``payload.retry``: the request that failed, to be sent again to the vendor.

    Only a path: the host is always the tenant's vendor connection's base URL, so an event can
    never make awfdrs call an address of its choosing; and only harmless headers
    (:data:`ALLOWED_RETRY_HEADERS`): credentials come from the connection, never from events.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    path: Annotated[str, StringConstraints(min_length=1, max_length=2048)]
    body: Any = None
    headers: dict[Annotated[str, StringConstraints(min_length=1, max_length=128)], str] = {}
    reversible: bool | None = None

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("path")
    @classmethod
    def _relative(cls, value: str) -> str:
        if not value.startswith("/") or value.startswith("//") or "\\" in value:
            raise ValueError("must be a path starting with a single '/'")
        if not value.isprintable():
            raise ValueError("must not contain control characters")
        _, _, query = value.partition("?")
        for name, _ in parse_qsl(query.partition("#")[0], keep_blank_values=True):
            if credential_like(name) or name.lower() in CREDENTIAL_PARAMETERS:
                raise ValueError(
                    f"query parameter {name!r} looks like a credential: credentials are not "
                    "accepted in events; configure a vendor connection"
                )
        return value

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        seen: set[str] = set()
        for name, header in value.items():
            if name.lower() in seen:
                raise ValueError(
                    f"{name.lower()}: given twice (header names are not case-sensitive)"
                )
            seen.add(name.lower())
            if name.lower() in FORBIDDEN_RETRY_HEADERS:
                raise ValueError(f"{name}: set by awfdrs, not by the event")
            if not HEADER_NAME.fullmatch(name):
                raise ValueError(f"{name!r}: not a header name (ASCII letters, digits, - and _)")
            if not retry_header_allowed(name):
                if credential_like(name):
                    # A leading dot: the reason names the header as a field of its own.
                    raise ValueError(f".{name}: {CREDENTIAL_REFUSAL}")
                raise ValueError(
                    f".{name}: not a header an event may carry (allowed: "
                    f"{', '.join(sorted(ALLOWED_RETRY_HEADERS))}, and X- headers that are not "
                    "credentials); credentials belong to the tenant's vendor connection"
                )
            if any(c in header for c in "\r\n\x00"):
                raise ValueError(f"{name}: value contains a line break")
            # HTTP carries header values as bytes; a non-ASCII value cannot be sent at all, and
            # would otherwise fail every attempt at the vendor's door.
            if not all(" " <= c <= "~" or c == "\t" for c in header):
                raise ValueError(f"{name}: value must be printable ASCII")
        return value


class Payload(BaseModel):
    """The shape awfdrs reads out of a payload; the payload itself is stored verbatim."""

    model_config = ConfigDict(extra="allow", frozen=True)

    error: ErrorInfo | None = None
    retry: RetrySpec | None = None
    fingerprint: (
        Annotated[
            list[Annotated[str, StringConstraints(min_length=1, max_length=255)]],
            Field(min_length=1, max_length=16),
        ]
        | None
    ) = None

    @model_validator(mode="before")
    @classmethod
    def _raw(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, dict):
            raise ValueError("must be a JSON object")
        text = serialise_payload(data)
        if isinstance(info.context, dict):
            info.context["payload_json"] = text  # ingest stores this very text, serialised once
        return data


class EventIn(Contract):
    """One event as a tenant sends it. Unknown top-level fields are refused (typos included)."""

    tenant_id: uuid.UUID
    workflow_id: uuid.UUID
    event_type: Annotated[str, StringConstraints(pattern=EVENT_TYPE_PATTERN)]
    idempotency_key: Text255
    occurred_at: AwareDatetime
    correlation_id: Text255 | None = None
    severity: Severity | None = None
    payload: Payload = Payload()

    @field_validator("severity", mode="before")
    @classmethod
    def _severity(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("idempotency_key", "correlation_id")
    @classmethod
    def _text(cls, value: str | None, info: ValidationInfo) -> str | None:
        # Identifiers, not prose: no control characters, separators or lone surrogates.
        if value is not None and not value.isprintable():
            raise ValueError("must be printable: no control characters or line breaks")
        return value

    @field_validator("occurred_at", mode="before")
    @classmethod
    def _iso_8601(cls, value: object) -> object:
        # Pydantic alone reads 25182 or "25182" as Unix seconds: a sender's bug would be stored
        # as a plausible date in 1970. Only a timestamp written out in full is taken.
        if isinstance(value, datetime):
            return value
        if not isinstance(value, str) or not ISO_8601_START.match(value):
            raise ValueError("must be an ISO 8601 timestamp with a time zone")
        return value

    @field_validator("occurred_at")
    @classmethod
    def _not_in_the_future(cls, value: datetime, info: ValidationInfo) -> datetime:
        now = (info.context or {}).get("now") or datetime.now(UTC)
        try:
            value.astimezone(UTC)  # what the database will store
        except OverflowError:
            # 0001-01-01T00:00:00+14:00 is a moment before year 1: no timestamp can hold it.
            raise ValueError("is outside the years 1 to 9999 once in UTC") from None
        if value > now + MAX_FUTURE_SKEW:
            raise ValueError(f"is more than {MAX_FUTURE_SKEW} in the future")
        return value


class IngestBatch(Contract):
    """Input of ``IngestEvents``: one tenant, 1 to MAX_BATCH_EVENTS events.

    Events stay raw JSON here: each is validated on its own, so a malformed one is rejected
    with its reason while the rest of the batch lands.
    """

    tenant_id: uuid.UUID
    events: Annotated[list[Any], Field(min_length=1, max_length=MAX_BATCH_EVENTS)]


class Outcome(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"
    REJECTED = "rejected"


class EventResult(Contract):
    idempotency_key: str | None
    outcome: Outcome
    reason: str | None = None


class IncidentChange(Contract):
    """An incident this batch opened or counted on."""

    incident_id: uuid.UUID
    signature: str
    status: IncidentStatus
    severity: Severity
    event_count: int
    opened: bool
    regression_of: uuid.UUID | None = None


class IngestResult(Contract):
    """One outcome per input event, in input order, and the incidents touched."""

    tenant_id: uuid.UUID
    outcomes: list[EventResult]
    incidents: list[IncidentChange] = []

    def count(self, outcome: Outcome) -> int:
        return sum(1 for o in self.outcomes if o.outcome is outcome)
