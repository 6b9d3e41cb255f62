"""Every status and kind awfdrs stores; the database holds their values as CHECK'ed strings."""

from __future__ import annotations

from enum import StrEnum


class IncidentStatus(StrEnum):
    NEW = "NEW"
    ANALYZING = "ANALYZING"
    ACTIONED = "ACTIONED"
    RESOLVED = "RESOLVED"
    IGNORED = "IGNORED"

    @property
    def is_open(self) -> bool:
        return self in OPEN_INCIDENT_STATUSES


OPEN_INCIDENT_STATUSES = frozenset(
    {IncidentStatus.NEW, IncidentStatus.ANALYZING, IncidentStatus.ACTIONED}
)


class ActionStatus(StrEnum):
    PENDING = "PENDING"
    IN_PROGRESS = "IN_PROGRESS"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    SHADOWED = "SHADOWED"  # shadow mode: recorded as what would have run, never executed

    @property
    def is_final(self) -> bool:
        return self in (ActionStatus.SUCCEEDED, ActionStatus.FAILED, ActionStatus.SHADOWED)


class RequestStatus(StrEnum):
    """One affected request of an incident: where its remediation stands.

    PENDING waits to be sent (or, with nothing to replay, for a human); SENT is claimed and on
    its way to the vendor (an attempt in flight); the rest are final. After a transient failure
    a request goes back to PENDING with its attempts counted, so an operator's close can still
    cancel it.
    """

    PENDING = "PENDING"
    SENT = "SENT"
    SUCCEEDED = "SUCCEEDED"  # the vendor accepted our replay
    FAILED = "FAILED"  # the vendor refused it for good, or attempts ran out; not yet handed over
    RECOVERED = "RECOVERED"  # the sender reported success for it: nothing left to send
    HANDED_OVER = "HANDED_OVER"  # escalated or handed over: a human has it
    CANCELLED = "CANCELLED"  # an operator closed the incident or rejected the plan first
    SHADOWED = "SHADOWED"  # shadow mode: recorded as what would have been sent

    @property
    def is_final(self) -> bool:
        return self not in (RequestStatus.PENDING, RequestStatus.SENT)

    @property
    def is_settled(self) -> bool:
        """Nothing more is owed to it: it worked, or the sender or a human has it."""
        return self in SETTLED_REQUEST_STATUSES


SETTLED_REQUEST_STATUSES = frozenset(
    {
        RequestStatus.SUCCEEDED,
        RequestStatus.RECOVERED,
        RequestStatus.HANDED_OVER,
        RequestStatus.CANCELLED,
    }
)


class Phase(StrEnum):
    """Where an incident's lifecycle is; the status says what the world sees, the phase what
    the workflow waits for. Stored on the incident so the console can ask "who needs a human"."""

    GROUPING = "grouping"
    ANALYZING = "analyzing"
    AWAITING_APPROVAL = "awaiting_approval"
    HELD = "held"
    ACTING = "acting"
    VERIFYING = "verifying"
    AWAITING_OPERATOR = "awaiting_operator"
    CLOSED = "closed"

    @property
    def needs_a_human(self) -> bool:
        return self in (Phase.AWAITING_APPROVAL, Phase.HELD, Phase.AWAITING_OPERATOR)


class ActionType(StrEnum):
    RETRY = "retry"
    ESCALATE = "escalate"
    MANUAL = "manual"

    @property
    def is_automatic(self) -> bool:
        """Automatic actions change a tenant's systems; the others hand over to a human."""
        return self is ActionType.RETRY


class Severity(StrEnum):
    """Ordered like PagerDuty's severities, so escalations can pass them through unchanged."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return SEVERITY_ORDER.index(self)


SEVERITY_ORDER: tuple[Severity, ...] = (
    Severity.INFO,
    Severity.WARNING,
    Severity.ERROR,
    Severity.CRITICAL,
)


class CircuitState(StrEnum):
    CLOSED = "CLOSED"
    OPEN = "OPEN"
    HALF_OPEN = "HALF_OPEN"


class ErrorClass(StrEnum):
    TRANSIENT = "transient"
    PERMANENT = "permanent"
    UNKNOWN = "unknown"


class EventOutcome(StrEnum):
    """What an event says about its operation, read from the event type's suffix."""

    FAILURE = "failure"
    SUCCESS = "success"
    NEUTRAL = "neutral"


class RemediationMode(StrEnum):
    LIVE = "live"  # act
    SHADOW = "shadow"  # record the action that would have run, never run it
    OFF = "off"  # record decisions only


class GateControl(StrEnum):
    """The controls of the gate, in the order they are applied."""

    KILL_SWITCH = "kill_switch"
    MODE = "mode"
    BUDGET = "budget"
    FUSE = "fuse"
    CONFIDENCE = "confidence"
    REVERSIBILITY = "reversibility"


class GateEffect(StrEnum):
    """What a control that holds does to the decided action."""

    ACT = "act"  # nothing holds: the action runs
    HOLD = "hold"  # wait until the control lets go (kill switch, fuse), then go on
    APPROVAL = "approval"  # wait for an operator to approve or reject
    SHADOW = "shadow"  # record the action as not executed
    RECORD = "record"  # record the decision only
    ESCALATE = "escalate"  # escalate instead of acting (budget)
