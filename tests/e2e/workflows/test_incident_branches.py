"""IncidentWorkflow: every branch, with stand-in activities on the time-skipping test server.

The stand-ins answer from a per-test script and record what they were called with, as
temporalio's samples do; the workflow runs in the sandbox, so nondeterminism fails here first.
Assertions are on what a user notices: the ``snapshot`` query, which steps ran with what, the
workflow's status and history length, and wall time where a promise is about time.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
from temporalio import activity
from temporalio.client import (
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from awfdrs.activities.principals import verify_or_refuse
from awfdrs.constants import incident_workflow_id
from awfdrs.contracts import (
    AbandonCommand,
    ActionView,
    AnalysisResult,
    AnalyzeCommand,
    CloseCommand,
    CloseIncident,
    CloseResult,
    CredentialCheck,
    DecideCommand,
    DecisionView,
    EpisodeEscalation,
    EpisodeResult,
    EscalationResult,
    ExecuteCommand,
    GateChange,
    GateProbe,
    IncidentInput,
    IncidentParams,
    IncidentSnapshot,
    Observation,
    OperatorCommand,
    PhaseNote,
    Plan,
    ProbeResult,
    RequestOutcome,
    RequestView,
    ReviewCommand,
    ReviewResult,
    RoundResult,
    SendCommand,
    SettleRound,
    Tally,
    Verdict,
    VerificationResult,
    VerifyCommand,
)
from awfdrs.enums import (
    ActionStatus,
    ActionType,
    GateControl,
    GateEffect,
    IncidentStatus,
    Phase,
    RequestStatus,
    Severity,
)
from awfdrs.lifecycle import OPERATOR_MODEL, POLICY_MODEL, WAIT_FLOOR, machine, plan_id
from awfdrs.signing import Scope
from awfdrs.words import same_principal
from awfdrs.workflows import incident as incident_module
from awfdrs.workflows.incident import HISTORY_LIMIT, IncidentWorkflow
from tests.support.principals import SIGNER

PARAMS = IncidentParams(
    grouping_window_seconds=0,
    verification_window_seconds=300,
    approval_timeout_seconds=3600,
    max_attempts=3,
    action_timeout_seconds=30,
    action_retry_initial_seconds=1,
    action_max_attempts=3,
    held_recheck_seconds=600,
    max_deferral_seconds=900,
)
PROMISED_ANSWER = 2.0  # seconds of wall time for resolve / ignore, whatever the phase

C = TypeVar("C")
R = TypeVar("R")


# --- canned values -----------------------------------------------------------------------------


def make_plan(n: int = 3, action_type: ActionType = ActionType.RETRY, seed: int = 0) -> Plan:
    ids = tuple(uuid.UUID(int=seed * 1000 + i + 1) for i in range(n))
    views = tuple(
        RequestView(
            request_id=i,
            idempotency_key=f"key-{i}",
            status=RequestStatus.PENDING,
            replayable=True,
            vendor="stripe",
            method="POST",
            path="/v1/charges",
        )
        for i in ids
    )
    return Plan(
        plan_id=plan_id(action_type, [(i, "content") for i in ids]),
        decision_id=uuid.uuid4(),
        action_id=uuid.uuid4(),
        action_type=action_type,
        request_ids=ids if action_type is ActionType.RETRY else (),
        request_count=n,
        requests=views,
        vendors=("stripe",),
    )


PLAN = make_plan()
PENDING = Tally(pending=3)
RECOVERED = Tally(recovered=3, proven=3)


def decision_view(kind: ActionType, *, decided_by: str | None = None) -> DecisionView:
    return DecisionView(
        decision_id=uuid.uuid4(),
        decision_type=kind,
        confidence=0.9,
        reasoning="canned",
        ai_model="stand-in",
        attempt=1,
        decided_by=decided_by,
    )


def analysis(
    effect: GateEffect = GateEffect.ACT,
    plan: Plan = PLAN,
    *,
    control: GateControl | None = None,
    reason: str | None = None,
) -> AnalysisResult:
    return AnalysisResult(
        still_open=True,
        status=IncidentStatus.ANALYZING,
        tally=PENDING,
        decision=decision_view(plan.action_type),
        verdict=Verdict(effect=effect, control=control, reason=reason),
        plan=plan,
        recorded_phase=machine.phase_after(effect),
    )


def adopt(command: DecideCommand) -> AnalysisResult:
    """What record_decision does: an approval adopts the named plan, anything else plans anew."""
    cmd = command.decision
    ids = cmd.request_ids
    plan = Plan(
        plan_id=cmd.plan_id or plan_id(cmd.action_type, [(i, "content") for i in ids]),
        decision_id=command.decision_id,
        action_id=command.action_id,
        action_type=cmd.action_type,
        request_ids=ids,
        request_count=len(ids) or 3,
        approved_by=cmd.decided_by if cmd.plan_id else None,
    )
    return AnalysisResult(
        still_open=True,
        status=IncidentStatus.ANALYZING,
        tally=PENDING,
        decision=decision_view(cmd.action_type, decided_by=cmd.decided_by),
        plan=plan,
        recorded_phase=Phase.ACTING,
    )


def sent(command: SendCommand) -> RequestOutcome:
    return RequestOutcome(
        request_id=command.request_id, status=RequestStatus.SUCCEEDED, attempts=1, status_code=200
    )


def settled(command: SettleRound) -> RoundResult:
    return RoundResult(
        still_open=True,
        status=IncidentStatus.ACTIONED,
        tally=Tally(succeeded=len(command.request_ids)),
        action=ActionView(
            action_id=command.action_id,
            action_type=ActionType.RETRY,
            status=ActionStatus.SUCCEEDED,
            summary=f"{len(command.outcomes)} of {len(command.request_ids)} requests succeeded",
        ),
    )


def verified(command: VerifyCommand) -> VerificationResult:
    if not command.final:
        return VerificationResult(still_open=True, status=IncidentStatus.ACTIONED)
    return VerificationResult(
        still_open=False,
        status=IncidentStatus.RESOLVED,
        resolved=True,
        resolution="verified: no new failures",
    )


def executed(
    *, delivered: bool = True, error: str | None = None
) -> Callable[[ExecuteCommand | AbandonCommand], EscalationResult]:
    def result(command: ExecuteCommand | AbandonCommand) -> EscalationResult:
        return EscalationResult(
            still_open=True,
            status=IncidentStatus.ACTIONED,
            action=ActionView(
                action_id=command.action_id,
                action_type=ActionType.ESCALATE,
                status=ActionStatus.SUCCEEDED if delivered else ActionStatus.FAILED,
                summary="paged on-call" if delivered else "page refused",
                error=error,
            ),
            delivered=delivered,
            handed_over=3,
            tally=Tally(handed_over=3),
        )

    return result


def closed(command: CloseIncident) -> CloseResult:
    return CloseResult(status=command.status, resolution=command.resolution, closed_now=True)


DEFAULTS: dict[str, Callable[[Any], Any]] = {
    "analyze_incident": lambda _: analysis(),
    "record_decision": adopt,
    "send_request": sent,
    "settle_round": settled,
    "conclude_verification": verified,
    "review_requests": lambda _: ReviewResult(
        still_open=True, status=IncidentStatus.ANALYZING, tally=PENDING
    ),
    "close_incident": closed,
    "note_phase": lambda _: True,
    "probe_gate": lambda _: ProbeResult(holds=False, tally=PENDING),
    "abandon_action": executed(delivered=False, error="no answer"),
    "execute_action": executed(),
    "escalate_episode": lambda _: EpisodeResult(claimed=True, delivered=True),
}


# --- the stand-ins ----------------------------------------------------------------------------


@dataclass
class StandIns:
    """Every activity of the incident workflow, answering from ``script``: per activity name, a
    list of answers used in turn (the last one repeats). An answer is a value, an exception to
    raise, or a function of the command (sync or async). Unscripted activities use DEFAULTS."""

    script: dict[str, list[Any]] = field(default_factory=dict)
    calls: dict[str, list[Any]] = field(default_factory=lambda: defaultdict(list))
    order: list[str] = field(default_factory=list)

    def called(self, name: str) -> list[Any]:
        return self.calls[name]

    async def _answer(self, name: str, command: C, result: type[R]) -> R:
        self.calls[name].append(command)
        self.order.append(name)
        queue = self.script.get(name)
        answer: Any = DEFAULTS[name]
        if queue:
            answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(answer, BaseException):
            raise answer
        if callable(answer):
            answer = answer(command)
            if inspect.isawaitable(answer):
                answer = await answer
        assert isinstance(answer, result), f"{name}: scripted {answer!r}"
        return answer

    @activity.defn(name="analyze_incident")
    async def analyze(self, command: AnalyzeCommand) -> AnalysisResult:
        return await self._answer("analyze_incident", command, AnalysisResult)

    @activity.defn(name="record_decision")
    async def decide(self, command: DecideCommand) -> AnalysisResult:
        return await self._answer("record_decision", command, AnalysisResult)

    @activity.defn(name="send_request")
    async def send(self, command: SendCommand) -> RequestOutcome:
        return await self._answer("send_request", command, RequestOutcome)

    @activity.defn(name="settle_round")
    async def settle_round(self, command: SettleRound) -> RoundResult:
        return await self._answer("settle_round", command, RoundResult)

    @activity.defn(name="conclude_verification")
    async def conclude_verification(self, command: VerifyCommand) -> VerificationResult:
        return await self._answer("conclude_verification", command, VerificationResult)

    @activity.defn(name="review_requests")
    async def review(self, command: ReviewCommand) -> ReviewResult:
        return await self._answer("review_requests", command, ReviewResult)

    @activity.defn(name="close_incident")
    async def close(self, command: CloseIncident) -> CloseResult:
        return await self._answer("close_incident", command, CloseResult)

    @activity.defn(name="note_phase")
    async def note_phase(self, command: PhaseNote) -> bool:
        return await self._answer("note_phase", command, bool)

    @activity.defn(name="probe_gate")
    async def probe(self, command: GateProbe) -> ProbeResult:
        return await self._answer("probe_gate", command, ProbeResult)

    @activity.defn(name="abandon_action")
    async def abandon(self, command: AbandonCommand) -> EscalationResult:
        return await self._answer("abandon_action", command, EscalationResult)

    @activity.defn(name="execute_action")
    async def execute(self, command: ExecuteCommand) -> EscalationResult:
        return await self._answer("execute_action", command, EscalationResult)

    @activity.defn(name="escalate_episode")
    async def escalate_episode(self, command: EpisodeEscalation) -> EpisodeResult:
        return await self._answer("escalate_episode", command, EpisodeResult)

    @activity.defn(name="verify_credential")
    async def verify(self, check: CredentialCheck) -> str:
        # The worker's check without the database: verified, not spent (these tests are about
        # the lifecycle; spending is tested against PostgreSQL in tests/integration/workflows).
        verified = verify_or_refuse(SIGNER, check)
        if check.refuse_principal and same_principal(verified.principal, check.refuse_principal):
            raise ApplicationError(check.refusal or "refused", non_retryable=True)
        return verified.principal

    def activities(self) -> Sequence[Callable[..., Any]]:
        return [
            self.verify,
            self.analyze,
            self.decide,
            self.send,
            self.settle_round,
            self.conclude_verification,
            self.review,
            self.close,
            self.note_phase,
            self.probe,
            self.abandon,
            self.execute,
            self.escalate_episode,
        ]


Handle = WorkflowHandle[IncidentWorkflow, IncidentSnapshot]


@dataclass
class Run:
    env: WorkflowEnvironment
    stand_ins: StandIns
    task_queue: str
    started: list[str] = field(default_factory=list)

    async def start(self, params: IncidentParams = PARAMS) -> Handle:
        incident_id = uuid.uuid4()
        self.started.append(incident_workflow_id(incident_id))
        return await self.env.client.start_workflow(
            IncidentWorkflow.run,
            IncidentInput(
                tenant_id=uuid.uuid4(),
                incident_id=incident_id,
                signature="sig",
                workflow_id=uuid.uuid4(),
                workflow_name="checkout",
                title="payment.capture failing",
                severity=Severity.ERROR,
                params=params,
            ),
            id=incident_workflow_id(incident_id),
            task_queue=self.task_queue,
            execution_timeout=timedelta(days=30),
        )


@contextlib.asynccontextmanager
async def running(
    env: WorkflowEnvironment,
    task_queue: str,
    stand_ins: StandIns,
    *,
    passthrough: Sequence[str] = (),
) -> AsyncIterator[Run]:
    runner = SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*passthrough)
    )
    async with Worker(
        env.client,
        task_queue=task_queue,
        workflows=[IncidentWorkflow],
        activities=stand_ins.activities(),
        workflow_runner=runner,
    ):
        run = Run(env, stand_ins, task_queue)
        try:
            yield run
        finally:
            # A run left waiting (a test that failed half-way) would have its timers fire in a
            # later test's env.sleep() with no worker to take them: the test server then stops
            # skipping time for everyone.
            for workflow_id in run.started:
                with contextlib.suppress(RPCError):
                    await env.client.get_workflow_handle(workflow_id).terminate("test over")


async def until(
    handle: Handle, ready: Callable[[IncidentSnapshot], bool], within: float = 15.0
) -> IncidentSnapshot:
    """Poll the snapshot (real time; nothing is skipped) until ``ready``.

    A query that meets a run just continuing as new can go unanswered on the test server
    ("query deadline exceeded"): it is asked again, of the run that followed.
    """
    deadline = time.monotonic() + within
    snapshot: IncidentSnapshot | None = None
    while True:
        with contextlib.suppress(RPCError):
            snapshot = await handle.query(
                IncidentWorkflow.snapshot, rpc_timeout=timedelta(seconds=2)
            )
            if ready(snapshot):
                return snapshot
        if time.monotonic() > deadline:
            raise AssertionError(f"never ready; last snapshot: {snapshot}")
        await asyncio.sleep(0.05)


async def eventually(check: Callable[[], bool], within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("never happened")
        await asyncio.sleep(0.02)


def in_phase(phase: Phase) -> Callable[[IncidentSnapshot], bool]:
    return lambda s: s.phase is phase


async def operate(
    handle: Handle, update: str, command: OperatorCommand | CloseCommand
) -> IncidentSnapshot:
    """An operator's update, as awfdrs.client sends it (signed for its actor, as the API
    does); the snapshot it answers with."""
    if command.credential is None:
        shown = await handle.query("snapshot", result_type=IncidentSnapshot)
        plan = command.plan_id if isinstance(command, OperatorCommand) else None
        scope = Scope(shown.tenant_id, update, str(shown.incident_id), plan)
        command = command.model_copy(update={"credential": SIGNER.sign(scope, command.actor)})
    snapshot: IncidentSnapshot = await handle.execute_update(
        update, command, result_type=IncidentSnapshot
    )
    return snapshot


async def eventually_async(
    ask: Callable[[], Awaitable[object]], expected: object, within: float = 15.0
) -> None:
    deadline = time.monotonic() + within
    while (answer := await ask()) != expected:
        if time.monotonic() > deadline:
            raise AssertionError(f"still {answer}, not {expected}")
        await asyncio.sleep(0.05)


async def history_length(handle: Handle) -> int:
    history = await handle.fetch_history()
    return len(history.events)


async def status_of(handle: Handle) -> WorkflowExecutionStatus | None:
    return (await handle.describe()).status


async def timed(answer: Awaitable[R]) -> tuple[R, float]:
    started = time.monotonic()
    result = await answer
    return result, time.monotonic() - started


ALICE = CloseCommand(actor="alice", reason="fixed at the vendor")


# --- the happy path and the grouping window ---------------------------------------------------


async def test_analysis_acts_sends_each_request_verifies_and_resolves(
    time_skipping_env: WorkflowEnvironment, task_queue: str
) -> None:
    stand_ins = StandIns()
    async with running(time_skipping_env, task_queue, stand_ins) as run:
        handle = await run.start(PARAMS.model_copy(update={"grouping_window_seconds": 30}))
        final = await handle.result()
    assert (final.phase, final.status) == (Phase.CLOSED, IncidentStatus.RESOLVED)
    assert final.resolution == "verified: no new failures"
    assert final.waiting_for is None
    assert stand_ins.order[0] == "analyze_incident"
    assert stand_ins.order.index("settle_round") > max(
        i for i, name in enumerate(stand_ins.order) if name == "send_request"
    )
    assert {c.request_id for c in stand_ins.called("send_request")} == set(PLAN.request_ids)
    assert len(stand_ins.called("send_request")) == 3
    [settle] = stand_ins.called("settle_round")
    assert settle.request_ids == list(PLAN.request_ids)
    assert {o.request_id for o in settle.outcomes} == set(PLAN.request_ids)
    assert [v.final for v in stand_ins.called("conclude_verification")] == [True]
    [note] = stand_ins.called("note_phase")
    assert note.phase is Phase.VERIFYING
    assert stand_ins.called("close_incident") == []  # the verification closed it
    assert [a.action_id for a in final.actions] == [PLAN.action_id]


async def test_recovery_within_the_grouping_window_closes_as_transient(
    time_skipping_env: WorkflowEnvironment, task_queue: str
) -> None:
    stand_ins = StandIns(
        script={
            "review_requests": [
                ReviewResult(still_open=True, status=IncidentStatus.NEW, tally=RECOVERED)
            ]
        }
    )
    async with running(time_skipping_env, task_queue, stand_ins) as run:
        handle = await run.start(PARAMS.model_copy(update={"grouping_window_seconds": 600}))
        await until(handle, in_phase(Phase.GROUPING))
        await handle.signal(IncidentWorkflow.observe, Observation(recovered=True))
        final = await handle.result()
    assert (final.phase, final.status) == (Phase.CLOSED, IncidentStatus.RESOLVED)
    assert final.resolution == (
        "transient: the 3 failed requests recovered within the grouping window"
    )
    [close] = stand_ins.called("close_incident")
    assert (close.status, close.resolution) == (IncidentStatus.RESOLVED, final.resolution)
    assert stand_ins.called("analyze_incident") == []
    assert stand_ins.called("send_request") == []


async def test_partial_recovery_in_the_window_waits_out_the_window_then_analyses(
    time_skipping_env: WorkflowEnvironment, task_queue: str
) -> None:
    half = ReviewResult(
        still_open=True, status=IncidentStatus.NEW, tally=Tally(pending=2, recovered=1, proven=1)
    )
    stand_ins = StandIns(script={"review_requests": [half]})
    async with running(time_skipping_env, task_queue, stand_ins) as run:
        handle = await run.start(PARAMS.model_copy(update={"grouping_window_seconds": 600}))
        await until(handle, in_phase(Phase.GROUPING))
        await handle.signal(IncidentWorkflow.observe, Observation(recovered=True))
        await eventually(lambda: len(stand_ins.called("review_requests")) == 1)
        grouping = await until(handle, lambda s: s.tally.recovered == 1)
        assert grouping.phase is Phase.GROUPING
        assert stand_ins.called("analyze_incident") == []
        final = await handle.result()
    assert final.status is IncidentStatus.RESOLVED
    assert len(stand_ins.called("analyze_incident")) == 1


async def test_ignore_during_the_grouping_window(
    time_skipping_env: WorkflowEnvironment, task_queue: str
) -> None:
    stand_ins = StandIns()
    async with running(time_skipping_env, task_queue, stand_ins) as run:
        handle = await run.start(PARAMS.model_copy(update={"grouping_window_seconds": 3600}))
        await until(handle, in_phase(Phase.GROUPING))
        answer, took = await timed(
            operate(handle, "ignore", CloseCommand(actor="alice", reason="known noise"))
        )
        final = await handle.result()
    assert took < PROMISED_ANSWER
    assert (answer.phase, answer.status) == (Phase.CLOSED, IncidentStatus.IGNORED)
    assert answer.resolution == "ignored by alice: known noise"
    assert final.status is IncidentStatus.IGNORED
    [close] = stand_ins.called("close_incident")
    assert close.status is IncidentStatus.IGNORED
    assert stand_ins.called("analyze_incident") == []


# --- approval -----------------------------------------------------------------------------------

APPROVAL = analysis(
    GateEffect.APPROVAL, control=GateControl.CONFIDENCE, reason="confidence 0.50 below 0.80"
)


async def test_approve_records_exactly_the_reviewed_plan_then_runs_it(
    time_skipping_env: WorkflowEnvironment, task_queue: str
) -> None:
    stand_ins = StandIns(script={"analyze_incident": [APPROVAL]})
    async with running(time_skipping_env, task_queue, stand_ins) as run:
        handle = await run.start()
        waiting = await until(handle, in_phase(Phase.AWAITING_APPROVAL))
        assert waiting.plan == PLAN
        assert waiting.waiting_for == f"approval of {PLAN.plan_id}"
        assert waiting.needs_a_human
        answered = await operate(
            handle,
            "approve",
            OperatorCommand(plan_id=PLAN.plan_id, actor="alice", reason="reviewed"),
        )
        final = await handle.result()
    [decide] = stand_ins.called("record_decision")
    assert decide.decision.plan_id == PLAN.plan_id
    assert decide.decision.request_ids == PLAN.request_ids
    assert (decide.decision.decided_by, decide.decision.ai_model) == ("alice", OPERATOR_MODEL)
    assert answered.phase is not Phase.AWAITING_APPROVAL
    assert answered.plan is None or answered.plan.approved_by == "alice"
    assert sorted(c.request_id for c in stand_ins.called("send_request")) == sorted(
        PLAN.request_ids
    )
    assert final.status is IncidentStatus.RESOLVED
    assert [d.decided_by for d in final.decisions] == [None, "alice"]


async def test_approve_naming_another_plan_is_refused_and_nothing_is_recorded(
    time_skipping_env: WorkflowEnvironment, task_queue: str
) -> None:
    stand_ins = StandIns(script={"analyze_incident": [APPROVAL]})
    async with running(time_skipping_env, task_queue, stand_ins) as run:
        handle = await run.start()
        await until(handle, in_phase(Phase.AWAITING_APPROVAL))
        stale = make_plan(seed=7).plan_id
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await operate(handle, "approve", OperatorCommand(plan_id=stale, actor="alice"))
        message = str(refused.value.cause)
        assert stale in message
        assert PLAN.plan_id in message
        still = await handle.query(IncidentWorkflow.snapshot)
        assert (still.phase, still.plan) == (Phase.AWAITING_APPROVAL, PLAN)
        assert stand_ins.called("record_decision") == []
        assert stand_ins.called("send_request") == []
        await operate(handle, "ignore", ALICE)
        await handle.result()


async def test_two_answers_at_once_one_is_refused(
    time_skipping_env: WorkflowEnvironment, task_queue: str
) -> None:
    stand_ins = StandIns(script={"analyze_incident": [APPROVAL]})
    async with running(time_skipping_env, task_queue, stand_ins) as run:
        handle = await run.start()
        await until(handle, in_phase(Phase.AWAITING_APPROVAL))
        answers = await asyncio.gather(
            operate(handle, "approve", OperatorCommand(plan_id=PLAN.plan_id, actor="alice")),
            operate(handle, "reject", OperatorCommand(plan_id=PLAN.plan_id, actor="bob")),
            return_exceptions=True,
        )
        # Closed only once the accepted answer's step is done (verifying after the sends, or
        # waiting for an operator after the escalation): on the time-skipping test server an
        # activity still in flight when the workflow completes stalls its clock, and with it
        # every later test on the server.
        settled = await until(
            handle,
            lambda s: s.phase in (Phase.VERIFYING, Phase.AWAITING_OPERATOR, Phase.CLOSED),
        )
        if settled.phase is not Phase.CLOSED:
            await operate(handle, "ignore", ALICE)
        await handle.result()
    refused = [a for a in answers if isinstance(a, WorkflowUpdateFailedError)]
    assert len(refused) == 1, answers
    [decide] = stand_ins.called("record_decision")
    accepted = "alice" if isinstance(answers[1], WorkflowUpdateFailedError) else "bob"
    assert decide.decision.decided_by == accepted


async def test_reject_escalates(time_skipping_env: WorkflowEnvironment, task_queue: str) -> None:
    stand_ins = StandIns(script={"analyze_incident": [APPROVAL]})
    async with running(time_skipping_env, task_queue, stand_ins) as run:
        handle = await run.start()
        await until(handle, in_phase(Phase.AWAITING_APPROVAL))
        await operate(
            handle,
            "reject",
            OperatorCommand(plan_id=PLAN.plan_id, actor="bob", reason="wrong vendor"),
        )
        waiting = await until(handle, in_phase(Phase.AWAITING_OPERATOR))
        assert await status_of(handle) is WorkflowExecutionStatus.RUNNING
        await operate(handle, "resolve", ALICE)
        await handle.result()
    [decide] = stand_ins.called("record_decision")
    assert decide.decision.action_type is ActionType.ESCALATE
    assert (decide.decision.decided_by, decide.decision.plan_id) == ("bob", None)
    assert "wrong vendor" in decide.decision.reasoning
    assert len(stand_ins.called("execute_action")) == 1
    assert stand_ins.called("send_request") == []
    assert waiting.escalation is not None
    assert waiting.escalation.delivered
    assert "escalated to on-call" in waiting.details


async def test_approval_timeout_escalates(
    time_skipping_env: WorkflowEnvironment, task_queue: str
) -> None:
    stand_ins = StandIns(script={"analyze_incident": [APPROVAL]})
    async with running(time_skipping_env, task_queue, stand_ins) as run:
        handle = await run.start()
        await until(handle, in_phase(Phase.AWAITING_APPROVAL))
        await time_skipping_env.sleep(PARAMS.approval_timeout_seconds - 60)
        assert stand_ins.called("record_decision") == []
        await time_skipping_env.sleep(120)
        waiting = await until(handle, in_phase(Phase.AWAITING_OPERATOR))
        await operate(handle, "resolve", ALICE)
        await handle.result()
    [decide] = stand_ins.called("record_decision")
    assert decide.decision.action_type is ActionType.ESCALATE
    assert decide.decision.ai_model == POLICY_MODEL
    assert decide.decision.reasoning == (
        f"no operator approved or rejected plan {PLAN.plan_id} within 1h; escalating"
    )
    assert len(stand_ins.called("execute_action")) == 1
    assert waiting.escalation is not None


# --- held by a control ------------------------------------------------------------------------

HOLD = analysis(GateEffect.HOLD, control=GateControl.KILL_SWITCH, reason="kill switch on stripe")


async def test_held_by_a_kill_switch_then_released_runs_the_held_plan(
    time_skipping_env: WorkflowEnvironment, task_queue: str
) -> None:
    stand_ins = StandIns(script={"analyze_incident": [HOLD]})
    async with running(time_skipping_env, task_queue, stand_ins) as run:
        handle = await run.start()
        held = await until(handle, in_phase(Phase.HELD))
        assert (held.plan, held.waiting_for) == (PLAN, "kill_switch")
        assert "kill switch on stripe" in held.details
        assert stand_ins.called("probe_gate") == []
        await handle.signal(IncidentWorkflow.gate_changed, GateChange())
        final = await handle.result()
    [probe] = stand_ins.called("probe_gate")
    assert probe.control is GateControl.KILL_SWITCH
    assert sorted(c.request_id for c in stand_ins.called("send_request")) == sorted(
        PLAN.request_ids
    )
    assert {c.action_id for c in stand_ins.called("send_request")} == {PLAN.action_id}
    assert final.status is IncidentStatus.RESOLVED
    assert len(stand_ins.called("analyze_incident")) == 1  # the held plan ran, not a new one


async def test_recovery_while_held_closes(
    time_skipping_env: WorkflowEnvironment, task_queue: str
) -> None:
    stand_ins = StandIns(
        script={
            "analyze_incident": [HOLD],
            "probe_gate": [ProbeResult(holds=True, tally=RECOVERED)],
        }
    )
    async with running(time_skipping_env, task_queue, stand_ins) as run:
        handle = await run.start()
        await until(handle, in_phase(Phase.HELD))
        await handle.signal(IncidentWorkflow.observe, Observation(recovered=True))
        final = await handle.result()
    assert (final.phase, final.status) == (Phase.CLOSED, IncidentStatus.RESOLVED)
    assert final.resolution == (
        "recovered: each of the 3 affected requests succeeded again at its sender"
    )
    assert len(stand_ins.called("probe_gate")) == 1
    assert stand_ins.called("send_request") == []


# --- operators can always stop ----------------------------------------------------------------


def deferred_send(command: SendCommand) -> RequestOutcome:
    """The breaker is open: the send asks to be retried in ten minutes (a deferral)."""
    raise ApplicationError(
        "stripe: breaker open", type="Deferred", next_retry_delay=timedelta(minutes=10)
    )


async def test_resolve_answers_at_once_while_a_send_is_deferred_and_it_is_never_retried(
    time_skipping_env: WorkflowEnvironment, task_queue: str
) -> None:
    await resolve_while_sending(time_skipping_env, task_queue, in_flight=False)


async def test_resolve_answers_at_once_while_a_send_is_in_flight_and_it_is_never_retried(
    temporal_env: WorkflowEnvironment, task_queue: str
) -> None:
    # Sends still in flight when a run completes leave the time-skipping test server's clock
    # locked for good (every later env.sleep() times out), so this case runs on the dev server,
    # in real time: it needs no skipping, only to see the sends land and no retry follow.
    await resolve_while_sending(temporal_env, task_queue, in_flight=True)


async def resolve_while_sending(
    env: WorkflowEnvironment, task_queue: str, *, in_flight: bool
) -> None:
    landed: list[uuid.UUID] = []

    async def stuck_send(command: SendCommand) -> RequestOutcome:
        """A vendor call that hangs; like the real send it heartbeats, so it learns of a
        cancel (at its next heartbeat the SDK sends: 80% of the heartbeat timeout)."""
        try:
            while True:
                activity.heartbeat()
                await asyncio.sleep(0.1)
        finally:
            landed.append(command.request_id)

    send = stuck_send if in_flight else deferred_send
    stand_ins = StandIns(script={"send_request": [send]})
    # A 3 s call timeout gives a 3 s heartbeat timeout: a cancel arrives within 2.4 s.
    params = PARAMS.model_copy(update={"action_timeout_seconds": 3})
    async with running(env, task_queue, stand_ins) as run:
        handle = await run.start(params)
        await eventually(lambda: len(stand_ins.called("send_request")) == 3)
        acting = await handle.query(IncidentWorkflow.snapshot)
        assert acting.phase is Phase.ACTING
        answer, took = await timed(operate(handle, "resolve", ALICE))
        final = await asyncio.wait_for(handle.result(), 10)
        if in_flight:
            # Each learns of the close at its next heartbeat and lands; a retry would follow
            # within action_retry_initial_seconds.
            await eventually(lambda: len(landed) == 3, within=10)
            await asyncio.sleep(2 * params.action_retry_initial_seconds)
        else:
            await env.sleep(3600)  # the deferral (10 min) would have come by now
        calls = len(stand_ins.called("send_request"))
    assert took < PROMISED_ANSWER
    assert (answer.phase, answer.status) == (Phase.CLOSED, IncidentStatus.RESOLVED)
    assert calls == 3
    [close] = stand_ins.called("close_incident")
    assert (close.status, close.resolution) == (
        IncidentStatus.RESOLVED,
        "resolved by alice: fixed at the vendor",
    )
    assert final.resolution == "resolved by alice: fixed at the vendor"
    assert stand_ins.called("settle_round") == []


@pytest.mark.parametrize(
    ("analysis_result", "phase", "sends"),
    [
        (APPROVAL, Phase.AWAITING_APPROVAL, 0),
        (HOLD, Phase.HELD, 0),
        (analysis(), Phase.VERIFYING, 3),
        (analysis(GateEffect.RECORD, reason="remediation is off"), Phase.AWAITING_OPERATOR, 0),
    ],
    ids=lambda v: v.value if isinstance(v, Phase) else "",
)
async def test_resolve_answers_at_once_in_every_waiting_phase(
    time_skipping_env: WorkflowEnvironment,
    task_queue: str,
    analysis_result: AnalysisResult,
    phase: Phase,
    sends: int,
) -> None:
    stand_ins = StandIns(script={"analyze_incident": [analysis_result]})
    async with running(time_skipping_env, task_queue, stand_ins) as run:
        handle = await run.start()
        await until(handle, in_phase(phase))
        answer, took = await timed(operate(handle, "resolve", ALICE))
        final = await handle.result()
    assert took < PROMISED_ANSWER
    assert (answer.phase, answer.status) == (Phase.CLOSED, IncidentStatus.RESOLVED)
    assert answer.waiting_for is None
    assert final.resolution == "resolved by alice: fixed at the vendor"
    [close] = stand_ins.called("close_incident")
    assert close.status is IncidentStatus.RESOLVED
    assert len(stand_ins.called("send_request")) == sends
    assert stand_ins.called("conclude_verification") == []  # the window never ended


# --- escalations are never held and never fail the workflow -------------------------------------

ESCALATE_PLAN = make_plan(action_type=ActionType.ESCALATE, seed=2)


@pytest.mark.parametrize(
    ("execute", "words"),
    [
        (executed(delivered=False, error="webhook answered 410 Gone"), "410 Gone"),
        (
            ApplicationError("no webhook configured", type="ValueError", non_retryable=True),
            "no answer",
        ),
    ],
    ids=["refused", "no-answer"],
)
async def test_an_undeliverable_escalation_waits_for_an_operator_and_never_fails(
    time_skipping_env: WorkflowEnvironment, task_queue: str, execute: Any, words: str
) -> None:
    stand_ins = StandIns(
        script={
            "analyze_incident": [analysis(GateEffect.ESCALATE, ESCALATE_PLAN, reason="budget")],
            "execute_action": [execute],
        }
    )
    async with running(time_skipping_env, task_queue, stand_ins) as run:
        handle = await run.start()
        waiting = await until(handle, in_phase(Phase.AWAITING_OPERATOR))
        assert await status_of(handle) is WorkflowExecutionStatus.RUNNING
        await time_skipping_env.sleep(3600)
        assert await status_of(handle) is WorkflowExecutionStatus.RUNNING
        await operate(handle, "resolve", ALICE)
        await handle.result()
    assert "escalation not delivered" in waiting.details
    assert words in waiting.details
    assert waiting.waiting_for == "an operator to resolve"
    assert waiting.escalation is not None
    assert not waiting.escalation.delivered
    assert [c.action_id for c in stand_ins.called("execute_action")] == [ESCALATE_PLAN.action_id]


async def test_resolve_while_a_page_waits_to_be_retried_cancels_it(
    time_skipping_env: WorkflowEnvironment, task_queue: str
) -> None:
    def unavailable(command: ExecuteCommand) -> EscalationResult:
        raise ApplicationError(
            "pagerduty answered 503",
            type="TransientActionError",
            next_retry_delay=timedelta(seconds=60),
        )

    stand_ins = StandIns(
        script={
            "analyze_incident": [analysis(GateEffect.ESCALATE, ESCALATE_PLAN, reason="budget")],
            "execute_action": [unavailable],
        }
    )
    async with running(time_skipping_env, task_queue, stand_ins) as run:
        handle = await run.start()
        await eventually(lambda: len(stand_ins.called("execute_action")) == 1)
        answer, took = await timed(operate(handle, "resolve", ALICE))
        final = await handle.result()
        await time_skipping_env.sleep(3600)
    assert took < PROMISED_ANSWER
    assert answer.status is final.status is IncidentStatus.RESOLVED
    # Nobody is paged about an incident an operator already resolved.
    assert len(stand_ins.called("execute_action")) == 1
    assert stand_ins.called("abandon_action") == []
    assert final.escalation is None


async def test_failed_requests_after_a_round_are_escalated_by_policy(
    time_skipping_env: WorkflowEnvironment, task_queue: str
) -> None:
    failed = RequestView(
        request_id=PLAN.request_ids[0],
        idempotency_key="key-0",
        status=RequestStatus.FAILED,
        replayable=True,
        vendor="stripe",
        method="POST",
        path="/v1/charges",
    )

    def some_failed(command: SettleRound) -> RoundResult:
        return settled(command).model_copy(
            update={"tally": Tally(succeeded=2, failed=1), "failed": (failed,), "failed_count": 1}
        )

    stand_ins = StandIns(script={"settle_round": [some_failed]})
    async with running(time_skipping_env, task_queue, stand_ins) as run:
        handle = await run.start()
        waiting = await until(handle, in_phase(Phase.AWAITING_OPERATOR))
        await operate(handle, "resolve", ALICE)
        await handle.result()
    [decide] = stand_ins.called("record_decision")
    assert decide.decision.action_type is ActionType.ESCALATE
    assert decide.decision.ai_model == POLICY_MODEL
    assert "1 request failed for good (POST /v1/charges via stripe: FAILED)" in (
        decide.decision.reasoning
    )
    assert len(stand_ins.called("execute_action")) == 1
    assert waiting.escalation is not None
    assert waiting.escalation.delivered


async def test_new_failures_while_verifying_analyse_again_then_escalate(
    time_skipping_env: WorkflowEnvironment, task_queue: str
) -> None:
    again = VerificationResult(
        still_open=True, status=IncidentStatus.ACTIONED, new_failures=2, tally=PENDING
    )
    stand_ins = StandIns(script={"conclude_verification": [again]})
    async with running(time_skipping_env, task_queue, stand_ins) as run:
        handle = await run.start(PARAMS.model_copy(update={"max_attempts": 2}))
        await time_skipping_env.sleep(2 * PARAMS.verification_window_seconds + 10)
        waiting = await until(handle, in_phase(Phase.AWAITING_OPERATOR))
        await operate(handle, "resolve", ALICE)
        await handle.result()
    assert [c.attempt for c in stand_ins.called("analyze_incident")] == [1, 2]
    assert len(stand_ins.called("conclude_verification")) == 2
    [decide] = stand_ins.called("record_decision")
    assert decide.decision.reasoning.startswith("2 rounds did not stop the failures")
    assert waiting.attempt == 2


# --- steps that fail never fail the workflow --------------------------------------------------


def broken(command: Any) -> AnalysisResult:
    raise ApplicationError("relation incidents does not exist", type="ProgrammingError")


async def test_a_local_activity_that_keeps_failing_retries_on_a_timer_and_says_so(
    time_skipping_env: WorkflowEnvironment, task_queue: str
) -> None:
    stand_ins = StandIns(script={"analyze_incident": [broken]})
    async with running(time_skipping_env, task_queue, stand_ins) as run:
        handle = await run.start()
        await eventually(lambda: len(stand_ins.called("analyze_incident")) >= 2)
        await time_skipping_env.sleep(1800)
        failing = await handle.query(IncidentWorkflow.snapshot)
        tries = len(stand_ins.called("analyze_incident"))
        assert await status_of(handle) is WorkflowExecutionStatus.RUNNING
        # Doubling from 1 s to at most a minute: not a tight loop, and not given up on.
        assert 20 <= tries <= 1800 / 60 + 10
        assert failing.phase is Phase.ANALYZING
        assert failing.details.count("relation incidents does not exist") == 1
        assert "analyze (attempt 1) failed" in failing.details
        assert "trying again" in failing.details
        stand_ins.script["analyze_incident"] = [analysis()]
        final = await handle.result()
    assert final.status is IncidentStatus.RESOLVED


async def test_once_a_failing_step_succeeds_the_details_stop_saying_it_failed(
    time_skipping_env: WorkflowEnvironment, task_queue: str
) -> None:
    def refused(command: PhaseNote) -> bool:
        raise ApplicationError("connection refused", type="ProgrammingError")

    unnoted = analysis(GateEffect.RECORD, reason="remediation is off").model_copy(
        update={"recorded_phase": None}  # the workflow notes the phase itself
    )
    stand_ins = StandIns(
        script={"analyze_incident": [unnoted], "note_phase": [refused, refused, True]}
    )
    async with running(time_skipping_env, task_queue, stand_ins) as run:
        handle = await run.start()
        await eventually(lambda: len(stand_ins.called("note_phase")) == 3)
        waiting = await until(handle, lambda s: "connection refused" not in s.details)
        await operate(handle, "ignore", ALICE)
        await handle.result()
    assert waiting.phase is Phase.AWAITING_OPERATOR
    assert waiting.details.startswith("ANALYZING: remediation is off; waiting for an operator")
    assert "trying again" not in waiting.details


async def test_an_operator_can_close_while_a_step_keeps_failing(
    time_skipping_env: WorkflowEnvironment, task_queue: str
) -> None:
    stand_ins = StandIns(script={"analyze_incident": [broken]})
    async with running(time_skipping_env, task_queue, stand_ins) as run:
        handle = await run.start()
        await eventually(lambda: len(stand_ins.called("analyze_incident")) >= 2)
        answer, took = await timed(operate(handle, "resolve", ALICE))
        final = await asyncio.wait_for(handle.result(), 10)
        tries = len(stand_ins.called("analyze_incident"))
        await time_skipping_env.sleep(600)
        assert len(stand_ins.called("analyze_incident")) == tries
    assert took < PROMISED_ANSWER
    assert answer.status is final.status is IncidentStatus.RESOLVED
    assert final.details == "RESOLVED: resolved by alice: fixed at the vendor"


async def test_a_close_that_could_not_be_recorded_can_be_tried_again(
    time_skipping_env: WorkflowEnvironment, task_queue: str
) -> None:
    def refused(command: CloseIncident) -> CloseResult:
        raise ApplicationError("could not serialize access", type="ValueError")

    stand_ins = StandIns(
        script={"analyze_incident": [APPROVAL], "close_incident": [refused, closed]}
    )
    async with running(time_skipping_env, task_queue, stand_ins) as run:
        handle = await run.start()
        await until(handle, in_phase(Phase.AWAITING_APPROVAL))
        with pytest.raises(WorkflowUpdateFailedError) as failed:
            await operate(handle, "resolve", ALICE)
        assert "could not be recorded" in str(failed.value.cause)
        unchanged = await handle.query(IncidentWorkflow.snapshot)
        assert unchanged.phase is Phase.AWAITING_APPROVAL
        assert await status_of(handle) is WorkflowExecutionStatus.RUNNING
        answer = await operate(handle, "resolve", ALICE)
        final = await handle.result()
    assert answer.status is final.status is IncidentStatus.RESOLVED
    assert len(stand_ins.called("close_incident")) == 2


# --- bounded history, waits with a floor, continue-as-new ---------------------------------------


async def test_a_held_incident_keeps_its_history_small_under_a_signal_storm(
    temporal_env: WorkflowEnvironment, task_queue: str
) -> None:
    """Hundreds of signals while held: each handled once, probes no more often than the floor.

    On the real server: the floor is a second, and the time-skipping test server, given a
    signal during a workflow task, has failed the task's completion ("invalid history builder
    state for action") and then hung, taking every later test on it down.
    """
    stand_ins = StandIns(
        script={
            "analyze_incident": [HOLD],
            "probe_gate": [ProbeResult(holds=True, reason="still on", tally=PENDING)],
        }
    )
    async with running(temporal_env, task_queue, stand_ins) as run:
        handle = await run.start()
        await until(handle, in_phase(Phase.HELD))
        before = await history_length(handle)
        started = time.monotonic()
        signals = 0
        for n in range(200):
            # News it handles (recovery evidence, a control that may have let go) and none.
            await handle.signal(IncidentWorkflow.observe, Observation(recovered=n % 2 == 0))
            await handle.signal(IncidentWorkflow.observe, Observation())
            signals += 2
            if n % 10 == 0:
                await handle.signal(IncidentWorkflow.gate_changed, GateChange())
                signals += 1
        # The news is not lost: it is handled, once the floor has passed.
        await eventually(lambda: len(stand_ins.called("probe_gate")) >= 1)
        elapsed = time.monotonic() - started
        held = await until(handle, in_phase(Phase.HELD))
        grown = await history_length(handle) - before
        probes = len(stand_ins.called("probe_gate"))
        await operate(handle, "resolve", ALICE)
        await handle.result()
    assert (held.plan, held.waiting_for) == (PLAN, "kill_switch")
    assert "still on" in held.details  # the probe's answer, in words
    # Each signal costs its own event and at most a workflow task; news is acted on (a probe:
    # a marker and a timer) at most once per floor, however many signals bring it.
    assert probes <= elapsed / WAIT_FLOOR.total_seconds() + 1
    assert grown <= 4 * signals + 6 * probes
    assert grown < HISTORY_LIMIT


async def test_a_held_incident_looks_again_no_more_often_than_the_floor(
    time_skipping_env: WorkflowEnvironment, task_queue: str
) -> None:
    """The control says "look again" in the past: the incident still waits the floor."""

    def still_held(command: GateProbe) -> ProbeResult:
        return ProbeResult(
            holds=True, reason="fuse open", recheck_at=datetime(2000, 1, 1, tzinfo=UTC)
        )

    stand_ins = StandIns(script={"analyze_incident": [HOLD], "probe_gate": [still_held]})
    params = PARAMS.model_copy(update={"held_recheck_seconds": 1})
    async with running(time_skipping_env, task_queue, stand_ins) as run:
        handle = await run.start(params)
        await until(handle, in_phase(Phase.HELD))
        first_run = (await handle.describe()).run_id
        # Half an hour of probes (about six history events each) overflows HISTORY_LIMIT.
        span = timedelta(minutes=30)
        # A minute at a time: one long skip is a single RPC of many seconds, and under load
        # the connection to the test server broke during it ("h2 protocol error").
        for _ in range(30):
            await time_skipping_env.sleep(timedelta(minutes=1))
        probes = len(stand_ins.called("probe_gate"))
        held = await until(handle, in_phase(Phase.HELD))
        continued = (await handle.describe()).run_id != first_run
        await operate(handle, "resolve", ALICE)
        await handle.result()
    per_floor = span / WAIT_FLOOR
    assert 0.9 * per_floor <= probes <= per_floor + 1
    # Thousands of probes: the history was handed on (continue-as-new) with the state intact.
    assert continued
    assert (held.phase, held.plan, held.waiting_for) == (Phase.HELD, PLAN, "kill_switch")


async def test_continue_as_new_mid_wait_keeps_the_whole_state(
    time_skipping_env: WorkflowEnvironment,
    task_queue: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(incident_module, "HISTORY_LIMIT", 60)
    stand_ins = StandIns(script={"analyze_incident": [APPROVAL]})
    async with running(
        time_skipping_env, task_queue, stand_ins, passthrough=["awfdrs.workflows.incident"]
    ) as run:
        handle = await run.start()
        before = await until(handle, in_phase(Phase.AWAITING_APPROVAL))
        first_run = (await handle.describe()).run_id
        for severity in [Severity.WARNING, Severity.CRITICAL] + [None] * 40:
            await handle.signal(IncidentWorkflow.observe, Observation(severity=severity))
        # The start handle sends queries, signals and updates to the latest run; its result()
        # follows the chain of runs (and, unlike other handles, lets the server skip time).
        first = run.env.client.get_workflow_handle(handle.id, run_id=first_run)
        await eventually_async(lambda: status_of(first), WorkflowExecutionStatus.CONTINUED_AS_NEW)
        after = await until(handle, lambda s: s.severity is Severity.CRITICAL)
        assert (await handle.describe()).run_id != first_run
        assert await history_length(handle) < 60 + 20  # the limit, and a task's worth
        assert (after.phase, after.plan, after.waiting_for) == (
            before.phase,
            before.plan,
            before.waiting_for,
        )
        assert after.details == before.details  # deadline included: "(until …)"
        assert after.decisions == before.decisions
        await operate(handle, "approve", OperatorCommand(plan_id=PLAN.plan_id, actor="alice"))
        final = await handle.result()
    assert final.status is IncidentStatus.RESOLVED
    [decide] = stand_ins.called("record_decision")
    assert decide.decision.request_ids == PLAN.request_ids
    assert len(stand_ins.called("analyze_incident")) == 1


async def test_a_step_failing_through_a_long_outage_continues_as_new_instead_of_growing(
    time_skipping_env: WorkflowEnvironment,
    task_queue: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(incident_module, "HISTORY_LIMIT", 60)
    stand_ins = StandIns(script={"analyze_incident": [broken]})
    async with running(
        time_skipping_env, task_queue, stand_ins, passthrough=["awfdrs.workflows.incident"]
    ) as run:
        handle = await run.start()
        first_run = (await handle.describe()).run_id
        await eventually(lambda: len(stand_ins.called("analyze_incident")) >= 2)
        first = run.env.client.get_workflow_handle(handle.id, run_id=first_run)
        for _ in range(40):  # an outage of hours, a minute at a time
            if await status_of(first) is WorkflowExecutionStatus.CONTINUED_AS_NEW:
                break
            await time_skipping_env.sleep(60)
        assert await status_of(first) is WorkflowExecutionStatus.CONTINUED_AS_NEW
        assert await history_length(handle) < 60 + 20
        # The database is back: the next run takes the step again and the incident goes on.
        stand_ins.script["analyze_incident"] = [analysis()]
        final = await handle.result()
    assert final.status is IncidentStatus.RESOLVED
