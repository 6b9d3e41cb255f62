"""``IncidentWorkflow``: one per incident, NEW → ANALYZING → ACTIONED → RESOLVED (or IGNORED).

The short database steps (analyse, decide, verify, close, probe the gate) are local
activities: idempotent by ids the workflow chose, they need no task-queue round trip, which
halves what the server does per incident. Acting on a vendor or a webhook is a regular
activity: it may be retried for minutes, with the delays a breaker or a vendor asks for.

Counts and events live in PostgreSQL, so a hot incident's history holds only what it acts on:
ingest signals it for recovery evidence and raised severity, never once per event. Operators act
through updates (approve, reject, resolve, ignore) that are validated before they are accepted,
and the ``snapshot`` query shows the state, decisions and actions.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from awfdrs.activities.actions import ActionActivities
    from awfdrs.activities.controls import ControlActivities
    from awfdrs.activities.incidents import IncidentActivities
    from awfdrs.constants import INCIDENT_WORKFLOW, SA_HELD_BY, SA_SEVERITY, SA_STATUS
    from awfdrs.contracts import (
        AbandonCommand,
        ActionOutcome,
        ActionPlan,
        AnalysisOutcome,
        AnalyzeCommand,
        Carry,
        CloseCommand,
        CloseIncident,
        DecideCommand,
        DecisionSummary,
        EpisodeEscalation,
        ExecuteCommand,
        GateChange,
        GateProbe,
        IncidentInput,
        IncidentSnapshot,
        Observation,
        OperatorCommand,
        VerifyCommand,
    )
    from awfdrs.enums import ActionStatus, ActionType, GateControl, GateEffect, IncidentStatus
    from awfdrs.workflows.policies import DB_RETRY, DB_TIMEOUT

GROUPING = "grouping"
ANALYZE = "analyze"
AWAIT_APPROVAL = "awaiting_approval"
HELD = "held"
ACT = "acting"
VERIFY = "verifying"
AWAIT_OPERATOR = "awaiting_operator"
CLOSED = "closed"

POLICY_MODEL = "awfdrs-policy/1"
OPERATOR_MODEL = "operator"
KEPT_SUMMARIES = 20
HISTORY_LIMIT = 8_000


@workflow.defn(name=INCIDENT_WORKFLOW, failure_exception_types=[ValidationError])
class IncidentWorkflow:
    @workflow.init
    def __init__(self, incident: IncidentInput) -> None:
        carry = incident.carry or Carry(
            phase=GROUPING, status=IncidentStatus.NEW, severity=incident.severity, attempt=1
        )
        self._in = incident
        self._phase = carry.phase
        self._status = carry.status
        self._severity = carry.severity
        self._attempt = carry.attempt
        self._pending: ActionPlan | None = carry.pending
        self._since = carry.since
        self._recovered_at = carry.recovered_at
        self._deadline = carry.deadline
        self._decisions: list[DecisionSummary] = list(carry.decisions)
        self._actions: list[ActionOutcome] = list(carry.actions)
        self._details = carry.details or "new incident: grouping failures"
        self._held_by: str | None = carry.held_by
        self._gate_changed = False
        self._resolution: str | None = None
        self._close_request: tuple[IncidentStatus, CloseCommand] | None = None
        self._approval: tuple[bool, OperatorCommand] | None = None
        # Dispatch starts the workflow with these search attributes, and continue-as-new keeps
        # them: the first upsert would only repeat them.
        self._published: tuple[object, ...] = (self._status, self._severity, self._held_by)
        self._published_details: str | None = None

    # --- what operators and ingest can send ---------------------------------------------

    @workflow.signal(description="Ingest's news for this incident: raised severity, recovery.")
    def observe(self, observation: Observation) -> None:
        if observation.severity and observation.severity.rank > self._severity.rank:
            self._severity = observation.severity
            self._publish()  # the UI's severity filter must not wait for the next transition
        if observation.recovered_at and self._phase != CLOSED:
            self._recovered_at = max(
                self._recovered_at or observation.recovered_at, observation.recovered_at
            )

    @workflow.signal(description="A control may have let go (kill switch released): re-check.")
    def gate_changed(self, change: GateChange) -> None:
        if self._phase == HELD:
            self._gate_changed = True

    @workflow.query(description="State, decisions and actions of this incident.")
    def snapshot(self) -> IncidentSnapshot:
        return IncidentSnapshot(
            incident_id=self._in.incident_id,
            tenant_id=self._in.tenant_id,
            title=self._in.title,
            status=self._status,
            severity=self._severity,
            phase=self._phase,
            attempt=self._attempt,
            details=self._details,
            waiting_for={
                AWAIT_APPROVAL: "approval",
                AWAIT_OPERATOR: "operator",
                HELD: self._held_by,
            }.get(self._phase),
            resolution=self._resolution,
            decisions=self._decisions,
            actions=self._actions,
        )

    @workflow.update(
        description="Approve the held action; it runs despite the gate. {actor, reason?}"
    )
    async def approve(self, command: OperatorCommand) -> IncidentSnapshot:
        return await self._answer(True, command)

    @workflow.update(
        description="Reject the held action; the incident is escalated. {actor, reason?}"
    )
    async def reject(self, command: OperatorCommand) -> IncidentSnapshot:
        return await self._answer(False, command)

    @approve.validator
    def _validate_approve(self, command: OperatorCommand) -> None:
        self._require_waiting_for_approval()

    @reject.validator
    def _validate_reject(self, command: OperatorCommand) -> None:
        self._require_waiting_for_approval()

    @workflow.update(description="Close the incident as RESOLVED. {actor, reason} both required.")
    async def resolve(self, command: CloseCommand) -> IncidentSnapshot:
        return await self._request_close(IncidentStatus.RESOLVED, command)

    @workflow.update(description="Close the incident as IGNORED. {actor, reason} both required.")
    async def ignore(self, command: CloseCommand) -> IncidentSnapshot:
        return await self._request_close(IncidentStatus.IGNORED, command)

    @resolve.validator
    def _validate_resolve(self, command: CloseCommand) -> None:
        self._require_open()

    @ignore.validator
    def _validate_ignore(self, command: CloseCommand) -> None:
        self._require_open()

    def _require_open(self) -> None:
        if self._phase == CLOSED:
            raise ValueError(f"incident {self._in.incident_id} is already {self._status.value}")
        if self._close_request is not None:
            raise ValueError(f"incident {self._in.incident_id} is already being closed")

    def _require_waiting_for_approval(self) -> None:
        self._require_open()
        if self._phase != AWAIT_APPROVAL or self._approval is not None:
            raise ValueError(
                f"incident {self._in.incident_id} is not waiting for approval "
                f"(status {self._status.value}, {self._phase})"
            )

    async def _answer(self, approved: bool, command: OperatorCommand) -> IncidentSnapshot:
        self._approval = (approved, command)
        # Answer once the decision is recorded, so the caller sees its effect.
        await workflow.wait_condition(lambda: self._approval is None or self._phase == CLOSED)
        return self.snapshot()

    async def _request_close(
        self, status: IncidentStatus, command: CloseCommand
    ) -> IncidentSnapshot:
        self._close_request = (status, command)
        await workflow.wait_condition(lambda: self._phase == CLOSED)
        return self.snapshot()

    # --- the lifecycle ------------------------------------------------------------------

    @workflow.run
    async def run(self, incident: IncidentInput) -> IncidentSnapshot:
        steps = {
            GROUPING: self._grouping,
            ANALYZE: self._analyze,
            AWAIT_APPROVAL: self._await_approval,
            HELD: self._held,
            ACT: self._act,
            VERIFY: self._verify,
            AWAIT_OPERATOR: self._await_operator,
        }
        # Search attributes and details are published where the workflow yields (a timer, a
        # wait, a regular activity, the end): what changes and changes again inside one
        # workflow task is never visible to anyone, so it is not sent.
        while self._phase != CLOSED:
            if self._close_request is not None:
                await self._apply_close_request()
            else:
                await steps[self._phase]()
            if self._phase != CLOSED and self._should_continue_as_new():
                self._publish()
                await workflow.wait_condition(
                    lambda: workflow.all_handlers_finished() or self._busy()
                )
                if not self._busy():
                    workflow.continue_as_new(self._carry())
        self._publish()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.snapshot()

    def _busy(self) -> bool:
        return self._close_request is not None or self._approval is not None

    def _should_continue_as_new(self) -> bool:
        info = workflow.info()
        return not self._busy() and (
            info.is_continue_as_new_suggested() or info.get_current_history_length() > HISTORY_LIMIT
        )

    async def _wait(self, seconds: float | None, ready: Callable[[], bool], summary: str) -> None:
        """Until ``ready()``, an operator's close, history growing large, or ``seconds``."""

        def woken() -> bool:
            return ready() or self._close_request is not None or self._should_continue_as_new()

        if seconds is not None and seconds <= 0:
            return  # no wait, nothing to show in between
        self._publish()
        try:
            await workflow.wait_condition(woken, timeout=seconds, timeout_summary=summary)
        except TimeoutError:
            return

    async def _grouping(self) -> None:
        window = self._in.params.grouping_window_seconds
        self._details = f"NEW: grouping failures for {timedelta(seconds=window)}"
        await self._wait(window, lambda: self._recovered_at is not None, "grouping window")
        if self._close_request is not None or self._should_continue_as_new():
            return
        if self._recovered_at is not None:
            await self._close(
                IncidentStatus.RESOLVED,
                f"transient: recovered at {self._recovered_at.isoformat()} within the grouping "
                "window",
            )
            return
        self._phase = ANALYZE

    async def _analyze(self) -> None:
        self._details = f"ANALYZING (attempt {self._attempt})"
        outcome = await workflow.execute_local_activity_method(
            IncidentActivities.analyze,
            AnalyzeCommand(
                tenant_id=self._in.tenant_id,
                incident_id=self._in.incident_id,
                attempt=self._attempt,
                decision_id=workflow.uuid4(),
                action_id=workflow.uuid4(),
            ),
            start_to_close_timeout=DB_TIMEOUT,
            retry_policy=DB_RETRY,
            summary=f"analyze (attempt {self._attempt})",
        )
        if not self._take(outcome):
            return
        await self._follow(outcome)

    async def _follow(self, outcome: AnalysisOutcome) -> None:
        """Go where the gate's verdict says."""
        decision, verdict = outcome.decision, outcome.verdict
        assert decision is not None
        assert verdict is not None
        what = decision.decision_type.value
        if verdict.episode_id is not None:
            self._publish()
            await workflow.execute_activity_method(
                ControlActivities.escalate_episode,
                EpisodeEscalation(
                    tenant_id=self._in.tenant_id,
                    episode_id=verdict.episode_id,
                    incident_id=self._in.incident_id,
                ),
                start_to_close_timeout=DB_TIMEOUT,
                retry_policy=DB_RETRY,
                summary="escalate the systemic-failure episode",
            )
        effect = verdict.effect
        if effect in (GateEffect.ACT, GateEffect.ESCALATE):
            self._pending = outcome.action
            self._phase = ACT
        elif effect is GateEffect.APPROVAL:
            self._phase = AWAIT_APPROVAL
            self._held_by = "approval"
            approval = timedelta(seconds=self._in.params.approval_timeout_seconds)
            self._deadline = workflow.now() + approval
            self._details = f"ANALYZING: {what} held by {verdict.control}: {verdict.reason}"
        elif effect is GateEffect.HOLD:
            assert verdict.control is not None
            self._hold(verdict.control, verdict.reason or "", outcome.action)
        else:  # SHADOW records the action as not executed; RECORD records the decision only
            if outcome.action is not None:
                shadow = ActionOutcome(
                    action_id=outcome.action.action_id,
                    action_type=outcome.action.action_type,
                    status=ActionStatus.SHADOWED,
                    attempts=0,
                    summary="shadow mode: not executed",
                )
                self._actions = [*self._actions, shadow][-KEPT_SUMMARIES:]
            self._phase = AWAIT_OPERATOR
            self._details = f"ANALYZING: {what} not executed, {verdict.reason}"

    def _hold(self, control: GateControl, reason: str, pending: ActionPlan | None) -> None:
        self._phase = HELD
        self._held_by = control.value
        self._pending = pending
        self._gate_changed = False
        self._deadline = None
        self._details = f"{self._status.value}: {reason}"

    async def _held(self) -> None:
        """Wait until the control lets go (signal, expiry or the periodic re-check), then go
        on: to the held action if there is one, else to a fresh analysis."""
        control = GateControl(self._held_by or GateControl.KILL_SWITCH.value)
        recheck = self._in.params.held_recheck_seconds
        if self._deadline is not None:
            recheck = min(recheck, (self._deadline - workflow.now()).total_seconds())
        await self._wait(
            max(recheck, 0.0),
            lambda: self._gate_changed or self._recovered_at is not None,
            f"re-check {control.value}",
        )
        if self._close_request is not None or self._should_continue_as_new():
            return
        if self._recovered_at is not None and self._pending is None:
            await self._close(IncidentStatus.RESOLVED, "recovered while held, before any action")
            return
        self._gate_changed = False
        probe = await workflow.execute_local_activity_method(
            ControlActivities.probe,
            GateProbe(
                tenant_id=self._in.tenant_id, incident_id=self._in.incident_id, control=control
            ),
            start_to_close_timeout=DB_TIMEOUT,
            retry_policy=DB_RETRY,
            summary=f"still held by {control.value}?",
        )
        if probe.holds:
            self._deadline = probe.recheck_at
            if probe.reason:
                self._details = f"{self._status.value}: {probe.reason}"
            return
        self._held_by = None
        self._deadline = None
        self._phase = ACT if self._pending is not None else ANALYZE

    def _take(self, outcome: AnalysisOutcome) -> bool:
        """Record a decision outcome; False when the incident turned out to be closed."""
        self._status = outcome.status
        if not outcome.still_open:
            self._phase = CLOSED
            self._details = f"{outcome.status.value}: closed elsewhere"
            return False
        if outcome.decision is not None:
            self._decisions = [*self._decisions, outcome.decision][-KEPT_SUMMARIES:]
        return True

    async def _await_approval(self) -> None:
        assert self._deadline is not None
        remaining = (self._deadline - workflow.now()).total_seconds()
        await self._wait(
            remaining,
            lambda: self._approval is not None or self._recovered_at is not None,
            "approval timeout",
        )
        if self._close_request is not None:
            return
        answer = self._approval
        if answer is None and self._recovered_at is not None:
            await self._close(IncidentStatus.RESOLVED, "recovered before any action was taken")
            return
        if answer is None and self._deadline > workflow.now():
            return  # woken to continue as new
        last = self._decisions[-1] if self._decisions else None
        if answer is None:
            timeout = timedelta(seconds=self._in.params.approval_timeout_seconds)
            await self._decide(
                ActionType.ESCALATE,
                f"no operator approved or rejected within {timeout}; escalating",
                POLICY_MODEL,
            )
        else:
            approved, command = answer
            why = command.reason or "no reason given"
            if approved:
                action_type = last.decision_type if last else ActionType.MANUAL
                reasoning = f"approved by {command.actor}: {why}"
            else:
                action_type = ActionType.ESCALATE
                reasoning = f"rejected by {command.actor}: {why}; escalating"
            await self._decide(action_type, reasoning, OPERATOR_MODEL, decided_by=command.actor)
            self._approval = None
        self._held_by = None

    async def _decide(
        self,
        action_type: ActionType,
        reasoning: str,
        model: str,
        *,
        decided_by: str | None = None,
    ) -> None:
        outcome = await workflow.execute_local_activity_method(
            IncidentActivities.decide,
            DecideCommand(
                tenant_id=self._in.tenant_id,
                incident_id=self._in.incident_id,
                decision_id=workflow.uuid4(),
                action_id=workflow.uuid4(),
                action_type=action_type,
                attempt=self._attempt,
                reasoning=reasoning,
                confidence=1.0,
                ai_model=model,
                decided_by=decided_by,
            ),
            start_to_close_timeout=DB_TIMEOUT,
            retry_policy=DB_RETRY,
            summary=f"record decision: {action_type.value}",
        )
        if self._take(outcome):
            self._pending = outcome.action
            self._phase = ACT

    async def _act(self) -> None:
        plan = self._pending
        assert plan is not None
        params = self._in.params
        self._details = f"acting: {plan.action_type.value} (attempt {self._attempt})"
        self._publish()
        try:
            outcome = await workflow.execute_activity_method(
                ActionActivities.execute,
                ExecuteCommand(
                    tenant_id=self._in.tenant_id,
                    incident_id=self._in.incident_id,
                    action_id=plan.action_id,
                    max_attempts=params.action_max_attempts,
                    timeout_seconds=params.action_timeout_seconds,
                ),
                start_to_close_timeout=timedelta(seconds=params.action_timeout_seconds),
                # The activity gives up by itself after action_max_attempts vendor calls or the
                # tenant's maximum deferral. Deferrals are retries too, so the policy counts no
                # attempts and is bounded by time instead.
                schedule_to_close_timeout=timedelta(
                    seconds=params.max_deferral_seconds
                    + params.action_max_attempts * (params.action_timeout_seconds + 60)
                    + 60
                ),
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(seconds=params.action_retry_initial_seconds),
                    backoff_coefficient=2.0,
                    maximum_interval=timedelta(
                        seconds=max(60, params.action_retry_initial_seconds)
                    ),
                    maximum_attempts=0,
                ),
                summary=f"{plan.action_type.value}",
            )
        except ActivityError as error:
            outcome = await workflow.execute_local_activity_method(
                ActionActivities.abandon,
                AbandonCommand(
                    tenant_id=self._in.tenant_id,
                    incident_id=self._in.incident_id,
                    action_id=plan.action_id,
                    reason=f"no result after {params.action_max_attempts} attempts: "
                    f"{error.cause or error}",
                ),
                start_to_close_timeout=DB_TIMEOUT,
                retry_policy=DB_RETRY,
            )
        if outcome.held_by is not None:
            self._hold(outcome.held_by, outcome.held_reason or "", plan)
            return
        self._actions = [*self._actions, outcome][-KEPT_SUMMARIES:]
        self._pending = None
        self._status = IncidentStatus.ACTIONED
        self._since = outcome.finished_at or workflow.now()
        done = outcome.status is ActionStatus.SUCCEEDED
        if outcome.gave_up_waiting:
            await self._decide(
                ActionType.ESCALATE,
                f"the vendor stayed unavailable: {outcome.error}; escalating",
                POLICY_MODEL,
            )
            return
        if outcome.action_type is ActionType.RETRY:
            if done:
                self._phase = VERIFY
                window = timedelta(seconds=params.verification_window_seconds)
                self._deadline = workflow.now() + window
            else:
                await self._next_attempt(f"retry failed: {outcome.error or outcome.summary}")
            return
        self._phase = AWAIT_OPERATOR
        what = "escalated" if outcome.action_type is ActionType.ESCALATE else "handed over"
        self._details = (
            f"ACTIONED: {what}; waiting for an operator to resolve"
            if done
            else f"ACTIONED: {outcome.action_type.value} failed ({outcome.error}); "
            "waiting for an operator"
        )

    async def _next_attempt(self, why: str) -> None:
        self._attempt += 1
        if self._attempt <= self._in.params.max_attempts:
            self._phase = ANALYZE
            return
        self._attempt = self._in.params.max_attempts
        await self._decide(
            ActionType.ESCALATE,
            f"{self._in.params.max_attempts} attempts did not resolve the incident ({why}); "
            "escalating",
            POLICY_MODEL,
        )

    async def _verify(self) -> None:
        window = self._in.params.verification_window_seconds
        since = self._since
        assert since is not None
        assert self._deadline is not None
        self._details = f"ACTIONED: verifying for {timedelta(seconds=window)}"
        await self._wait(
            (self._deadline - workflow.now()).total_seconds(),
            lambda: self._recovered_at is not None and self._recovered_at >= since,
            "verification window",
        )
        if self._close_request is not None:
            return
        if self._recovered_at is not None and self._recovered_at >= since:
            await self._close(
                IncidentStatus.RESOLVED,
                f"verified: the operation succeeded again at {self._recovered_at.isoformat()}",
            )
            return
        if workflow.now() < self._deadline:
            return  # woken to continue as new; the window goes on in the next run
        verdict = await workflow.execute_local_activity_method(
            IncidentActivities.conclude_verification,
            VerifyCommand(
                tenant_id=self._in.tenant_id,
                incident_id=self._in.incident_id,
                signature=self._in.signature,
                since=since,
                window_seconds=window,
            ),
            start_to_close_timeout=DB_TIMEOUT,
            retry_policy=DB_RETRY,
            summary="verify",
        )
        if verdict.resolved or not verdict.still_open:
            self._status = IncidentStatus.RESOLVED if verdict.resolved else self._status
            self._resolution = "verified: no new failures within the verification window"
            self._details = f"RESOLVED: {self._resolution}"
            self._phase = CLOSED
            return
        await self._next_attempt(f"{verdict.new_failures} new failures after the action")

    async def _await_operator(self) -> None:
        await self._wait(None, lambda: self._recovered_at is not None, "operator")
        if self._close_request is None and self._recovered_at is not None:
            await self._close(
                IncidentStatus.RESOLVED,
                f"recovered: the operation succeeded again at {self._recovered_at.isoformat()}",
            )

    async def _apply_close_request(self) -> None:
        assert self._close_request is not None
        status, command = self._close_request
        verb = "resolved" if status is IncidentStatus.RESOLVED else "ignored"
        await self._close(status, f"{verb} by {command.actor}: {command.reason}")
        self._approval = None

    async def _close(self, status: IncidentStatus, resolution: str) -> None:
        outcome = await workflow.execute_local_activity_method(
            IncidentActivities.close,
            CloseIncident(
                tenant_id=self._in.tenant_id,
                incident_id=self._in.incident_id,
                status=status,
                resolution=resolution,
            ),
            start_to_close_timeout=DB_TIMEOUT,
            retry_policy=DB_RETRY,
            summary=f"close as {status.value}",
        )
        self._status = outcome.status
        self._resolution = outcome.resolution
        self._details = f"{outcome.status.value}: {outcome.resolution}"
        self._held_by = None
        self._phase = CLOSED

    # --- what the Temporal UI shows -----------------------------------------------------

    def _publish(self) -> None:
        """Search attributes and current details, each sent only when it changed."""
        details = (
            f"**{self._status.value}** · {self._severity.value} · attempt {self._attempt}  \n"
            f"{self._details}"
        )
        if details != self._published_details:
            self._published_details = details
            workflow.set_current_details(details)
        state = (self._status, self._severity, self._held_by)
        if state == self._published:
            return
        self._published = state
        workflow.upsert_search_attributes(
            [
                SA_STATUS.value_set(self._status.value),
                SA_SEVERITY.value_set(self._severity.value),
                SA_HELD_BY.value_set(self._held_by) if self._held_by else SA_HELD_BY.value_unset(),
            ]
        )

    def _carry(self) -> IncidentInput:
        return self._in.model_copy(
            update={
                "severity": self._severity,
                "carry": Carry(
                    phase=self._phase,
                    status=self._status,
                    severity=self._severity,
                    attempt=self._attempt,
                    pending=self._pending,
                    since=self._since,
                    recovered_at=self._recovered_at,
                    deadline=self._deadline,
                    held_by=self._held_by,
                    decisions=self._decisions,
                    actions=self._actions,
                    details=self._details,
                ),
            }
        )
