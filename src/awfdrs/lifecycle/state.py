"""The incident's whole state as one value, and the values the workflow's steps report.

Everything here is plain data (pydantic, frozen): it crosses Temporal boundaries (activity
results, the continue-as-new carry, the query) and is what the pure transition functions take
and give. Nothing here imports Temporal, SQL or :mod:`awfdrs.contracts` (which re-exports these).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from awfdrs.enums import (
    ActionStatus,
    ActionType,
    ErrorClass,
    GateControl,
    GateEffect,
    IncidentStatus,
    Phase,
    RequestStatus,
    Severity,
)

KEPT_SUMMARIES = 20
SAMPLE_REQUESTS = 10


class Value(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IncidentParams(Value):
    """The tenant settings an incident workflow's timers and retries use, fixed at opening."""

    grouping_window_seconds: float
    verification_window_seconds: float
    approval_timeout_seconds: float
    max_attempts: int
    action_timeout_seconds: float
    action_retry_initial_seconds: float
    action_max_attempts: int
    held_recheck_seconds: float = 60.0
    max_deferral_seconds: float = 900.0
    two_person_rule: bool = True


class Tally(Value):
    """The incident's requests by status, as the last step read them from PostgreSQL."""

    pending: int = 0
    pending_unreplayable: int = 0  # of ``pending``: nothing to replay, a human must get them
    sent: int = 0
    succeeded: int = 0
    failed: int = 0
    recovered: int = 0
    handed_over: int = 0
    cancelled: int = 0
    shadowed: int = 0
    proven: int = 0  # requests whose own success evidence arrived, whatever their status

    @classmethod
    def of(cls, counts: dict[RequestStatus, int], *, unreplayable: int, proven: int) -> Tally:
        return cls(
            pending=counts.get(RequestStatus.PENDING, 0),
            pending_unreplayable=unreplayable,
            sent=counts.get(RequestStatus.SENT, 0),
            succeeded=counts.get(RequestStatus.SUCCEEDED, 0),
            failed=counts.get(RequestStatus.FAILED, 0),
            recovered=counts.get(RequestStatus.RECOVERED, 0),
            handed_over=counts.get(RequestStatus.HANDED_OVER, 0),
            cancelled=counts.get(RequestStatus.CANCELLED, 0),
            shadowed=counts.get(RequestStatus.SHADOWED, 0),
            proven=proven,
        )

    @property
    def total(self) -> int:
        return (
            self.pending
            + self.sent
            + self.succeeded
            + self.failed
            + self.recovered
            + self.handed_over
            + self.cancelled
            + self.shadowed
        )

    @property
    def replayable_pending(self) -> int:
        return self.pending - self.pending_unreplayable

    @property
    def all_recovered(self) -> bool:
        """Every affected request is proven working again by its own sender's success."""
        return self.total > 0 and self.proven >= self.total

    @property
    def all_done(self) -> bool:
        """Every request worked: replayed successfully, or recovered by its sender."""
        return self.total > 0 and self.succeeded + self.recovered == self.total

    def words(self) -> str:
        parts = [
            f"{count} {name}"
            for name, count in (
                ("pending", self.pending),
                ("in flight", self.sent),
                ("succeeded", self.succeeded),
                ("recovered", self.recovered),
                ("failed", self.failed),
                ("handed over", self.handed_over),
                ("shadowed", self.shadowed),
                ("cancelled", self.cancelled),
            )
            if count
        ]
        noun = "request" if self.total == 1 else "requests"
        return f"{self.total} {noun}" + (f": {', '.join(parts)}" if parts else "")


class RequestView(Value):
    """One affected request, as shown in a plan, a snapshot or an escalation."""

    request_id: uuid.UUID
    idempotency_key: str
    status: RequestStatus
    replayable: bool
    vendor: str | None = None
    method: str | None = None
    path: str | None = None
    attempts: int = 0
    event_count: int = 1
    correlation_ids: tuple[str, ...] = ()
    last_status_code: int | None = None
    last_error: str | None = None
    note: str | None = None

    def words(self) -> str:
        what = f"{self.method} {self.path}" if self.replayable else "nothing to replay"
        via = f" via {self.vendor}" if self.vendor else ""
        trace = f" [{', '.join(self.correlation_ids)}]" if self.correlation_ids else ""
        return f"{what}{via}{trace}: {self.status.value}"


def plan_id(action_type: ActionType, requests: Iterable[tuple[uuid.UUID, str]]) -> str:
    """A plan's id is a digest of what it does: its action and the requests it covers (ids and
    their content hashes). An approval names it, so it approves exactly what was reviewed."""
    digest = hashlib.sha256(action_type.value.encode())
    for request_id, request_hash in sorted(requests, key=lambda r: str(r[0])):
        digest.update(f"\x1f{request_id}\x1e{request_hash}".encode())
    return f"plan-{digest.hexdigest()[:16]}"


class Plan(Value):
    """What a decision will do: its action, and for a retry the requests it sends."""

    plan_id: str
    decision_id: uuid.UUID
    action_id: uuid.UUID
    action_type: ActionType
    request_ids: tuple[uuid.UUID, ...] = ()
    request_count: int = 0
    requests: tuple[RequestView, ...] = ()  # the first few, for people
    vendors: tuple[str, ...] = ()
    is_reversible: bool = True
    approved_by: str | None = None
    # The two-person rule: who approved this plan first; a different principal completes it.
    first_approver: str | None = None

    def words(self) -> str:
        if self.action_type is ActionType.RETRY:
            noun = "request" if self.request_count == 1 else "requests"
            via = f" through {', '.join(self.vendors)}" if self.vendors else ""
            return f"retry {self.request_count} {noun}{via}"
        if self.action_type is ActionType.ESCALATE:
            return "escalate to the tenant's on-call"
        return "hand over for manual work"


class DecisionView(Value):
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


class ActionView(Value):
    """What became of an action (for a retry: the round that sent its plan's requests)."""

    action_id: uuid.UUID
    action_type: ActionType
    status: ActionStatus
    attempts: int = 0
    finished_at: datetime | None = None
    summary: str = ""
    error: str | None = None


class Verdict(Value):
    """What the gate said; ``control`` names the check that held the action, if any.

    ``episode_id`` is set when a systemic-failure episode holds the incident: its workflow
    tries to claim the episode's single escalation.
    """

    effect: GateEffect = GateEffect.ACT
    control: GateControl | None = None
    reason: str | None = None
    episode_id: uuid.UUID | None = None


class News(Value):
    """What signals brought since the workflow last looked: flags, cleared once handled."""

    recovered: bool = False
    joined: bool = False
    gate_changed: bool = False

    @property
    def any(self) -> bool:
        return self.recovered or self.joined or self.gate_changed


class Escalation(Value):
    """The last escalation to a human: delivered, or why not (the incident then waits for an
    operator with that reason in view; it never fails)."""

    delivered: bool
    summary: str
    shadow: bool = False
    at: datetime | None = None
    action_id: uuid.UUID | None = None


# --- what the workflow must do next, when a transition needs an activity ------------------


class CloseCmd(Value):
    """``only_if``: an automatic close, made on this count of the requests; it happens only
    while the requests are still exactly so (an operator's close has none: it always happens)."""

    status: IncidentStatus
    resolution: str
    only_if: Tally | None = None


class DecideCmd(Value):
    """Record a decision the analyzer did not make. ``request_ids`` with ``plan_id``: the
    decision adopts that plan as it is (an approval); otherwise the activity plans anew."""

    action_type: ActionType
    reasoning: str
    ai_model: str
    decided_by: str | None = None
    plan_id: str | None = None
    request_ids: tuple[uuid.UUID, ...] = ()
    confidence: float = Field(1.0, ge=0, le=1)


class IncidentState(Value):
    """One incident's whole lifecycle state: what continue-as-new carries, what the query and
    the UI read, what every transition function takes and returns."""

    phase: Phase = Phase.GROUPING
    status: IncidentStatus = IncidentStatus.NEW
    severity: Severity
    attempt: int = 1
    plan: Plan | None = None
    held_by: GateControl | None = None
    held_reason: str | None = None
    deadline: datetime | None = None  # of the current wait: window, approval, next re-check
    since: datetime | None = None  # the last round's end: verification counts from here
    news: News = News()
    tally: Tally = Tally()
    escalation: Escalation | None = None
    episode_id: uuid.UUID | None = None
    decisions: tuple[DecisionView, ...] = ()
    actions: tuple[ActionView, ...] = ()
    details: str = "new incident: grouping failures"
    resolution: str | None = None
    closing: bool = False  # an operator's resolve / ignore is being recorded
    answer: DecideCmd | None = None  # an operator's approve / reject, until it is recorded
    persisted_phase: Phase = Phase.GROUPING  # what incidents.phase says


# --- what the workflow's steps report -------------------------------------------------------


class AnalysisResult(Value):
    """A decision recorded (by the analyzer, an operator or the workflow's policy), the gate's
    verdict on it, and its plan. ``still_open`` False: the incident was closed meanwhile."""

    still_open: bool
    status: IncidentStatus
    tally: Tally = Tally()
    decision: DecisionView | None = None
    verdict: Verdict = Verdict()
    plan: Plan | None = None
    recorded_phase: Phase | None = None  # the phase the activity wrote on the incident


class RequestOutcome(Value):
    """One request's send: its state after, or why it was not sent now."""

    request_id: uuid.UUID
    status: RequestStatus
    attempts: int = 0
    status_code: int | None = None
    error: str | None = None
    held_by: GateControl | None = None  # kill switch or fuse: still PENDING, the round stops
    episode_id: uuid.UUID | None = None  # the fuse's episode, whose escalation it may claim
    stopped_by: GateControl | None = None  # mode or budget: not sent, the round stops
    reason: str | None = None
    gave_up_waiting: bool = False  # the vendor stayed unavailable past the maximum deferral

    @property
    def halts(self) -> bool:
        return self.held_by is not None or self.stopped_by is not None


class RoundResult(Value):
    """After a retry plan's requests were sent: the action's outcome and the incident's tally.

    ``failed`` lists (a sample of) the requests that failed for good or can never be sent;
    ``new_pending`` counts replayable requests that joined and are in no plan yet.
    """

    still_open: bool
    status: IncidentStatus
    tally: Tally
    action: ActionView | None = None
    held_by: GateControl | None = None
    held_reason: str | None = None
    episode_id: uuid.UUID | None = None
    stopped_by: GateControl | None = None
    stopped_reason: str | None = None
    gave_up_reason: str | None = None
    failed: tuple[RequestView, ...] = ()
    failed_count: int = 0
    new_pending: int = 0


class EscalationResult(Value):
    """An escalation or hand-over: the action's outcome and whether a human got it."""

    still_open: bool
    status: IncidentStatus
    action: ActionView
    delivered: bool
    handed_over: int = 0
    shadow: bool = False
    tally: Tally = Tally()


class VerificationResult(Value):
    """``resolved``: the activity closed the incident (the window passed with nothing new, or
    every request's own success arrived). ``new_failures``: failures since the round ended."""

    still_open: bool
    status: IncidentStatus
    resolved: bool = False
    resolution: str | None = None
    new_failures: int = 0
    tally: Tally = Tally()


class ReviewResult(Value):
    """The incident's requests read again after news (recovery evidence, new failures)."""

    still_open: bool
    status: IncidentStatus
    tally: Tally
    handed_over: int = 0


class ProbeResult(Value):
    holds: bool
    reason: str | None = None
    recheck_at: datetime | None = None
    still_open: bool = True
    status: IncidentStatus = IncidentStatus.ANALYZING
    tally: Tally = Tally()


class CloseResult(Value):
    """An open ``status``: an automatic close was declined, the requests having changed since
    they were counted (``tally``: as they are now)."""

    status: IncidentStatus
    resolution: str | None
    closed_now: bool
    cancelled: int = 0
    tally: Tally | None = None
    more: bool = False  # unsent requests may be left to cancel: the workflow closes again


class EpisodeResult(Value):
    """The fuse episode's escalation, as this incident saw it."""

    claimed: bool  # this incident owns the episode's escalation
    delivered: bool = False
    summary: str = ""


Command = CloseCmd | DecideCmd


class Transition(Value):
    """A new state and, when the move needs the database first, the command to run."""

    state: IncidentState
    command: Command | None = None
