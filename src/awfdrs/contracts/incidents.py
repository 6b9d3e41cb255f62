"""The incident workflow's input, signals, updates, query, and its activities' commands."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import (
    Field,
    StringConstraints,
)

from awfdrs.contracts.base import Contract
from awfdrs.contracts.settings import IncidentParams
from awfdrs.enums import (
    ActionStatus,
    ActionType,
    ErrorClass,
    GateControl,
    GateEffect,
    IncidentStatus,
    Severity,
)


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
    """What became of an action. ``held_by`` set: it did not start (still PENDING) because a
    control held it at the last moment; ``gave_up_waiting``: its vendor stayed unavailable for
    longer than the tenant's maximum deferral."""

    action_id: uuid.UUID
    action_type: ActionType
    status: ActionStatus
    attempts: int
    finished_at: datetime | None = None
    summary: str = ""
    error: str | None = None
    held_by: GateControl | None = None
    held_reason: str | None = None
    gave_up_waiting: bool = False


class Carry(Contract):
    """An incident workflow's state, handed to its next run by continue-as-new."""

    phase: str
    status: IncidentStatus
    severity: Severity
    attempt: int
    pending: ActionPlan | None = None
    since: datetime | None = None
    recovered_at: datetime | None = None
    deadline: datetime | None = None  # of the approval wait, the verification window, a hold
    held_by: str | None = None
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
    """What the gate said; ``control`` names the check that held the action, if any.

    ``episode_id`` is set on the one verdict that opened a systemic-failure episode: that
    incident's workflow sends the episode's single escalation.
    """

    effect: GateEffect = GateEffect.ACT
    control: GateControl | None = None
    reason: str | None = None
    episode_id: uuid.UUID | None = None

    @property
    def act(self) -> bool:
        return self.effect is GateEffect.ACT


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
    timeout_seconds: float = 30.0  # also the lease of a half-open probe


class GateProbe(Contract):
    """Does ``control`` still hold this incident? Asked by a held incident when it wakes."""

    tenant_id: uuid.UUID
    incident_id: uuid.UUID
    control: GateControl


class GateProbeResult(Contract):
    holds: bool
    reason: str | None = None
    recheck_at: datetime | None = None  # e.g. when the kill switch expires


class EpisodeEscalation(Contract):
    tenant_id: uuid.UUID
    episode_id: uuid.UUID
    incident_id: uuid.UUID


class GateChange(Contract):
    """Signal to held incidents: a control may have let go (a kill switch was released)."""

    control: GateControl | None = None


class AbandonCommand(Contract):
    tenant_id: uuid.UUID
    incident_id: uuid.UUID
    action_id: uuid.UUID
    reason: str


class VerifyCommand(Contract):
    tenant_id: uuid.UUID
    incident_id: uuid.UUID
    signature: str
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
