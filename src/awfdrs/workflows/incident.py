"""``IncidentWorkflow``: one per incident, NEW → ANALYZING → ACTIONED → RESOLVED (or IGNORED).

The workflow only waits, handles messages and calls activities: where the incident goes next
is decided by the pure state machine in :mod:`awfdrs.lifecycle`, whose one state value is also
what continue-as-new carries and what the ``snapshot`` query shows.

The short database steps are local activities (no task-queue round trip). Sending a request to
a vendor and paging a human are regular activities: they may wait minutes for a breaker or a
rate limit. A retry round sends a plan's requests concurrently, each its own activity, so each
has its own attempts, lease and answer.

Operators act through updates validated before they are accepted. resolve / ignore record the
close from the handler itself, so they answer at once in every phase, even while a round waits
on a vendor: the close cancels every request not yet sent (in the same transaction), and a
request already in flight finishes and is recorded as such; a page waiting to be retried is
cancelled too.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from awfdrs import lifecycle
    from awfdrs.activities.actions import ActionActivities
    from awfdrs.activities.controls import ControlActivities
    from awfdrs.activities.incidents import IncidentActivities
    from awfdrs.activities.principals import PrincipalActivities
    from awfdrs.activities.requests import RequestActivities
    from awfdrs.constants import INCIDENT_WORKFLOW, SA_HELD_BY, SA_PHASE, SA_SEVERITY, SA_STATUS
    from awfdrs.contracts import (
        AbandonCommand,
        AnalyzeCommand,
        CloseCommand,
        CloseIncident,
        CredentialCheck,
        DecideCommand,
        EpisodeEscalation,
        ExecuteCommand,
        GateChange,
        GateProbe,
        IncidentInput,
        IncidentSnapshot,
        Observation,
        OperatorCommand,
        PhaseNote,
        ReviewCommand,
        SendCommand,
        SettleRound,
        VerifyCommand,
    )
    from awfdrs.enums import ActionType, GateControl, IncidentStatus, Phase, RequestStatus
    from awfdrs.lifecycle import machine
    from awfdrs.signing import APPROVE, IGNORE, REJECT, RESOLVE
    from awfdrs.words import span
    from awfdrs.workflows.policies import (
        LOCAL_BACKOFF_FIRST,
        LOCAL_BACKOFF_MAX,
        LOCAL_BUDGET,
        LOCAL_RETRY,
        LOCAL_TIMEOUT,
        PERMANENT_ERRORS,
    )

R = TypeVar("R")
A = TypeVar("A")

HISTORY_LIMIT = 8_000
# Patch id (docs/VERSIONING.md): approvals verified by the worker, two-person rule.
SIGNED_APPROVALS = "signed-approvals"
# Patch id: reject / resolve / ignore record a verified principal, or temporal:<name>.
VERIFIED_STOPS = "verified-stops"
# Patch id: a closed incident's sweep of unsent requests retries on a timer instead of giving
# up on its first failure, and runs after a close whose answer was lost.
SWEEP_RETRIES = "sweep-retries"
# How a local activity's failure reaches the workflow: its own error bare (ApplicationError,
# also for a non-retryable error type), a timeout wrapped (ActivityError).
LOCAL_FAILURES = (ActivityError, ApplicationError)
# Requests of one plan in flight at once; the vendor's rate limit and breaker still pace them.
SEND_CONCURRENCY = 8
# Phases the activities that enter them do not record themselves.
NOTED_PHASES = frozenset(
    {Phase.AWAITING_APPROVAL, Phase.HELD, Phase.ACTING, Phase.VERIFYING, Phase.AWAITING_OPERATOR}
)


class StepAbandoned(Exception):
    """A close overtook a step whose database work kept failing: nothing is left to do."""


class StepInterrupted(Exception):
    """A step's database work kept failing until history grew large: continue as new and run
    the phase's step again from the state (every step is idempotent and re-runnable from it)."""


@workflow.defn(name=INCIDENT_WORKFLOW, failure_exception_types=[ValidationError])
class IncidentWorkflow:
    @workflow.init
    def __init__(self, incident: IncidentInput) -> None:
        self._in = incident
        self._state = incident.carry or machine.start(
            incident.severity, workflow.now(), incident.params
        )
        self._sends: set[asyncio.Task[Any]] = set()
        # Dispatch starts the workflow with these search attributes, and continue-as-new keeps
        # them: the first upsert would only repeat them.
        self._published: tuple[object, ...] = (
            self._state.status,
            self._state.severity,
            None,
            self._state.phase,
        )
        self._published_details: str | None = None
        self._operator_closed = False
        # A close left unsent requests of a very large incident. A run that starts closed was
        # continued as new by the sweep itself (nothing else continues a closed run).
        self._unswept = self._state.phase is Phase.CLOSED
        self._woke_at: datetime | None = None  # when a wait last ended: news waits a floor

    # --- what ingest and operators can send -----------------------------------------------

    @workflow.signal(description="Ingest's news: raised severity, recovery evidence, new requests.")
    def observe(self, observation: Observation) -> None:
        before = self._state.severity
        self._state = machine.observe(
            self._state,
            severity=observation.severity,
            recovered=observation.recovered or observation.recovered_at is not None,
            joined=observation.joined,
        )
        if self._state.severity is not before:
            self._publish()  # the UI's severity filter must not wait for the next transition

    @workflow.signal(description="A control may have let go (kill switch released): re-check.")
    def gate_changed(self, change: GateChange) -> None:
        self._state = machine.gate_changed(self._state)

    @workflow.query(description="State, plan, requests, decisions and actions of this incident.")
    def snapshot(self) -> IncidentSnapshot:
        state = self._state
        described = lifecycle.describe(state)
        return IncidentSnapshot(
            incident_id=self._in.incident_id,
            tenant_id=self._in.tenant_id,
            title=self._in.title,
            status=state.status,
            severity=state.severity,
            phase=state.phase,
            attempt=state.attempt,
            details=described.headline,
            waiting_for=described.waiting_for,
            needs_a_human=described.needs_a_human,
            resolution=state.resolution,
            plan=state.plan,
            tally=state.tally,
            escalation=state.escalation,
            decisions=list(state.decisions),
            actions=list(state.actions),
        )

    @workflow.update(
        description="Approve the plan awaiting approval. {plan_id, actor, reason?}: plan_id must "
        "name that plan"
    )
    async def approve(self, command: OperatorCommand) -> IncidentSnapshot:
        if workflow.patched(SIGNED_APPROVALS):
            # Approving resumes automation: the worker verifies who asks (the credential the
            # API signed), and the two-person rule holds a plan that is not reversible for a
            # second principal. Histories from before this run on as they were recorded.
            first = self._state.plan.first_approver if self._state.plan else None
            actor = await self._verified(
                APPROVE,
                command.credential,
                command.plan_id,
                {"plan_id": command.plan_id, "reason": command.reason},
                refuse_principal=first,
                refusal=machine.second_approver_check(self._state, first) if first else None,
            )
            self._refuse_now(machine.approval_check(self._state, command.plan_id))
            self._refuse_now(machine.second_approver_check(self._state, actor))
            command = command.model_copy(update={"actor": actor, "credential": None})
            if machine.needs_second_approver(self._state, self._in.params):
                self._state = machine.first_approval(self._state, actor)
                self._publish()
                return self.snapshot()
        return await self._answer(True, command)

    @workflow.update(
        description="Reject the plan awaiting approval; the incident is escalated. "
        "{plan_id, actor, reason?}"
    )
    async def reject(self, command: OperatorCommand) -> IncidentSnapshot:
        if workflow.patched(VERIFIED_STOPS):
            args = {"plan_id": command.plan_id, "reason": command.reason}
            actor = await self._stopper(command, REJECT, args, command.plan_id)
            self._refuse_now(machine.approval_check(self._state, command.plan_id))
            command = command.model_copy(update={"actor": actor, "credential": None})
        return await self._answer(False, command)

    @approve.validator
    def _validate_approve(self, command: OperatorCommand) -> None:
        self._refuse(machine.approval_check(self._state, command.plan_id))

    @reject.validator
    def _validate_reject(self, command: OperatorCommand) -> None:
        self._refuse(machine.approval_check(self._state, command.plan_id))

    @workflow.update(description="Close the incident as RESOLVED. {actor, reason} both required.")
    async def resolve(self, command: CloseCommand) -> IncidentSnapshot:
        return await self._close_by(IncidentStatus.RESOLVED, RESOLVE, command)

    @workflow.update(description="Close the incident as IGNORED. {actor, reason} both required.")
    async def ignore(self, command: CloseCommand) -> IncidentSnapshot:
        return await self._close_by(IncidentStatus.IGNORED, IGNORE, command)

    async def _close_by(
        self, status: IncidentStatus, name: str, command: CloseCommand
    ) -> IncidentSnapshot:
        """An operator's close: the stopper is verified (never refused for its credential), the
        close re-checked after that activity (the incident may have closed meanwhile)."""
        if workflow.patched(VERIFIED_STOPS):
            actor = await self._stopper(command, name, {"reason": command.reason})
            self._refuse_now(machine.close_check(self._state))
            command = command.model_copy(update={"actor": actor, "credential": None})
        return await self._close_now(status, command)

    @resolve.validator
    def _validate_resolve(self, command: CloseCommand) -> None:
        self._refuse(machine.close_check(self._state))

    @ignore.validator
    def _validate_ignore(self, command: CloseCommand) -> None:
        self._refuse(machine.close_check(self._state))

    def _refuse(self, refusal: str | None) -> None:
        if refusal is not None:
            raise ValueError(f"incident {self._in.incident_id}: {refusal}")

    def _refuse_now(self, refusal: str | None) -> None:
        """A refusal from the handler, past the validator: fails the update, not the workflow."""
        if refusal is not None:
            raise ApplicationError(
                f"incident {self._in.incident_id}: {refusal}", type="Refused", non_retryable=True
            )

    async def _stopper(
        self,
        command: OperatorCommand | CloseCommand,
        name: str,
        args: dict[str, Any],
        plan_id: str | None = None,
    ) -> str:
        """Who stops: anyone with access to the namespace may (reject, resolve, ignore). The
        principal a credential names, once the worker has verified and spent it; without one,
        or with one that does not verify (expired while the worker was down, copied, forged),
        the stop still happens and the name is recorded as typed: ``temporal:<name>``."""
        typed = f"temporal:{command.actor}"[:255]
        if command.credential is None:
            return typed
        try:
            return await self._verified(name, command.credential, plan_id, args)
        except ApplicationError as refusal:
            workflow.logger.warning("%s: credential not accepted (%s)", name, refusal.message)
            return typed

    async def _verified(
        self,
        name: str,
        credential: str | None,
        plan_id: str | None,
        args: dict[str, Any],
        *,
        refuse_principal: str | None = None,
        refusal: str | None = None,
    ) -> str:
        """The principal the command's credential names, verified and spent by the worker
        (on this very check: a token copied from the history is worth nothing afterwards)."""
        try:
            return await workflow.execute_local_activity_method(
                PrincipalActivities.verify,
                CredentialCheck(
                    tenant_id=self._in.tenant_id,
                    command=name,
                    subject=str(self._in.incident_id),
                    plan_id=plan_id,
                    credential=credential,
                    args=args,
                    refuse_principal=refuse_principal,
                    refusal=refusal,
                ),
                start_to_close_timeout=LOCAL_TIMEOUT,
                schedule_to_close_timeout=LOCAL_BUDGET,
                retry_policy=LOCAL_RETRY,
                summary=f"verify the {name}'s credential",
            )
        except LOCAL_FAILURES as error:
            cause = error.cause if isinstance(error, ActivityError) else error
            message = cause.message if isinstance(cause, ApplicationError) else str(cause)
            raise ApplicationError(
                f"incident {self._in.incident_id}: {name} refused: {message}",
                type="Refused",
                non_retryable=True,
            ) from None

    async def _answer(self, approved: bool, command: OperatorCommand) -> IncidentSnapshot:
        self._state = machine.take_answer(
            self._state,
            machine.answer(
                self._state, approved=approved, actor=command.actor, reason=command.reason
            ),
        )
        # The main loop records the decision; answer once it is recorded, so the caller sees
        # its effect (or the close that overtook it).
        await workflow.wait_condition(
            lambda: self._state.answer is None or self._state.phase is Phase.CLOSED
        )
        return self.snapshot()

    async def _close_now(self, status: IncidentStatus, command: CloseCommand) -> IncidentSnapshot:
        """Record the close from the handler, whatever the main loop is waiting on."""
        self._state = machine.request_close(self._state)
        self._operator_closed = True
        verb = "resolved" if status is IncidentStatus.RESOLVED else "ignored"
        try:
            result = await self._budgeted(
                IncidentActivities.close,
                CloseIncident(
                    tenant_id=self._in.tenant_id,
                    incident_id=self._in.incident_id,
                    status=status,
                    resolution=f"{verb} by {command.actor}: {command.reason}",
                ),
                f"close as {status.value}",
            )
        except LOCAL_FAILURES as error:
            self._state = self._state.model_copy(update={"closing": False})
            if workflow.patched(SWEEP_RETRIES):
                # Its transaction may have committed before the answer was lost: if the
                # incident turns out closed, the sweep makes sure nothing is left PENDING.
                self._unswept = True
            raise ApplicationError(
                f"the {verb} could not be recorded, nothing changed: {error.cause or error}",
                type="CloseNotRecorded",
            ) from None
        self._state = machine.after_close(self._state, result)
        self._unswept = result.more
        for send in self._sends:
            send.cancel()  # what is in flight lands and is recorded by its activity
        self._publish()
        return self.snapshot()

    # --- the lifecycle ----------------------------------------------------------------------

    @workflow.run
    async def run(self, incident: IncidentInput) -> IncidentSnapshot:
        steps: dict[Phase, Callable[[], Awaitable[None]]] = {
            Phase.GROUPING: self._grouping,
            Phase.ANALYZING: self._analyzing,
            Phase.AWAITING_APPROVAL: self._awaiting_approval,
            Phase.HELD: self._held,
            Phase.ACTING: self._acting,
            Phase.VERIFYING: self._verifying,
            Phase.AWAITING_OPERATOR: self._awaiting_operator,
        }
        while not self._closed():
            try:
                await steps[self._state.phase]()
                if not self._closed():
                    await self._note_phase()
            except StepAbandoned:
                break
            except StepInterrupted:
                pass  # straight to the continue-as-new below
            if self._closed():
                break
            if self._should_continue_as_new():
                self._publish()
                await workflow.wait_condition(
                    lambda: workflow.all_handlers_finished() or self._busy()
                )
                if not self._busy():
                    workflow.continue_as_new(self._carry())
        self._publish()
        await workflow.wait_condition(workflow.all_handlers_finished)
        await self._sweep()
        if self._operator_closed:
            # Complete in a later task than the one answering the operator: a workflow task
            # that completes the run is refused when an event (a cancelled send's answer)
            # arrived meanwhile, and the update's answer in it would be lost with it.
            await workflow.sleep(timedelta(milliseconds=100), summary="close")
        return self.snapshot()

    def _closed(self) -> bool:
        return self._state.phase is Phase.CLOSED

    async def _sweep(self) -> None:
        """Cancel what a close had no time for (an incident of tens of thousands of requests):
        closing again, a budget at a time, until none is left. Claims already refuse them; this
        is so that no request of a closed incident is left PENDING. A database that fails it
        is waited out on a timer, as any step's is; a long outage continues as new."""
        backoff = LOCAL_BACKOFF_FIRST
        while self._unswept and self._closed():
            try:
                result = await self._budgeted(
                    IncidentActivities.close,
                    CloseIncident(
                        tenant_id=self._in.tenant_id,
                        incident_id=self._in.incident_id,
                        status=self._state.status,
                        resolution=self._state.resolution or "closed",
                    ),
                    "cancel the rest of the unsent requests",
                )
            except LOCAL_FAILURES as error:
                if not workflow.patched(SWEEP_RETRIES):
                    return  # as recorded before the patch: the run completed here
                workflow.logger.warning(
                    "cancelling the rest failed, trying again in %s: %s",
                    backoff,
                    error.cause or error,
                )
                await workflow.sleep(backoff, summary="retry: cancel the rest")
                backoff = min(LOCAL_BACKOFF_MAX, backoff * 2)
                if self._should_continue_as_new():
                    workflow.continue_as_new(self._carry())
                continue
            self._unswept = result.more

    def _busy(self) -> bool:
        return self._state.closing or self._state.answer is not None or bool(self._sends)

    def _should_continue_as_new(self) -> bool:
        info = workflow.info()
        return not self._busy() and (
            info.is_continue_as_new_suggested() or info.get_current_history_length() > HISTORY_LIMIT
        )

    async def _wait(
        self,
        deadline: datetime | None,
        news: Callable[[], bool],
        what: str,
        urgent: Callable[[], bool] = lambda: False,
    ) -> None:
        """Until ``news()``, ``urgent()`` (an operator's answer), a close, history growing
        large, or ``deadline``. News is taken no sooner than WAIT_FLOOR after the last wait
        ended, so a storm of signals costs a step a second, not a step (and its history) each.
        """
        floor = None if self._woke_at is None else self._woke_at + machine.WAIT_FLOOR

        def stop() -> bool:
            return urgent() or self._closed() or self._should_continue_as_new()

        while not stop():
            now = workflow.now()
            if deadline is not None and now >= deadline:
                break
            early = news() and floor is not None and now < floor
            if news() and not early:
                break
            ends = [t for t in (deadline, floor if early else None) if t is not None]
            timeout = (min(ends) - now).total_seconds() if ends else None
            self._publish()
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    stop if early else lambda: news() or stop(),
                    timeout=timeout,
                    timeout_summary=f"{what} (news waits {span(machine.WAIT_FLOOR)})"
                    if early
                    else what,
                )
        self._woke_at = workflow.now()

    def _due(self) -> bool:
        deadline = self._state.deadline
        return deadline is not None and workflow.now() >= deadline

    async def _apply(self, transition: lifecycle.Transition) -> None:
        """Take the new state, then run the command it asks for (close or decide)."""
        self._state = transition.state
        command = transition.command
        if isinstance(command, lifecycle.CloseCmd):
            result = await self._local(
                IncidentActivities.close,
                CloseIncident(
                    tenant_id=self._in.tenant_id,
                    incident_id=self._in.incident_id,
                    status=command.status,
                    resolution=command.resolution,
                    only_if=command.only_if,
                ),
                f"close as {command.status.value}",
            )
            self._state = machine.after_close(self._state, result)
            self._unswept = result.more
        elif isinstance(command, lifecycle.DecideCmd):
            await self._decide(command)

    async def _decide(self, command: lifecycle.DecideCmd) -> None:
        result = await self._local(
            IncidentActivities.decide,
            DecideCommand(
                tenant_id=self._in.tenant_id,
                incident_id=self._in.incident_id,
                decision_id=workflow.uuid4(),
                action_id=workflow.uuid4(),
                attempt=self._state.attempt,
                decision=command,
            ),
            f"record decision: {command.action_type.value}",
        )
        await self._apply(machine.after_decision(self._state, result))
        self._recorded(result)

    async def _grouping(self) -> None:
        await self._wait(
            self._state.deadline, lambda: self._state.news.recovered, "grouping window"
        )
        if self._closed() or self._should_continue_as_new():
            return
        if self._state.news.recovered:
            await self._review()
            if self._closed() or not self._due():
                return
        self._state = machine.grouping_over(self._state)

    async def _review(self, hand_over_to: Any = None) -> None:
        result = await self._local(
            IncidentActivities.review,
            ReviewCommand(
                tenant_id=self._in.tenant_id,
                incident_id=self._in.incident_id,
                hand_over_to=hand_over_to,
            ),
            "read the requests again",
        )
        await self._apply(machine.on_review(self._state, result))

    async def _analyzing(self) -> None:
        result = await self._local(
            IncidentActivities.analyze,
            AnalyzeCommand(
                tenant_id=self._in.tenant_id,
                incident_id=self._in.incident_id,
                attempt=self._state.attempt,
                decision_id=workflow.uuid4(),
                action_id=workflow.uuid4(),
            ),
            f"analyze (attempt {self._state.attempt})",
        )
        await self._apply(
            machine.after_analysis(self._state, result, workflow.now(), self._in.params)
        )
        self._recorded(result)

    def _recorded(self, result: lifecycle.AnalysisResult) -> None:
        """The analysis or decision wrote the phase its verdict leads to on the incident."""
        if result.recorded_phase is not None and not self._closed():
            self._state = self._state.model_copy(update={"persisted_phase": result.recorded_phase})

    async def _awaiting_approval(self) -> None:
        await self._wait(
            self._state.deadline,
            lambda: self._state.news.recovered,
            "approval timeout",
            urgent=lambda: self._state.answer is not None,
        )
        if self._closed():
            return
        if self._state.answer is not None:
            await self._decide(self._state.answer)
        elif self._state.news.recovered:
            await self._review()
        elif self._due():
            # Taken like an operator's answer: an approve arriving while the escalation is
            # being recorded is refused ("already answered"), not silently dropped.
            timed_out = machine.approval_timed_out(self._state, self._in.params)
            self._state = machine.take_answer(self._state, timed_out)
            await self._decide(timed_out)

    async def _held(self) -> None:
        state = self._state
        if state.episode_id is not None:
            episode = await self._activity(
                ControlActivities.escalate_episode,
                EpisodeEscalation(
                    tenant_id=self._in.tenant_id,
                    incident_id=self._in.incident_id,
                    episode_id=state.episode_id,
                ),
                "systemic-failure escalation",
            )
            self._state = machine.after_episode(
                self._state, episode or lifecycle.EpisodeResult(claimed=True, summary="no answer")
            )
        await self._wait(
            self._state.deadline,
            lambda: self._state.news.gate_changed or self._state.news.recovered,
            f"re-check {self._state.held_by.value if self._state.held_by else 'control'}",
        )
        if self._closed() or self._should_continue_as_new():
            return
        control = self._state.held_by or GateControl.KILL_SWITCH
        result = await self._local(
            ControlActivities.probe,
            GateProbe(
                tenant_id=self._in.tenant_id,
                incident_id=self._in.incident_id,
                control=control,
            ),
            f"still held by {control.value}?",
        )
        await self._apply(machine.after_probe(self._state, result, workflow.now(), self._in.params))

    async def _acting(self) -> None:
        plan = self._state.plan
        if plan is None:  # nothing to act on (cannot happen by the table): plan afresh
            self._state = lifecycle.move(self._state, Phase.ANALYZING)
            return
        if plan.action_type is ActionType.RETRY:
            await self._round(plan)
        else:
            await self._escalate(plan)

    async def _round(self, plan: lifecycle.Plan) -> None:
        """Send the plan's requests, a few at a time; stop launching at the first hold."""
        waiting = deque(plan.request_ids)
        running: dict[asyncio.Task[lifecycle.RequestOutcome], Any] = {}
        outcomes: list[lifecycle.RequestOutcome] = []
        halted = False
        self._publish()
        while running or (waiting and not halted and not self._closed()):
            while waiting and not halted and not self._closed() and len(running) < SEND_CONCURRENCY:
                request_id = waiting.popleft()
                task = asyncio.ensure_future(self._send(plan, request_id))
                running[task] = request_id
                self._sends.add(task)
            done, _ = await workflow.wait(list(running), return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                request_id = running.pop(task)
                self._sends.discard(task)
                outcome = self._outcome_of(task, request_id)
                if outcome is None:
                    continue  # cancelled by a close
                outcomes.append(outcome)
                halted = halted or outcome.halts or outcome.gave_up_waiting
        if self._closed():
            return
        result = await self._local(
            IncidentActivities.settle_round,
            SettleRound(
                tenant_id=self._in.tenant_id,
                incident_id=self._in.incident_id,
                action_id=plan.action_id,
                request_ids=list(plan.request_ids),
                outcomes=outcomes,
            ),
            f"settle: {len(outcomes)} of {plan.request_count} requests answered",
        )
        await self._apply(machine.after_round(self._state, result, workflow.now(), self._in.params))

    def _outcome_of(
        self, task: asyncio.Task[lifecycle.RequestOutcome], request_id: Any
    ) -> lifecycle.RequestOutcome | None:
        if task.cancelled():
            return None
        error = task.exception()
        if error is None:
            return task.result()
        if isinstance(error, asyncio.CancelledError):
            return None
        cause = error.cause if isinstance(error, ActivityError) else error
        return lifecycle.RequestOutcome(
            request_id=request_id,
            status=RequestStatus.FAILED,
            error=f"no answer: {cause}",
        )

    async def _send(self, plan: lifecycle.Plan, request_id: Any) -> lifecycle.RequestOutcome:
        params = self._in.params
        timeout = params.action_timeout_seconds
        return await workflow.execute_activity_method(
            RequestActivities.send,
            SendCommand(
                tenant_id=self._in.tenant_id,
                incident_id=self._in.incident_id,
                request_id=request_id,
                action_id=plan.action_id,
                max_attempts=params.action_max_attempts,
                timeout_seconds=timeout,
                max_deferral_seconds=params.max_deferral_seconds,
            ),
            start_to_close_timeout=timedelta(seconds=timeout),
            heartbeat_timeout=timedelta(seconds=max(3.0, min(timeout, 10.0))),
            # The activity gives up by itself after action_max_attempts vendor calls or the
            # tenant's maximum deferral. Deferrals are retries too, so the policy counts no
            # attempts and is bounded by time instead.
            schedule_to_close_timeout=timedelta(
                seconds=params.max_deferral_seconds
                + params.action_max_attempts * (timeout + 60)
                + 60
            ),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(seconds=params.action_retry_initial_seconds),
                backoff_coefficient=2.0,
                maximum_interval=timedelta(seconds=max(60, params.action_retry_initial_seconds)),
                maximum_attempts=0,
                non_retryable_error_types=PERMANENT_ERRORS,
            ),
            # A close does not wait for a send, and a send waiting to be retried never runs
            # again; one in flight learns at its next heartbeat, lands and is recorded.
            cancellation_type=ActivityCancellationType.TRY_CANCEL,
            summary=f"send request {request_id}",
        )

    async def _escalate(self, plan: lifecycle.Plan) -> None:
        params = self._in.params
        command = ExecuteCommand(
            tenant_id=self._in.tenant_id,
            incident_id=self._in.incident_id,
            action_id=plan.action_id,
            max_attempts=params.action_max_attempts,
            timeout_seconds=params.action_timeout_seconds,
        )
        self._publish()
        # Tracked like a send: a close cancels a page still waiting to be retried, so nobody
        # is paged about an incident an operator has already closed.
        page = asyncio.ensure_future(
            self._activity(ActionActivities.execute, command, plan.action_type.value, attempts=True)
        )
        self._sends.add(page)
        try:
            result = await page
        except asyncio.CancelledError:
            if not self._closed():
                raise
            result = None
        finally:
            self._sends.discard(page)
        if self._closed():
            return
        if result is None:
            result = await self._local(
                ActionActivities.abandon,
                AbandonCommand(
                    tenant_id=self._in.tenant_id,
                    incident_id=self._in.incident_id,
                    action_id=plan.action_id,
                    reason=f"no answer after {params.action_max_attempts} attempts",
                ),
                "record: not delivered",
            )
        await self._apply(machine.after_escalation(self._state, result, workflow.now()))

    async def _verifying(self) -> None:
        state = self._state
        await self._wait(
            state.deadline,
            lambda: self._state.news.recovered or self._state.news.joined,
            "verification window",
        )
        if self._closed() or (
            self._should_continue_as_new() and not self._due() and not self._state.news.any
        ):
            return
        since = state.since or workflow.now()
        result = await self._local(
            IncidentActivities.conclude_verification,
            VerifyCommand(
                tenant_id=self._in.tenant_id,
                incident_id=self._in.incident_id,
                since=since,
                window_seconds=self._in.params.verification_window_seconds,
                final=self._due(),
            ),
            "verify",
        )
        await self._apply(
            machine.after_verification(self._state, result, workflow.now(), self._in.params)
        )

    async def _awaiting_operator(self) -> None:
        await self._wait(
            None,
            lambda: self._state.news.recovered or self._state.news.joined,
            "operator",
        )
        if self._closed() or self._should_continue_as_new():
            return
        escalation = self._state.escalation
        await self._review(escalation.action_id if escalation is not None else None)

    async def _note_phase(self) -> None:
        state = self._state
        if state.phase in NOTED_PHASES and state.phase is not state.persisted_phase:
            await self._local(
                IncidentActivities.note_phase,
                PhaseNote(
                    tenant_id=self._in.tenant_id,
                    incident_id=self._in.incident_id,
                    phase=state.phase,
                    reason=lifecycle.describe(state).headline[:2000],
                    held_by=state.held_by,
                ),
                f"phase: {state.phase.value}",
            )
            self._state = self._state.model_copy(update={"persisted_phase": state.phase})

    # --- calling activities -----------------------------------------------------------------

    async def _budgeted(self, method: Callable[[Any, A], Awaitable[R]], arg: A, summary: str) -> R:
        """A database step as a local activity within its budget of seconds (policies.py)."""
        return await workflow.execute_local_activity_method(
            method,
            arg,
            start_to_close_timeout=LOCAL_TIMEOUT,
            schedule_to_close_timeout=LOCAL_BUDGET,
            retry_policy=LOCAL_RETRY,
            summary=summary,
        )

    async def _local(self, method: Callable[[Any, A], Awaitable[R]], arg: A, summary: str) -> R:
        """A database step as a local activity with a short budget. Past it (the database is
        down, a bug), wait on a durable timer and try again: updates, queries and worker
        shutdown get through in between, and the workflow never fails for it."""
        backoff = LOCAL_BACKOFF_FIRST
        details = self._state.details  # the failure is said once, not appended at each try
        failing: str | None = None
        while True:
            try:
                result = await self._budgeted(method, arg, summary)
            except LOCAL_FAILURES as error:
                if self._closed():
                    raise StepAbandoned from None
                workflow.logger.warning(
                    "%s failed, trying again in %s: %s", summary, backoff, error.cause or error
                )
                failing = f"{details} · {summary} failed ({error.cause or error}); trying again"
                self._state = self._state.model_copy(update={"details": failing})
                self._publish()
            else:
                if failing is not None and self._state.details == failing:
                    self._state = self._state.model_copy(update={"details": details})
                return result
            # An operator's close ends the wait, and the step: the incident needs nothing more.
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    self._closed, timeout=backoff, timeout_summary=f"retry: {summary}"
                )
            if self._closed():
                raise StepAbandoned
            if self._should_continue_as_new():
                # A long outage must not grow history without bound (a run is cut at 50k
                # events): the next run takes the phase's step again from the carried state.
                if failing is not None and self._state.details == failing:
                    self._state = self._state.model_copy(update={"details": details})
                raise StepInterrupted
            backoff = min(LOCAL_BACKOFF_MAX, backoff * 2)

    async def _activity(
        self,
        method: Callable[[Any, A], Awaitable[R]],
        arg: A,
        summary: str,
        *,
        attempts: bool = False,
    ) -> R | None:
        """A regular activity (a page to a human); None when it gave no answer in time."""
        params = self._in.params
        try:
            return await workflow.execute_activity_method(
                method,
                arg,
                start_to_close_timeout=timedelta(seconds=params.action_timeout_seconds),
                schedule_to_close_timeout=timedelta(
                    seconds=params.action_max_attempts * (params.action_timeout_seconds + 60)
                ),
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(seconds=params.action_retry_initial_seconds),
                    backoff_coefficient=2.0,
                    maximum_interval=timedelta(seconds=60),
                    maximum_attempts=params.action_max_attempts if attempts else 0,
                    non_retryable_error_types=PERMANENT_ERRORS,
                ),
                summary=summary,
            )
        except ActivityError as error:
            workflow.logger.warning("%s gave no answer: %s", summary, error.cause or error)
            return None

    # --- what the Temporal UI shows ---------------------------------------------------------

    def _publish(self) -> None:
        """Search attributes and current details, each sent only when it changed."""
        state = self._state
        details = lifecycle.markdown(state, self._in.title)
        if details != self._published_details:
            self._published_details = details
            workflow.set_current_details(details)
        held = (
            state.held_by.value
            if state.held_by is not None
            else "approval"
            if state.phase is Phase.AWAITING_APPROVAL
            else None
        )
        published = (state.status, state.severity, held, state.phase)
        if published == self._published:
            return
        self._published = published
        workflow.upsert_search_attributes(
            [
                SA_STATUS.value_set(state.status.value),
                SA_SEVERITY.value_set(state.severity.value),
                SA_HELD_BY.value_set(held) if held else SA_HELD_BY.value_unset(),
                SA_PHASE.value_set(state.phase.value),
            ]
        )

    def _carry(self) -> IncidentInput:
        return self._in.model_copy(update={"severity": self._state.severity, "carry": self._state})
