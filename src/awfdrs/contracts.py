"""Everything that crosses a Temporal boundary: plain JSON that any SDK or the CLI can send.

Each workflow, activity, signal and update takes exactly one of these models, so fields can be
added compatibly and the Temporal UI's forms decode into them.
"""

from __future__ import annotations

import json
import math
import uuid
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from awfdrs.enums import ActionStatus, ActionType, ErrorClass, IncidentStatus, Severity

MAX_PAYLOAD_BYTES = 64 * 1024
MAX_PAYLOAD_DEPTH = 32
MAX_FUTURE_SKEW = timedelta(minutes=5)
# Temporal refuses a payload over 2 MiB and warns from 512 KiB. A batch travels twice (workflow
# input, then activity input) and a typical event serialises to ~525 bytes, so clients cut
# batches at 256 KiB (about 490 typical events) or 1,000 events, whichever comes first: an
# eighth of the hard limit, half the warning threshold. The README has the measurement.
MAX_BATCH_EVENTS = 1000
MAX_BATCH_BYTES = 256 * 1024
EVENT_TYPE_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,254}$"

Text255 = Annotated[str, StringConstraints(min_length=1, max_length=255)]


class Contract(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- events ---------------------------------------------------------------------------------


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
            _check_json_value(item, f"{path}.{key}", depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_json_value(item, f"{path}[{index}]", depth + 1)
    else:
        raise ValueError(f"{path}: {type(value).__name__} is not a JSON value")


def _check_text(value: str, path: str) -> None:
    if "\x00" in value:
        raise ValueError(f"{path}: contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{path}: contains invalid Unicode (a lone surrogate)") from None


def canonical_json(value: Any) -> str:
    """One spelling per value: sorted keys, no spaces, UTF-8 kept as is."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


class ErrorInfo(BaseModel):
    """``payload.error``: what went wrong, as the tenant's workflow saw it."""

    model_config = ConfigDict(extra="allow", frozen=True)

    code: Annotated[str, StringConstraints(max_length=128)] | None = None
    message: Annotated[str, StringConstraints(max_length=4096)] | None = None
    retryable: bool | None = None
    vendor: Annotated[str, StringConstraints(max_length=255)] | None = None


FORBIDDEN_RETRY_HEADERS = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "idempotency-key"}
)


class RetrySpec(BaseModel):
    """``payload.retry``: the request that failed, to be sent again to the vendor.

    Only a path: the host is always the registered vendor's ``base_url``, so an event can never
    make awfdrs call an address of its choosing.
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
        if any(ord(c) < 0x20 or c == "\x7f" for c in value):
            raise ValueError("must not contain control characters")
        return value

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, header in value.items():
            if name.lower() in FORBIDDEN_RETRY_HEADERS:
                raise ValueError(f"{name}: set by awfdrs, not by the event")
            if not all(c.isalnum() or c in "-_" for c in name):
                raise ValueError(f"{name!r}: not a header name")
            if any(c in header for c in "\r\n\x00"):
                raise ValueError(f"{name}: value contains a line break")
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
    def _raw(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            raise ValueError("must be a JSON object")
        _check_json_value(data, "payload", 0)
        size = len(canonical_json(data).encode())
        if size > MAX_PAYLOAD_BYTES:
            raise ValueError(f"{size} bytes serialised, at most {MAX_PAYLOAD_BYTES} allowed")
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
        if value is not None:
            _check_text(value, str(info.field_name))
        return value

    @field_validator("occurred_at")
    @classmethod
    def _not_in_the_future(cls, value: datetime, info: ValidationInfo) -> datetime:
        now = (info.context or {}).get("now") or datetime.now(UTC)
        if value > now + MAX_FUTURE_SKEW:
            raise ValueError(f"is more than {MAX_FUTURE_SKEW} in the future")
        return value


def describe_validation_error(error: ValidationError, limit: int = 3) -> str:
    """``field.path: message`` for the first ``limit`` problems, for humans and logs."""
    parts = []
    for problem in error.errors()[:limit]:
        location = ".".join(str(p) for p in problem["loc"]) or "event"
        message = str(problem["msg"]).removeprefix("Value error, ")
        if message.startswith(location + ":") or message.startswith(f"{location}."):
            parts.append(message)
        else:
            parts.append(f"{location}: {message}")
    more = len(error.errors()) - limit
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


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


# --- tenants --------------------------------------------------------------------------------


class TenantSettings(Contract):
    """A tenant's knobs, stored as JSON on its row; every field has a sensible default."""

    grouping_window_seconds: float = Field(30.0, ge=0, le=86_400)
    verification_window_seconds: float = Field(300.0, ge=0, le=7 * 86_400)
    approval_timeout_seconds: float = Field(3_600.0, gt=0, le=30 * 86_400)
    confidence_threshold: float = Field(0.8, ge=0, le=1)
    max_attempts: int = Field(3, ge=1, le=20)
    action_timeout_seconds: float = Field(30.0, gt=0, le=3_600)
    action_retry_initial_seconds: float = Field(1.0, gt=0, le=600)
    action_max_attempts: int = Field(5, ge=1, le=50)
    escalation_webhook_url: HttpUrl | None = None
    escalation_routing_key: Annotated[str, StringConstraints(max_length=255)] | None = None


class IncidentParams(Contract):
    """The tenant settings an incident workflow's timers and retries use, fixed at opening."""

    grouping_window_seconds: float
    verification_window_seconds: float
    approval_timeout_seconds: float
    max_attempts: int
    action_timeout_seconds: float
    action_retry_initial_seconds: float
    action_max_attempts: int

    @classmethod
    def from_settings(cls, settings: TenantSettings) -> IncidentParams:
        return cls(**settings.model_dump(include=set(cls.model_fields)))


# --- the incident workflow ------------------------------------------------------------------


class Observation(Contract):
    """What ingest tells a running incident: only changes it acts on, never one per event."""

    severity: Severity | None = None
    recovered_at: datetime | None = None


class DecisionSummary(Contract):
    decision_id: uuid.UUID
    decision_type: ActionType
    confidence: float
    reasoning: str
    ai_model: str
    attempt: int
    classification: ErrorClass | None = None
    gate: str | None = None
    gate_reason: str | None = None
    decided_by: str | None = None


class ActionPlan(Contract):
    action_id: uuid.UUID
    action_type: ActionType
    decision_id: uuid.UUID
    is_reversible: bool


class ActionOutcome(Contract):
    action_id: uuid.UUID
    action_type: ActionType
    status: ActionStatus
    attempts: int
    finished_at: datetime | None = None
    summary: str = ""
    error: str | None = None


class Carry(Contract):
    """An incident workflow's state, handed to its next run by continue-as-new."""

    phase: str
    status: IncidentStatus
    severity: Severity
    attempt: int
    pending: ActionPlan | None = None
    since: datetime | None = None
    recovered_at: datetime | None = None
    deadline: datetime | None = None  # of the approval wait or the verification window
    decisions: list[DecisionSummary] = []
    actions: list[ActionOutcome] = []
    details: str = ""


class IncidentInput(Contract):
    tenant_id: uuid.UUID
    incident_id: uuid.UUID
    signature: str
    workflow_id: uuid.UUID
    workflow_name: str
    title: str
    severity: Severity
    regression_of: uuid.UUID | None = None
    params: IncidentParams
    carry: Carry | None = None


class OperatorCommand(Contract):
    """approve / reject: ``actor`` is who decided, ``reason`` is optional."""

    actor: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
    reason: Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)] | None = None


class CloseCommand(Contract):
    """resolve / ignore: both who and why are required, for the audit trail."""

    actor: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]


class IncidentSnapshot(Contract):
    incident_id: uuid.UUID
    tenant_id: uuid.UUID
    title: str
    status: IncidentStatus
    severity: Severity
    phase: str
    attempt: int
    details: str
    waiting_for: str | None = None
    resolution: str | None = None
    decisions: list[DecisionSummary] = []
    actions: list[ActionOutcome] = []


# --- activity commands ----------------------------------------------------------------------


class AnalyzeCommand(Contract):
    tenant_id: uuid.UUID
    incident_id: uuid.UUID
    attempt: int
    decision_id: uuid.UUID
    action_id: uuid.UUID


class GateVerdict(Contract):
    """What the gate said: act now, or wait for an operator (``control`` says which check)."""

    act: bool
    control: str | None = None
    reason: str | None = None


class AnalysisOutcome(Contract):
    still_open: bool
    status: IncidentStatus
    decision: DecisionSummary | None = None
    verdict: GateVerdict | None = None
    action: ActionPlan | None = None


class DecideCommand(Contract):
    """A decision not made by the analyzer: an operator's, or the workflow's own policy."""

    tenant_id: uuid.UUID
    incident_id: uuid.UUID
    decision_id: uuid.UUID
    action_id: uuid.UUID
    action_type: ActionType
    attempt: int
    reasoning: str
    confidence: float = Field(ge=0, le=1)
    ai_model: str
    decided_by: str | None = None


class ExecuteCommand(Contract):
    tenant_id: uuid.UUID
    incident_id: uuid.UUID
    action_id: uuid.UUID
    max_attempts: int


class AbandonCommand(Contract):
    tenant_id: uuid.UUID
    incident_id: uuid.UUID
    action_id: uuid.UUID
    reason: str


class VerifyCommand(Contract):
    tenant_id: uuid.UUID
    incident_id: uuid.UUID
    since: datetime
    window_seconds: float


class VerifyOutcome(Contract):
    resolved: bool
    still_open: bool
    new_failures: int


class CloseIncident(Contract):
    tenant_id: uuid.UUID
    incident_id: uuid.UUID
    status: IncidentStatus
    resolution: str


class CloseOutcome(Contract):
    status: IncidentStatus
    resolution: str | None
    closed_now: bool
