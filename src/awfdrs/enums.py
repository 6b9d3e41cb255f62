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
