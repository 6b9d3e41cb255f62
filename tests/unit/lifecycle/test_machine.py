"""awfdrs.lifecycle: every transition function and every branch of it, in milliseconds.

Pure: no database, no Temporal. Times are arguments, so each wait's deadline is checked exactly.
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

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
from awfdrs.errors import InvalidTransitionError
from awfdrs.lifecycle import (
    OPERATOR_MODEL,
    POLICY_MODEL,
    TRANSITIONS,
    WAIT_FLOOR,
    ActionView,
    AnalysisResult,
    CloseCmd,
    CloseResult,
    DecideCmd,
    DecisionView,
    EpisodeResult,
    Escalation,
    EscalationResult,
    IncidentParams,
    IncidentState,
    News,
    Plan,
    ProbeResult,
    RequestView,
    ReviewResult,
    RoundResult,
    Tally,
    Transition,
    Verdict,
    VerificationResult,
    describe,
    machine,
    markdown,
    move,
    plan_id,
    waiting_for,
)
from awfdrs.lifecycle.state import KEPT_SUMMARIES

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
PARAMS = IncidentParams(
    grouping_window_seconds=30,
    verification_window_seconds=300,
    approval_timeout_seconds=3600,
    max_attempts=3,
    action_timeout_seconds=30,
    action_retry_initial_seconds=1,
    action_max_attempts=3,
    held_recheck_seconds=60,
)
FAST_RECHECK = PARAMS.model_copy(update={"held_recheck_seconds": 0.1})

OPEN_PHASES = [p for p in Phase if p is not Phase.CLOSED]


# --- building values -------------------------------------------------------------------------


def request_views(n: int, status: RequestStatus = RequestStatus.PENDING) -> list[RequestView]:
    return [
        RequestView(
            request_id=uuid.UUID(int=i + 1),
            idempotency_key=f"key-{i}",
            status=status,
            replayable=True,
            vendor="stripe",
            method="POST",
            path=f"/v1/charges/{i}",
        )
        for i in range(n)
    ]


def make_plan(n: int = 2, action_type: ActionType = ActionType.RETRY) -> Plan:
    views = request_views(n)
    ids = tuple(v.request_id for v in views)
    return Plan(
        plan_id=plan_id(action_type, [(i, f"hash-{i}") for i in ids]),
        decision_id=uuid.uuid4(),
        action_id=uuid.uuid4(),
        action_type=action_type,
        request_ids=ids,
        request_count=n,
        requests=tuple(views),
        vendors=("stripe",),
    )


def decision(kind: ActionType = ActionType.RETRY) -> DecisionView:
    return DecisionView(
        decision_id=uuid.uuid4(),
        decision_type=kind,
        confidence=0.9,
        reasoning="gateway timeouts are transient",
        ai_model="rules/1",
        attempt=1,
        classification=ErrorClass.TRANSIENT,
    )


def action(
    kind: ActionType = ActionType.RETRY,
    status: ActionStatus = ActionStatus.SUCCEEDED,
    *,
    summary: str = "2 of 2 requests succeeded",
    error: str | None = None,
) -> ActionView:
    return ActionView(
        action_id=uuid.uuid4(), action_type=kind, status=status, summary=summary, error=error
    )


def state(phase: Phase = Phase.ANALYZING, **changes: Any) -> IncidentState:
    base = IncidentState(
        severity=Severity.ERROR, status=IncidentStatus.ANALYZING, details="somewhere"
    )
    return base.model_copy(update={"phase": phase, **changes})


def closed_state() -> IncidentState:
    return state(
        Phase.CLOSED,
        status=IncidentStatus.IGNORED,
        resolution="ignored by alice: known noise",
        details="IGNORED: ignored by alice: known noise",
    )


PENDING = Tally(pending=2)
RECOVERED = Tally(recovered=2, proven=2)
HALF_RECOVERED = Tally(pending=1, recovered=1, proven=1)
DONE = Tally(succeeded=2)
HANDED = Tally(handed_over=2)


def analysis(
    effect: GateEffect = GateEffect.ACT,
    *,
    plan: Plan | None = None,
    control: GateControl | None = None,
    reason: str | None = None,
    episode_id: uuid.UUID | None = None,
    tally: Tally = PENDING,
) -> AnalysisResult:
    return AnalysisResult(
        still_open=True,
        status=IncidentStatus.ANALYZING,
        tally=tally,
        decision=decision(),
        verdict=Verdict(effect=effect, control=control, reason=reason, episode_id=episode_id),
        plan=plan or make_plan(),
        recorded_phase=machine.phase_after(effect),
    )


def round_result(**changes: Any) -> RoundResult:
    base = RoundResult(still_open=True, status=IncidentStatus.ACTIONED, tally=DONE, action=action())
    return base.model_copy(update=changes)


# --- the transition table ----------------------------------------------------------------------

ALLOWED = [(a, b) for a, targets in TRANSITIONS.items() for b in sorted(targets)]
FORBIDDEN = [(a, b) for a, b in itertools.product(Phase, Phase) if b not in TRANSITIONS[a]]


def test_the_table_covers_every_phase() -> None:
    assert set(TRANSITIONS) == set(Phase)
    assert TRANSITIONS[Phase.CLOSED] == frozenset()
    assert len(ALLOWED) + len(FORBIDDEN) == len(Phase) ** 2


@pytest.mark.parametrize(("start", "to"), ALLOWED, ids=lambda p: p.value)
def test_move_accepts_every_pair_in_the_table(start: Phase, to: Phase) -> None:
    moved = move(state(start), to, details="moved")
    assert (moved.phase, moved.details) == (to, "moved")


@pytest.mark.parametrize(("start", "to"), FORBIDDEN, ids=lambda p: p.value)
def test_move_refuses_every_pair_outside_the_table(start: Phase, to: Phase) -> None:
    with pytest.raises(InvalidTransitionError, match=f"{start.value} → {to.value}"):
        move(state(start), to)


def test_every_open_phase_can_be_closed() -> None:
    assert all(Phase.CLOSED in TRANSITIONS[p] for p in OPEN_PHASES)


# --- opening, news -----------------------------------------------------------------------------


def test_start_groups_for_the_window() -> None:
    started = machine.start(Severity.WARNING, NOW, PARAMS)
    assert started.phase is Phase.GROUPING
    assert started.status is IncidentStatus.NEW
    assert started.severity is Severity.WARNING
    assert started.deadline == NOW + timedelta(seconds=30)
    assert "30s" in started.details
    assert waiting_for(started) == "the window to close"


@pytest.mark.parametrize(
    ("before", "news", "after"),
    [
        (Severity.ERROR, None, Severity.ERROR),
        (Severity.ERROR, Severity.INFO, Severity.ERROR),
        (Severity.ERROR, Severity.WARNING, Severity.ERROR),
        (Severity.ERROR, Severity.ERROR, Severity.ERROR),
        (Severity.ERROR, Severity.CRITICAL, Severity.CRITICAL),
        (Severity.INFO, Severity.WARNING, Severity.WARNING),
    ],
)
def test_observe_severity_only_rises(
    before: Severity, news: Severity | None, after: Severity
) -> None:
    assert machine.observe(state(severity=before), severity=news).severity is after


def test_observe_flags_accumulate_until_handled() -> None:
    held = state(Phase.HELD, held_by=GateControl.KILL_SWITCH, news=News(gate_changed=True))
    once = machine.observe(held, recovered=True)
    twice = machine.observe(once, joined=True)
    thrice = machine.observe(twice)  # no news is no news: nothing is cleared
    assert thrice.news == News(recovered=True, joined=True, gate_changed=True)
    assert thrice.news.any
    assert not state().news.any


def test_observe_ignores_a_closed_incident() -> None:
    closed = closed_state()
    assert machine.observe(closed, severity=Severity.CRITICAL, recovered=True) == closed


def test_gate_changed_wakes_only_a_held_incident() -> None:
    held = machine.gate_changed(state(Phase.HELD, held_by=GateControl.KILL_SWITCH))
    assert held.news.gate_changed
    for phase in Phase:
        if phase is not Phase.HELD:
            assert machine.gate_changed(state(phase)) == state(phase)


def test_grouping_over_analyses() -> None:
    over = machine.grouping_over(state(Phase.GROUPING, deadline=NOW))
    assert (over.phase, over.deadline) == (Phase.ANALYZING, None)
    assert over.details == "ANALYZING (attempt 1)"


def test_on_review_closes_as_transient_when_everything_recovered_while_grouping() -> None:
    grouping = state(Phase.GROUPING, deadline=NOW, news=News(recovered=True))
    done = machine.on_review(
        grouping,
        ReviewResult(still_open=True, status=IncidentStatus.NEW, tally=RECOVERED),
    )
    assert done.command == CloseCmd(
        status=IncidentStatus.RESOLVED,
        resolution="transient: the 2 failed requests recovered within the grouping window",
        only_if=RECOVERED,
    )
    assert done.state.news == News()
    assert done.state.tally == RECOVERED


def test_on_review_after_the_window_says_recovered_not_transient() -> None:
    done = machine.on_review(
        state(Phase.AWAITING_OPERATOR),
        ReviewResult(
            still_open=True, status=IncidentStatus.ACTIONED, tally=Tally(recovered=1, proven=1)
        ),
    )
    assert isinstance(done.command, CloseCmd)
    assert done.command.resolution == (
        "recovered: each of the 1 affected request succeeded again at its sender"
    )


@pytest.mark.parametrize(
    "tally",
    [HALF_RECOVERED, Tally(recovered=2, proven=1), Tally(), DONE],
    ids=["half", "recovered-unproven", "empty", "replayed"],
)
def test_on_review_closes_nothing_unless_every_request_is_proven(tally: Tally) -> None:
    waiting = state(Phase.AWAITING_OPERATOR, news=News(recovered=True, joined=True))
    done = machine.on_review(
        waiting, ReviewResult(still_open=True, status=IncidentStatus.ACTIONED, tally=tally)
    )
    assert done.command is None
    assert done.state.phase is Phase.AWAITING_OPERATOR
    assert done.state.news == News()
    assert done.state.tally == tally


def test_on_review_says_what_was_handed_over() -> None:
    done = machine.on_review(
        state(Phase.AWAITING_OPERATOR, details="ACTIONED: escalated"),
        ReviewResult(still_open=True, status=IncidentStatus.ACTIONED, tally=HANDED, handed_over=2),
    )
    assert done.command is None
    assert done.state.details.startswith(
        "ACTIONED: 2 more failed requests joined and went to the same human ("
    )
    # Reviewed again: the text is replaced, never appended to.
    again = machine.on_review(
        done.state,
        ReviewResult(still_open=True, status=IncidentStatus.ACTIONED, tally=HANDED, handed_over=1),
    )
    assert again.state.details.startswith("ACTIONED: 1 more failed request joined")
    assert "2 more" not in again.state.details


def test_on_review_of_an_incident_closed_elsewhere() -> None:
    done = machine.on_review(
        state(Phase.AWAITING_APPROVAL, plan=make_plan(), deadline=NOW),
        ReviewResult(still_open=False, status=IncidentStatus.RESOLVED, tally=DONE),
    )
    assert done.command is None
    assert (done.state.phase, done.state.status) == (Phase.CLOSED, IncidentStatus.RESOLVED)
    assert (done.state.plan, done.state.deadline) == (None, None)
    assert done.state.details == "RESOLVED: closed elsewhere"


# --- deciding ----------------------------------------------------------------------------------


def test_after_analysis_acts() -> None:
    plan = make_plan()
    analysing = state(news=News(joined=True))
    done = machine.after_analysis(analysing, analysis(GateEffect.ACT, plan=plan), NOW, PARAMS)
    assert done.command is None
    new = done.state
    assert (new.phase, new.plan, new.deadline) == (Phase.ACTING, plan, None)
    assert new.news == News()
    assert [d.decision_type for d in new.decisions] == [ActionType.RETRY]
    assert new.tally == PENDING
    assert new.details == "ANALYZING: retry 2 requests through stripe (attempt 1)"


def test_after_analysis_escalates_instead_of_acting() -> None:
    plan = make_plan(action_type=ActionType.ESCALATE)
    result = analysis(GateEffect.ESCALATE, plan=plan, control=GateControl.BUDGET, reason="spent")
    new = machine.after_analysis(state(), result, NOW, PARAMS).state
    assert (new.phase, new.plan) == (Phase.ACTING, plan)
    assert "escalate to the tenant's on-call" in new.details


def test_after_analysis_asks_for_approval_until_the_timeout() -> None:
    plan = make_plan()
    result = analysis(
        GateEffect.APPROVAL, plan=plan, control=GateControl.CONFIDENCE, reason="confidence 0.5"
    )
    done = machine.after_analysis(state(), result, NOW, PARAMS)
    new = done.state
    assert done.command is None
    assert (new.phase, new.plan) == (Phase.AWAITING_APPROVAL, plan)
    assert new.deadline == NOW + timedelta(seconds=PARAMS.approval_timeout_seconds)
    assert plan.plan_id in new.details
    assert "confidence 0.5" in new.details
    assert waiting_for(new) == f"approval of {plan.plan_id}"


@pytest.mark.parametrize(
    ("params", "wait"),
    [(PARAMS, timedelta(seconds=60)), (FAST_RECHECK, WAIT_FLOOR)],
    ids=["recheck", "floor"],
)
def test_after_analysis_holds_with_a_floor_bounded_recheck(
    params: IncidentParams, wait: timedelta
) -> None:
    plan, episode = make_plan(), uuid.uuid4()
    result = analysis(
        GateEffect.HOLD,
        plan=plan,
        control=GateControl.FUSE,
        reason="fuse open: 40% of incidents failing",
        episode_id=episode,
    )
    analysing = state(news=News(gate_changed=True, joined=True))
    new = machine.after_analysis(analysing, result, NOW, params).state
    assert (new.phase, new.plan, new.episode_id) == (Phase.HELD, plan, episode)
    assert (new.held_by, new.held_reason) == (
        GateControl.FUSE,
        "fuse open: 40% of incidents failing",
    )
    assert new.deadline == NOW + wait
    assert not new.news.gate_changed
    assert waiting_for(new) == "fuse"


@pytest.mark.parametrize("effect", [GateEffect.SHADOW, GateEffect.RECORD])
def test_after_analysis_records_only_and_waits_for_an_operator(effect: GateEffect) -> None:
    result = analysis(effect, control=GateControl.MODE, reason="remediation mode is shadow")
    new = machine.after_analysis(state(), result, NOW, PARAMS).state
    assert (new.phase, new.plan) == (Phase.AWAITING_OPERATOR, None)
    assert "remediation mode is shadow" in new.details
    assert new.details.endswith("waiting for an operator")
    assert ("not executed" in new.details) is (effect is GateEffect.SHADOW)
    assert len(new.decisions) == 1


@pytest.mark.parametrize("effect", list(GateEffect))
def test_after_analysis_goes_where_phase_after_says(effect: GateEffect) -> None:
    """The phase the analysis records on the incident is the phase the workflow waits in."""
    result = analysis(effect, control=GateControl.KILL_SWITCH, reason="why")
    assert machine.after_analysis(state(), result, NOW, PARAMS).state.phase is (
        machine.phase_after(effect)
    )


@pytest.mark.parametrize(
    ("tally", "resolution"),
    [
        (RECOVERED, "recovered: each of the 2 affected requests succeeded again at its sender"),
        (
            Tally(succeeded=1, recovered=1, proven=1),
            "done: each of the affected requests worked again "
            "(2 requests: 1 succeeded, 1 recovered)",
        ),
    ],
    ids=["recovered", "replayed"],
)
def test_after_analysis_with_nothing_to_decide_closes_what_worked(
    tally: Tally, resolution: str
) -> None:
    result = AnalysisResult(still_open=True, status=IncidentStatus.ANALYZING, tally=tally)
    done = machine.after_analysis(state(), result, NOW, PARAMS)
    assert isinstance(done.command, CloseCmd)
    assert done.command.status is IncidentStatus.RESOLVED
    assert done.command.resolution.startswith(resolution)
    assert done.state.phase is Phase.ANALYZING  # closed once the close is recorded


def test_after_analysis_with_nothing_to_decide_waits_for_the_human_who_has_it() -> None:
    tally = Tally(succeeded=1, handed_over=1)
    result = AnalysisResult(still_open=True, status=IncidentStatus.ACTIONED, tally=tally)
    done = machine.after_analysis(state(plan=make_plan()), result, NOW, PARAMS)
    assert done.command is None
    assert (done.state.phase, done.state.plan) == (Phase.AWAITING_OPERATOR, None)
    assert "1 handed over" in done.state.details
    assert waiting_for(done.state) == "an operator to resolve"


def test_after_analysis_of_an_incident_closed_elsewhere() -> None:
    result = AnalysisResult(still_open=False, status=IncidentStatus.IGNORED)
    done = machine.after_analysis(state(), result, NOW, PARAMS)
    assert done.command is None
    assert (done.state.phase, done.state.status) == (Phase.CLOSED, IncidentStatus.IGNORED)


def test_after_decision_acts_on_the_recorded_plan() -> None:
    plan = make_plan()
    answered = machine.answer(
        state(Phase.AWAITING_APPROVAL, plan=plan), approved=True, actor="alice", reason="ok"
    )
    waiting = state(Phase.AWAITING_APPROVAL, plan=plan, deadline=NOW, answer=answered)
    result = analysis(plan=plan).model_copy(update={"status": IncidentStatus.ACTIONED})
    new = machine.after_decision(waiting, result).state
    assert (new.phase, new.plan, new.answer, new.deadline) == (Phase.ACTING, plan, None, None)
    assert new.status is IncidentStatus.ACTIONED
    assert len(new.decisions) == 1


def test_after_decision_of_an_incident_closed_elsewhere() -> None:
    result = AnalysisResult(still_open=False, status=IncidentStatus.RESOLVED)
    new = machine.after_decision(state(Phase.ACTING), result).state
    assert (new.phase, new.status) == (Phase.CLOSED, IncidentStatus.RESOLVED)


@pytest.mark.parametrize("phase", [Phase.AWAITING_APPROVAL, Phase.ACTING])
def test_after_decision_without_a_plan_never_closes_an_open_incident(phase: Phase) -> None:
    """An open incident closed only in the workflow would be stranded: nobody runs it again."""
    result = AnalysisResult(still_open=True, status=IncidentStatus.ANALYZING, tally=HANDED)
    new = machine.after_decision(state(phase, plan=make_plan()), result).state
    assert new.phase is Phase.AWAITING_OPERATOR
    assert new.status is IncidentStatus.ANALYZING
    assert new.plan is None
    assert "waiting for an operator" in new.details


def test_decisions_and_actions_are_bounded() -> None:
    busy = state(
        decisions=tuple(decision() for _ in range(KEPT_SUMMARIES)),
        actions=tuple(action() for _ in range(KEPT_SUMMARIES)),
    )
    newest = analysis()
    new = machine.after_analysis(busy, newest, NOW, PARAMS).state
    assert len(new.decisions) == KEPT_SUMMARIES
    assert new.decisions[-1] == newest.decision
    latest = action(summary="latest")
    acting = new.model_copy(update={"phase": Phase.ACTING})
    after = machine.after_round(acting, round_result(action=latest), NOW, PARAMS).state
    assert len(after.actions) == KEPT_SUMMARIES
    assert after.actions[-1] == latest


# --- operators answering ----------------------------------------------------------------------


def test_approval_check_accepts_the_plan_awaiting_approval() -> None:
    plan = make_plan()
    assert machine.approval_check(state(Phase.AWAITING_APPROVAL, plan=plan), plan.plan_id) is None


def test_approval_check_refuses_another_plan_naming_both() -> None:
    plan = make_plan()
    refusal = machine.approval_check(state(Phase.AWAITING_APPROVAL, plan=plan), "plan-0000")
    assert refusal is not None
    assert "plan-0000" in refusal
    assert plan.plan_id in refusal


@pytest.mark.parametrize("phase", [p for p in OPEN_PHASES if p is not Phase.AWAITING_APPROVAL])
def test_approval_check_refuses_when_not_awaiting_approval(phase: Phase) -> None:
    plan = make_plan()
    refusal = machine.approval_check(state(phase, plan=plan), plan.plan_id)
    assert refusal == f"the incident is not waiting for approval ({phase.value})"


def test_approval_check_refuses_a_closed_or_closing_incident() -> None:
    plan = make_plan()
    closed = machine.approval_check(closed_state(), plan.plan_id)
    assert closed == "the incident is already IGNORED: ignored by alice: known noise"
    closing = state(Phase.AWAITING_APPROVAL, plan=plan, closing=True)
    assert machine.approval_check(closing, plan.plan_id) == "the incident is already being closed"


def test_approval_check_refuses_a_second_answer_before_the_first_is_recorded() -> None:
    """Two operators answering at once: the second must not silently replace the first."""
    plan = make_plan()
    waiting = state(Phase.AWAITING_APPROVAL, plan=plan)
    first = machine.answer(waiting, approved=True, actor="alice", reason=None)
    answered = machine.take_answer(waiting, first)
    refusal = machine.approval_check(answered, plan.plan_id)
    assert refusal is not None
    assert "alice" in refusal


def test_approve_adopts_the_reviewed_plan_exactly() -> None:
    plan = make_plan(3)
    command = machine.answer(
        state(Phase.AWAITING_APPROVAL, plan=plan),
        approved=True,
        actor="alice",
        reason="looks right",
    )
    assert command.action_type is ActionType.RETRY
    assert command.plan_id == plan.plan_id
    assert command.request_ids == plan.request_ids
    assert (command.decided_by, command.ai_model) == ("alice", OPERATOR_MODEL)
    assert command.reasoning.startswith("approved by alice: looks right")
    assert plan.plan_id in command.reasoning


def test_reject_escalates_without_adopting_the_plan() -> None:
    plan = make_plan()
    command = machine.answer(
        state(Phase.AWAITING_APPROVAL, plan=plan), approved=False, actor="bob", reason=None
    )
    assert command.action_type is ActionType.ESCALATE
    assert (command.plan_id, command.request_ids) == (None, ())
    assert (command.decided_by, command.ai_model) == ("bob", OPERATOR_MODEL)
    assert command.reasoning.startswith("rejected by bob: no reason given")
    assert plan.plan_id in command.reasoning


def test_take_answer_and_request_close_only_mark_the_state() -> None:
    plan = make_plan()
    waiting = state(Phase.AWAITING_APPROVAL, plan=plan)
    command = machine.answer(waiting, approved=True, actor="alice", reason=None)
    assert machine.take_answer(waiting, command) == waiting.model_copy(update={"answer": command})
    assert machine.request_close(waiting) == waiting.model_copy(update={"closing": True})


def test_approval_timeout_escalates_by_policy() -> None:
    plan = make_plan()
    command = machine.approval_timed_out(state(Phase.AWAITING_APPROVAL, plan=plan), PARAMS)
    assert command.action_type is ActionType.ESCALATE
    assert command.ai_model == POLICY_MODEL
    assert command.decided_by is None
    assert command.reasoning == (
        f"no operator approved or rejected plan {plan.plan_id} within 1h; escalating"
    )


# --- acting ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "wait"),
    [(PARAMS, timedelta(seconds=60)), (FAST_RECHECK, WAIT_FLOOR)],
    ids=["recheck", "floor"],
)
def test_after_round_held_keeps_the_plan(params: IncidentParams, wait: timedelta) -> None:
    plan = make_plan()
    acting = state(Phase.ACTING, plan=plan)
    result = round_result(
        tally=Tally(pending=1, succeeded=1),
        held_by=GateControl.KILL_SWITCH,
        held_reason="kill switch: vendor stripe",
    )
    done = machine.after_round(acting, result, NOW, params)
    assert done.command is None
    new = done.state
    assert (new.phase, new.plan, new.held_by) == (Phase.HELD, plan, GateControl.KILL_SWITCH)
    assert new.held_reason == "kill switch: vendor stripe"
    assert new.deadline == NOW + wait
    assert new.actions == (result.action,)


def test_after_round_stopped_by_the_mode_waits_for_an_operator() -> None:
    result = round_result(stopped_by=GateControl.MODE, stopped_reason="remediation is off")
    done = machine.after_round(state(Phase.ACTING, plan=make_plan()), result, NOW, PARAMS)
    assert done.command is None
    assert (done.state.phase, done.state.plan) == (Phase.AWAITING_OPERATOR, None)
    assert "remediation is off" in done.state.details


FAILED = request_views(3, RequestStatus.FAILED)


@pytest.mark.parametrize(
    ("result", "words"),
    [
        (
            round_result(stopped_by=GateControl.BUDGET, stopped_reason="budget: 10 of 10 spent"),
            ["budget: 10 of 10 spent"],
        ),
        (
            round_result(gave_up_reason="stripe stayed unavailable for 15m"),
            ["stripe stayed unavailable for 15m"],
        ),
        (
            round_result(tally=Tally(succeeded=1, failed=5), failed=tuple(FAILED), failed_count=5),
            ["5 requests failed for good", *(r.words() for r in FAILED), "and 2 more"],
        ),
        (
            round_result(tally=Tally(succeeded=1, pending=2, pending_unreplayable=2)),
            ["2 failed requests have nothing to replay"],
        ),
    ],
    ids=["budget", "gave-up", "failed", "unreplayable"],
)
def test_after_round_escalates_what_it_cannot_fix(result: RoundResult, words: list[str]) -> None:
    done = machine.after_round(state(Phase.ACTING, plan=make_plan()), result, NOW, PARAMS)
    assert (done.state.phase, done.state.plan) == (Phase.ACTING, None)
    command = done.command
    assert isinstance(command, DecideCmd)
    assert (command.action_type, command.ai_model) == (ActionType.ESCALATE, POLICY_MODEL)
    assert (command.plan_id, command.request_ids) == (None, ())
    for word in words:
        assert word in command.reasoning
    assert command.reasoning.endswith("escalating to a human")


def test_after_round_lists_every_problem_at_once() -> None:
    result = round_result(
        stopped_by=GateControl.BUDGET,
        stopped_reason="budget spent",
        failed=tuple(FAILED[:1]),
        failed_count=1,
    )
    command = machine.after_round(state(Phase.ACTING), result, NOW, PARAMS).command
    assert isinstance(command, DecideCmd)
    assert command.reasoning.startswith("budget spent; 1 request failed for good (")


def test_after_round_plans_what_joined_meanwhile() -> None:
    result = round_result(tally=Tally(succeeded=2, pending=3), new_pending=3)
    done = machine.after_round(state(Phase.ACTING, plan=make_plan()), result, NOW, PARAMS)
    assert done.command is None
    assert (done.state.phase, done.state.plan) == (Phase.ANALYZING, None)
    assert "3 more failed requests joined" in done.state.details


def test_after_round_verifies_when_everything_was_sent() -> None:
    acting = state(Phase.ACTING, plan=make_plan(), news=News(recovered=True))
    done = machine.after_round(acting, round_result(), NOW, PARAMS)
    assert done.command is None
    new = done.state
    assert (new.phase, new.plan) == (Phase.VERIFYING, None)
    assert (new.since, new.deadline) == (NOW, NOW + timedelta(seconds=300))
    assert new.news == News()
    assert new.status is IncidentStatus.ACTIONED
    assert "verifying for 5m" in new.details
    assert waiting_for(new) == "the window to close"


def test_after_round_of_an_incident_closed_elsewhere() -> None:
    result = round_result(still_open=False, status=IncidentStatus.RESOLVED)
    new = machine.after_round(state(Phase.ACTING, plan=make_plan()), result, NOW, PARAMS).state
    assert (new.phase, new.status, new.plan) == (Phase.CLOSED, IncidentStatus.RESOLVED, None)


def escalation(
    *,
    delivered: bool,
    kind: ActionType = ActionType.ESCALATE,
    shadow: bool = False,
    handed_over: int = 0,
    error: str | None = None,
) -> EscalationResult:
    status = ActionStatus.SUCCEEDED if delivered else ActionStatus.FAILED
    return EscalationResult(
        still_open=True,
        status=IncidentStatus.ACTIONED,
        action=action(kind, status, summary="pagerduty: paged", error=error),
        delivered=delivered,
        handed_over=handed_over,
        shadow=shadow,
        tally=HANDED,
    )


@pytest.mark.parametrize(
    ("result", "words"),
    [
        (
            escalation(delivered=True, handed_over=2),
            "escalated to on-call (2 requests handed over)",
        ),
        (escalation(delivered=True, shadow=True), "(shadow mode: delivered, marked shadow)"),
        (
            escalation(delivered=True, kind=ActionType.MANUAL),
            "ACTIONED: handed over for manual work; waiting for an operator to resolve",
        ),
        (
            escalation(delivered=False, error="webhook answered 410 Gone"),
            "escalation not delivered (webhook answered 410 Gone); waiting for an operator",
        ),
        (escalation(delivered=False), "escalation not delivered (pagerduty: paged)"),
    ],
    ids=["delivered", "shadow", "manual", "undelivered", "undelivered-no-error"],
)
def test_after_escalation_waits_for_an_operator_whatever_happened(
    result: EscalationResult, words: str
) -> None:
    acting = state(Phase.ACTING, plan=make_plan(action_type=result.action.action_type))
    done = machine.after_escalation(acting, result, NOW)
    assert done.command is None
    new = done.state
    assert (new.phase, new.plan, new.tally) == (Phase.AWAITING_OPERATOR, None, HANDED)
    assert words in new.details
    assert new.escalation == Escalation(
        delivered=result.delivered,
        summary="pagerduty: paged",
        shadow=result.shadow,
        at=NOW,
        action_id=result.action.action_id,
    )
    assert new.actions == (result.action,)


def test_after_escalation_of_an_incident_closed_elsewhere() -> None:
    result = escalation(delivered=True).model_copy(
        update={"still_open": False, "status": IncidentStatus.RESOLVED}
    )
    new = machine.after_escalation(state(Phase.ACTING), result, NOW).state
    assert (new.phase, new.status) == (Phase.CLOSED, IncidentStatus.RESOLVED)


@pytest.mark.parametrize(
    ("result", "note"),
    [
        (EpisodeResult(claimed=True, delivered=True), " · the episode's escalation was sent"),
        (
            EpisodeResult(claimed=True, delivered=False, summary="webhook down"),
            " · the episode's escalation was not delivered: webhook down",
        ),
        (EpisodeResult(claimed=False), ""),
    ],
    ids=["sent", "not-delivered", "another-owns-it"],
)
def test_after_episode_says_what_became_of_the_episode_escalation(
    result: EpisodeResult, note: str
) -> None:
    held = state(Phase.HELD, held_by=GateControl.FUSE, episode_id=uuid.uuid4(), details="held")
    new = machine.after_episode(held, result)
    assert (new.phase, new.episode_id, new.details) == (Phase.HELD, None, "held" + note)


# --- waiting for a control, verifying --------------------------------------------------------


def held_state(plan: Plan | None = None) -> IncidentState:
    return state(
        Phase.HELD,
        plan=plan,
        held_by=GateControl.KILL_SWITCH,
        held_reason="kill switch on stripe",
        deadline=NOW,
        news=News(gate_changed=True, recovered=True),
    )


@pytest.mark.parametrize(
    ("params", "recheck_at", "deadline"),
    [
        (PARAMS, None, NOW + timedelta(seconds=60)),
        (PARAMS, NOW + timedelta(seconds=10), NOW + timedelta(seconds=10)),
        (PARAMS, NOW + timedelta(hours=2), NOW + timedelta(seconds=60)),
        (PARAMS, NOW - timedelta(hours=1), NOW + WAIT_FLOOR),
        (PARAMS, NOW, NOW + WAIT_FLOOR),
        (FAST_RECHECK, None, NOW + WAIT_FLOOR),
    ],
    ids=["recheck", "sooner", "later", "past", "now", "fast"],
)
def test_after_probe_still_held_looks_again_never_before_the_floor(
    params: IncidentParams, recheck_at: datetime | None, deadline: datetime
) -> None:
    plan = make_plan()
    result = ProbeResult(
        holds=True, reason="kill switch still on", recheck_at=recheck_at, tally=PENDING
    )
    done = machine.after_probe(held_state(plan), result, NOW, params)
    assert done.command is None
    new = done.state
    assert (new.phase, new.plan, new.held_by) == (Phase.HELD, plan, GateControl.KILL_SWITCH)
    assert new.deadline == deadline
    assert new.deadline >= NOW + WAIT_FLOOR
    assert new.held_reason == "kill switch still on"
    assert new.news == News()


def test_after_probe_still_held_keeps_the_reason_it_had() -> None:
    done = machine.after_probe(held_state(), ProbeResult(holds=True), NOW, PARAMS)
    assert done.state.held_reason == "kill switch on stripe"


def test_after_probe_released_runs_the_held_plan() -> None:
    plan = make_plan()
    done = machine.after_probe(held_state(plan), ProbeResult(holds=False), NOW, PARAMS)
    new = done.state
    assert done.command is None
    assert (new.phase, new.plan, new.held_by, new.held_reason) == (
        Phase.ACTING,
        plan,
        None,
        None,
    )
    assert new.deadline is None


def test_after_probe_released_without_a_plan_analyses_again() -> None:
    done = machine.after_probe(held_state(), ProbeResult(holds=False), NOW, PARAMS)
    new = done.state
    assert (new.phase, new.held_by, new.held_reason, new.deadline) == (
        Phase.ANALYZING,
        None,
        None,
        None,
    )
    assert "released" in new.details


@pytest.mark.parametrize("holds", [True, False])
def test_after_probe_closes_when_every_request_recovered(holds: bool) -> None:
    result = ProbeResult(holds=holds, tally=RECOVERED)
    done = machine.after_probe(held_state(make_plan()), result, NOW, PARAMS)
    assert done.command == CloseCmd(
        status=IncidentStatus.RESOLVED,
        resolution="recovered: each of the 2 affected requests succeeded again at its sender",
        only_if=RECOVERED,
    )


def test_after_probe_of_an_incident_closed_elsewhere() -> None:
    result = ProbeResult(holds=True, still_open=False, status=IncidentStatus.IGNORED)
    new = machine.after_probe(held_state(make_plan()), result, NOW, PARAMS).state
    assert (new.phase, new.status, new.held_by, new.plan) == (
        Phase.CLOSED,
        IncidentStatus.IGNORED,
        None,
        None,
    )


def verifying(attempt: int = 1) -> IncidentState:
    return state(
        Phase.VERIFYING,
        status=IncidentStatus.ACTIONED,
        attempt=attempt,
        since=NOW - timedelta(minutes=1),
        deadline=NOW + timedelta(minutes=4),
        news=News(recovered=True),
    )


def test_after_verification_resolved() -> None:
    result = VerificationResult(
        still_open=False,
        status=IncidentStatus.RESOLVED,
        resolved=True,
        resolution="verified: no new failures within 5m",
        tally=DONE,
    )
    new = machine.after_verification(verifying(), result, NOW, PARAMS).state
    assert (new.phase, new.status, new.deadline) == (Phase.CLOSED, IncidentStatus.RESOLVED, None)
    assert new.resolution == "verified: no new failures within 5m"
    assert new.details == "RESOLVED: verified: no new failures within 5m"


def test_after_verification_of_an_incident_closed_elsewhere() -> None:
    result = VerificationResult(
        still_open=False, status=IncidentStatus.IGNORED, resolution="ignored by bob: noise"
    )
    new = machine.after_verification(verifying(), result, NOW, PARAMS).state
    assert (new.phase, new.status, new.resolution) == (
        Phase.CLOSED,
        IncidentStatus.IGNORED,
        "ignored by bob: noise",
    )


def test_after_verification_woken_early_with_nothing_new_keeps_verifying() -> None:
    before = verifying()
    result = VerificationResult(still_open=True, status=IncidentStatus.ACTIONED, tally=DONE)
    done = machine.after_verification(before, result, NOW, PARAMS)
    assert done.command is None
    new = done.state
    assert (new.phase, new.deadline, new.since) == (Phase.VERIFYING, before.deadline, before.since)
    assert new.news == News()
    assert new.attempt == 1


def test_after_verification_never_waits_less_than_the_floor() -> None:
    """Past the window and not resolved: looking again at once would spin without a wait."""
    due = verifying().model_copy(update={"deadline": NOW - timedelta(seconds=5)})
    result = VerificationResult(still_open=True, status=IncidentStatus.ACTIONED, tally=DONE)
    new = machine.after_verification(due, result, NOW, PARAMS).state
    assert new.phase is Phase.VERIFYING
    assert new.deadline == NOW + WAIT_FLOOR


@pytest.mark.parametrize("attempt", [1, 2])
def test_after_verification_new_failures_analyse_again(attempt: int) -> None:
    result = VerificationResult(
        still_open=True, status=IncidentStatus.ACTIONED, new_failures=2, tally=PENDING
    )
    done = machine.after_verification(verifying(attempt), result, NOW, PARAMS)
    assert done.command is None
    new = done.state
    assert (new.phase, new.attempt, new.deadline) == (Phase.ANALYZING, attempt + 1, None)
    assert f"analysing again (attempt {attempt + 1})" in new.details
    assert "2 new failures" in new.details


def test_after_verification_past_max_attempts_escalates() -> None:
    result = VerificationResult(
        still_open=True, status=IncidentStatus.ACTIONED, new_failures=1, tally=PENDING
    )
    done = machine.after_verification(verifying(PARAMS.max_attempts), result, NOW, PARAMS)
    assert (done.state.phase, done.state.attempt) == (Phase.ACTING, PARAMS.max_attempts)
    command = done.command
    assert isinstance(command, DecideCmd)
    assert (command.action_type, command.ai_model) == (ActionType.ESCALATE, POLICY_MODEL)
    assert command.reasoning.startswith("3 rounds did not stop the failures (1 new failures")


# --- operators closing ------------------------------------------------------------------------


@pytest.mark.parametrize("phase", OPEN_PHASES)
def test_close_check_lets_an_operator_close_every_open_phase(phase: Phase) -> None:
    assert machine.close_check(state(phase)) is None


def test_close_check_refuses_closed_and_closing() -> None:
    assert machine.close_check(closed_state()) == (
        "the incident is already IGNORED: ignored by alice: known noise"
    )
    assert machine.close_check(state(closing=True)) == "the incident is already being closed"


@pytest.mark.parametrize("phase", OPEN_PHASES)
def test_after_close_closes_from_every_phase(phase: Phase) -> None:
    plan = make_plan()
    answered = machine.answer(
        state(Phase.AWAITING_APPROVAL, plan=plan), approved=True, actor="a", reason=None
    )
    open_ = state(
        phase,
        plan=plan,
        held_by=GateControl.KILL_SWITCH,
        deadline=NOW,
        closing=True,
        answer=answered,
    )
    result = CloseResult(
        status=IncidentStatus.RESOLVED, resolution="resolved by alice: fixed", closed_now=True
    )
    new = machine.after_close(open_, result)
    assert (new.phase, new.status, new.resolution) == (
        Phase.CLOSED,
        IncidentStatus.RESOLVED,
        "resolved by alice: fixed",
    )
    assert (new.closing, new.plan, new.held_by, new.deadline, new.answer) == (
        False,
        None,
        None,
        None,
        None,
    )
    assert new.details == "RESOLVED: resolved by alice: fixed"
    assert waiting_for(new) is None
    assert machine.close_check(new) is not None


@pytest.mark.parametrize(
    "phase", [Phase.GROUPING, Phase.ANALYZING, Phase.HELD, Phase.AWAITING_OPERATOR]
)
def test_a_declined_automatic_close_stays_and_reads_the_requests_again(phase: Phase) -> None:
    """A request joined between the count and the close: the incident is not closed over it."""
    now = Tally(pending=1, recovered=2, proven=2)
    result = CloseResult(
        status=IncidentStatus.ANALYZING, resolution=None, closed_now=False, tally=now
    )
    new = machine.after_close(state(phase, tally=RECOVERED), result)
    assert (new.phase, new.status, new.tally, new.news.joined) == (
        phase,
        IncidentStatus.ANALYZING,
        now,
        True,
    )
    assert "changed as it was closing" in new.details


def test_a_declined_automatic_close_leaves_an_operators_close_in_flight_in_flight() -> None:
    """An operator's resolve began while the automatic close was declining: a second resolve
    must still be refused, and the workflow must not continue as new under it."""
    in_flight = machine.request_close(state(Phase.AWAITING_OPERATOR, tally=RECOVERED))
    declined = CloseResult(
        status=IncidentStatus.ACTIONED,
        resolution=None,
        closed_now=False,
        tally=Tally(pending=1, recovered=2, proven=2),
    )
    new = machine.after_close(in_flight, declined)
    assert new.closing
    assert machine.close_check(new) == "the incident is already being closed"


def test_every_automatic_close_is_bound_to_the_count_it_was_made_on() -> None:
    reviewed = machine.on_review(
        state(Phase.AWAITING_OPERATOR),
        ReviewResult(still_open=True, status=IncidentStatus.ACTIONED, tally=RECOVERED),
    )
    assert isinstance(reviewed.command, CloseCmd)
    assert reviewed.command.only_if == RECOVERED


def test_after_close_of_an_incident_closed_first_keeps_the_first_close() -> None:
    result = CloseResult(status=IncidentStatus.RESOLVED, resolution="other", closed_now=False)
    assert machine.after_close(closed_state(), result) == closed_state()


def test_closed_elsewhere() -> None:
    new = machine.closed_elsewhere(state(Phase.VERIFYING, deadline=NOW), IncidentStatus.IGNORED)
    assert (new.phase, new.status, new.deadline) == (Phase.CLOSED, IncidentStatus.IGNORED, None)
    assert new.details == "IGNORED: closed elsewhere"
    assert machine.closed_elsewhere(closed_state(), IncidentStatus.RESOLVED) == closed_state()


# --- a closed incident stays closed -----------------------------------------------------------

ANY_TALLY = RECOVERED
LATE: dict[str, Callable[[IncidentState], IncidentState | Transition]] = {
    "observe": lambda s: machine.observe(s, severity=Severity.CRITICAL, recovered=True),
    "gate_changed": machine.gate_changed,
    "grouping_over": machine.grouping_over,
    "on_review": lambda s: machine.on_review(
        s, ReviewResult(still_open=True, status=IncidentStatus.NEW, tally=ANY_TALLY)
    ),
    "after_analysis": lambda s: machine.after_analysis(s, analysis(), NOW, PARAMS),
    "after_analysis-nothing": lambda s: machine.after_analysis(
        s,
        AnalysisResult(still_open=True, status=IncidentStatus.ANALYZING, tally=ANY_TALLY),
        NOW,
        PARAMS,
    ),
    "after_decision": lambda s: machine.after_decision(s, analysis()),
    "after_round": lambda s: machine.after_round(s, round_result(), NOW, PARAMS),
    "after_round-failed": lambda s: machine.after_round(
        s, round_result(failed_count=1, failed=tuple(FAILED[:1])), NOW, PARAMS
    ),
    "after_escalation": lambda s: machine.after_escalation(s, escalation(delivered=False), NOW),
    "after_episode": lambda s: machine.after_episode(s, EpisodeResult(claimed=False)),
    "after_probe": lambda s: machine.after_probe(s, ProbeResult(holds=False), NOW, PARAMS),
    "after_probe-recovered": lambda s: machine.after_probe(
        s, ProbeResult(holds=False, tally=ANY_TALLY), NOW, PARAMS
    ),
    "after_verification": lambda s: machine.after_verification(
        s,
        VerificationResult(still_open=True, status=IncidentStatus.ACTIONED, new_failures=9),
        NOW,
        PARAMS,
    ),
    "after_close": lambda s: machine.after_close(
        s, CloseResult(status=IncidentStatus.RESOLVED, resolution="late", closed_now=True)
    ),
    "closed_elsewhere": lambda s: machine.closed_elsewhere(s, IncidentStatus.RESOLVED),
}


@pytest.mark.parametrize("late", list(LATE.values()), ids=list(LATE))
def test_work_in_flight_after_a_close_changes_nothing(
    late: Callable[[IncidentState], IncidentState | Transition],
) -> None:
    closed = closed_state()
    after = late(closed)
    if isinstance(after, Transition):
        assert after.command is None
        after = after.state
    assert after.phase is Phase.CLOSED
    assert (after.status, after.resolution) == (closed.status, closed.resolution)


# --- in words ---------------------------------------------------------------------------------


def in_phase(phase: Phase) -> IncidentState:
    plan = make_plan()
    match phase:
        case Phase.GROUPING:
            return machine.start(Severity.ERROR, NOW, PARAMS)
        case Phase.AWAITING_APPROVAL:
            return machine.after_analysis(
                state(), analysis(GateEffect.APPROVAL, plan=plan, reason="r"), NOW, PARAMS
            ).state
        case Phase.HELD:
            return machine.after_analysis(
                state(),
                analysis(GateEffect.HOLD, plan=plan, control=GateControl.KILL_SWITCH, reason="r"),
                NOW,
                PARAMS,
            ).state
        case Phase.ACTING:
            return machine.after_analysis(state(), analysis(plan=plan), NOW, PARAMS).state
        case Phase.VERIFYING:
            return machine.after_round(state(Phase.ACTING), round_result(), NOW, PARAMS).state
        case Phase.AWAITING_OPERATOR:
            return machine.after_escalation(
                state(Phase.ACTING), escalation(delivered=True), NOW
            ).state
        case Phase.CLOSED:
            return closed_state()
        case _:
            return state(phase)


EXPECTED_WAIT: dict[Phase, str | None] = {
    Phase.GROUPING: "the window to close",
    Phase.ANALYZING: None,
    Phase.AWAITING_APPROVAL: "approval of {plan}",
    Phase.HELD: "kill_switch",
    Phase.ACTING: None,
    Phase.VERIFYING: "the window to close",
    Phase.AWAITING_OPERATOR: "an operator to resolve",
    Phase.CLOSED: None,
}


@pytest.mark.parametrize("phase", list(Phase))
def test_describe_says_what_each_phase_waits_for(phase: Phase) -> None:
    current = in_phase(phase)
    assert current.phase is phase
    expected = EXPECTED_WAIT[phase]
    if expected is not None and current.plan is not None:
        expected = expected.format(plan=current.plan.plan_id)
    described = describe(current)
    assert waiting_for(current) == described.waiting_for == expected
    assert described.needs_a_human is (
        phase in (Phase.AWAITING_APPROVAL, Phase.HELD, Phase.AWAITING_OPERATOR)
    )
    assert described.headline.startswith(current.details)
    timed = phase in (Phase.GROUPING, Phase.VERIFYING, Phase.AWAITING_APPROVAL, Phase.HELD)
    assert ("(until 2025-03-01T" in described.headline) is timed
    assert described.requests == current.tally.words()


def test_markdown_shows_the_plan_and_what_it_waits_for() -> None:
    waiting = in_phase(Phase.AWAITING_APPROVAL)
    assert waiting.plan is not None
    text = markdown(waiting, "payments failing")
    assert f"Plan `{waiting.plan.plan_id}`: retry 2 requests through stripe" in text
    assert "(key `key-0`)" in text
    assert f"Waiting for: approval of {waiting.plan.plan_id}" in text
    assert text.startswith("**ANALYZING** · error · awaiting_approval · attempt 1")


def test_tally_in_words() -> None:
    assert Tally().words() == "0 requests"
    assert Tally(pending=1).words() == "1 request: 1 pending"
    assert Tally(succeeded=2, failed=1, sent=1).words() == (
        "4 requests: 1 in flight, 2 succeeded, 1 failed"
    )


# --- the state crosses continue-as-new --------------------------------------------------------


def test_the_whole_state_round_trips_through_json() -> None:
    plan = make_plan(3)
    full = state(
        Phase.AWAITING_APPROVAL,
        status=IncidentStatus.ACTIONED,
        severity=Severity.CRITICAL,
        attempt=2,
        plan=plan.model_copy(update={"approved_by": "alice", "is_reversible": False}),
        held_by=GateControl.CONFIDENCE,
        held_reason="confidence 0.4 < 0.8",
        deadline=NOW,
        since=NOW - timedelta(minutes=5),
        news=News(recovered=True, joined=True, gate_changed=True),
        tally=Tally(pending=1, pending_unreplayable=1, succeeded=2, proven=1, failed=1),
        escalation=Escalation(delivered=False, summary="410", at=NOW, action_id=uuid.uuid4()),
        episode_id=uuid.uuid4(),
        decisions=(decision(), decision(ActionType.ESCALATE)),
        actions=(action(), action(ActionType.ESCALATE, ActionStatus.FAILED, error="x")),
        details="awaiting approval of a plan",
        resolution=None,
        closing=True,
        answer=machine.answer(
            state(Phase.AWAITING_APPROVAL, plan=plan), approved=True, actor="alice", reason="ok"
        ),
        persisted_phase=Phase.HELD,
    )
    carried = IncidentState.model_validate(json.loads(json.dumps(full.model_dump(mode="json"))))
    assert carried == full
    assert carried.plan is not None
    assert carried.plan.request_ids == plan.request_ids
    assert carried.deadline == NOW


# --- plan ids --------------------------------------------------------------------------------

REQUESTS = [(uuid.UUID(int=n), f"hash-{n}") for n in (3, 1, 2)]


def test_plan_id_ignores_the_order_of_the_requests() -> None:
    assert plan_id(ActionType.RETRY, REQUESTS) == plan_id(ActionType.RETRY, reversed(REQUESTS))
    assert plan_id(ActionType.RETRY, REQUESTS) == plan_id(ActionType.RETRY, sorted(REQUESTS))
    assert plan_id(ActionType.RETRY, REQUESTS).startswith("plan-")


@pytest.mark.parametrize(
    "other",
    [
        (ActionType.ESCALATE, REQUESTS),
        (ActionType.MANUAL, REQUESTS),
        (ActionType.RETRY, REQUESTS[:2]),
        (ActionType.RETRY, [*REQUESTS, (uuid.UUID(int=4), "hash-4")]),
        (ActionType.RETRY, [(uuid.UUID(int=9), "hash-3"), *REQUESTS[1:]]),
        (ActionType.RETRY, [(uuid.UUID(int=3), "other"), *REQUESTS[1:]]),
        (ActionType.RETRY, []),
    ],
    ids=["escalate", "manual", "fewer", "more", "other-id", "other-content", "none"],
)
def test_plan_id_changes_with_what_the_plan_does(
    other: tuple[ActionType, list[tuple[uuid.UUID, str]]],
) -> None:
    assert plan_id(*other) != plan_id(ActionType.RETRY, REQUESTS)
