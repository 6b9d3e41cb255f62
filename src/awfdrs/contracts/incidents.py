"""The incident workflow's input, signals, updates, query, and its activities' commands.

The lifecycle's own values (state, plans, tallies, step results) are defined in
:mod:`awfdrs.lifecycle` and re-exported here: they are contracts too.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import Field

from awfdrs.contracts.base import Actor, Contract, OptionalReason, Reason
from awfdrs.enums import GateControl, IncidentStatus, Phase, Severity
from awfdrs.lifecycle import (
    ActionView,
    DecideCmd,
    DecisionView,
    Escalation,
    IncidentParams,
    IncidentState,
    Plan,
    RequestOutcome,
    RequestView,
    Tally,
)


class IncidentInput(Contract):
    """What starts an incident's workflow; ``carry`` is the state continue-as-new hands on."""

    tenant_id: uuid.UUID
    incident_id: uuid.UUID
    signature: str
    workflow_id: uuid.UUID
    workflow_name: str
    title: str
    severity: Severity
    regression_of: uuid.UUID | None = None
    params: IncidentParams
    carry: IncidentState | None = None


class Observation(Contract):
    """What ingest tells a running incident: only news it acts on, never one per event.
    ``recovered``: success evidence proved some of its requests; ``joined``: failed requests
    joined it (or one that had succeeded failed again)."""

    severity: Severity | None = None
    recovered: bool = False
    joined: bool = False
    recovered_at: datetime | None = None  # accepted from older senders; means recovered


class GateChange(Contract):
    """Signal to held incidents: a control may have let go (a kill switch was released)."""

    control: GateControl | None = None


class OperatorCommand(Contract):
    """approve / reject: the plan the operator reviewed, who decided, optionally why.

    ``plan_id`` binds the answer to what was reviewed: an answer naming any other plan is
    refused, so an approval can never send requests the operator did not see.
    """

    plan_id: str
    actor: Actor
    reason: OptionalReason = None
    # The signed credential (awfdrs.signing) naming the principal: required to approve; to
    # reject, without one the actor is recorded as said at the Temporal door.
    credential: str | None = Field(None, repr=False, max_length=4096)


class CredentialCheck(Contract):
    """Ask the worker whether ``credential`` signs ``command`` on ``subject`` for the tenant;
    the answer is the principal it names (see :mod:`awfdrs.signing`)."""

    tenant_id: uuid.UUID
    command: str
    subject: str
    plan_id: str | None = None
    credential: str | None = Field(None, repr=False)
    # For the audit chain's operator.command row.
    args: dict[str, Any] = Field(default_factory=dict)
    # The two-person rule, checked before the credential is spent: refused (with ``refusal``)
    # when the principal is this one.
    refuse_principal: str | None = None
    refusal: str | None = None


class CloseCommand(Contract):
    """resolve / ignore: both who and why are required, for the audit trail."""

    actor: Actor
    reason: Reason
    # Optional: without it the actor is recorded as ``temporal:<actor>`` (anyone may stop).
    credential: str | None = Field(None, repr=False, max_length=4096)


class IncidentSnapshot(Contract):
    """The ``snapshot`` query: the lifecycle state in words and values."""

    incident_id: uuid.UUID
    tenant_id: uuid.UUID
    title: str
    status: IncidentStatus
    severity: Severity
    phase: Phase
    attempt: int
    details: str
    waiting_for: str | None = None
    needs_a_human: bool = False
    resolution: str | None = None
    plan: Plan | None = None
    tally: Tally = Tally()
    escalation: Escalation | None = None
    decisions: list[DecisionView] = []
    actions: list[ActionView] = []


# --- activity commands ----------------------------------------------------------------------


class IncidentRef(Contract):
    tenant_id: uuid.UUID
    incident_id: uuid.UUID


class AnalyzeCommand(IncidentRef):
    attempt: int
    decision_id: uuid.UUID
    action_id: uuid.UUID


class DecideCommand(IncidentRef):
    """Record a decision the analyzer did not make; ids chosen by the workflow."""

    decision_id: uuid.UUID
    action_id: uuid.UUID
    attempt: int
    decision: DecideCmd


class SendCommand(IncidentRef):
    """Send one request of a plan (claim, call, record), with the round's limits."""

    request_id: uuid.UUID
    action_id: uuid.UUID
    max_attempts: int
    timeout_seconds: float
    max_deferral_seconds: float


class SettleRound(IncidentRef):
    """Close a retry round: its action's outcome from its requests', and what comes next."""

    action_id: uuid.UUID
    request_ids: list[uuid.UUID]
    outcomes: list[RequestOutcome]


class ExecuteCommand(IncidentRef):
    """Run an escalation or hand-over action (never held: humans are never silenced)."""

    action_id: uuid.UUID
    max_attempts: int
    timeout_seconds: float = 30.0


class AbandonCommand(IncidentRef):
    action_id: uuid.UUID
    reason: str


class VerifyCommand(IncidentRef):
    """``final``: the window is over; otherwise the check was woken early by news."""

    since: datetime
    window_seconds: float
    final: bool


class ReviewCommand(IncidentRef):
    """Read the requests again after news; ``hand_over_to`` an escalation's action: new
    requests that joined an escalated incident are handed over to the same human."""

    hand_over_to: uuid.UUID | None = None


class GateProbe(IncidentRef):
    """Does ``control`` still hold this incident? Asked by a held incident when it wakes."""

    control: GateControl


class EpisodeEscalation(IncidentRef):
    episode_id: uuid.UUID


class CloseIncident(IncidentRef):
    """``only_if``: close only while the incident's requests are counted exactly so (an
    automatic close); otherwise the close is declined and the incident stays open."""

    status: IncidentStatus
    resolution: str
    only_if: Tally | None = None


class PhaseNote(IncidentRef):
    """Tell PostgreSQL which phase the workflow waits in, for "who needs a human" queries."""

    phase: Phase
    reason: str | None = None
    held_by: GateControl | None = None


__all__ = [
    "AbandonCommand",
    "AnalyzeCommand",
    "CloseCommand",
    "CloseIncident",
    "DecideCommand",
    "EpisodeEscalation",
    "ExecuteCommand",
    "GateChange",
    "GateProbe",
    "IncidentInput",
    "IncidentRef",
    "IncidentSnapshot",
    "Observation",
    "OperatorCommand",
    "PhaseNote",
    "RequestView",
    "ReviewCommand",
    "SendCommand",
    "SettleRound",
    "VerifyCommand",
]
