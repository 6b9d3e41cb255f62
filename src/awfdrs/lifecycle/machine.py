"""The incident state machine: the allowed moves, and pure functions from what a step reported
to the next state (and, when the move needs the database first, the command to run).

``IncidentWorkflow`` only waits, handles messages and calls activities; every decision about
where the incident goes next is made here, where plain pytest can check each one in
milliseconds. Times come in as arguments (the workflow's clock), never from the system.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TypeVar

from awfdrs.enums import ActionType, GateControl, GateEffect, IncidentStatus, Phase, Severity
from awfdrs.errors import InvalidTransitionError
from awfdrs.lifecycle.state import (
    KEPT_SUMMARIES,
    AnalysisResult,
    CloseCmd,
    CloseResult,
    DecideCmd,
    EpisodeResult,
    Escalation,
    EscalationResult,
    IncidentParams,
    IncidentState,
    News,
    Plan,
    ProbeResult,
    ReviewResult,
    RoundResult,
    Tally,
    Transition,
    VerificationResult,
)
from awfdrs.words import same_principal, span

POLICY_MODEL = "awfdrs-policy/1"
OPERATOR_MODEL = "operator"
# No wait is shorter than this: a control re-checked, or news handled, at most once a second.
WAIT_FLOOR = timedelta(seconds=1)

G, AN, AP, H, AC, V, OP, C = (
    Phase.GROUPING,
    Phase.ANALYZING,
    Phase.AWAITING_APPROVAL,
    Phase.HELD,
    Phase.ACTING,
    Phase.VERIFYING,
    Phase.AWAITING_OPERATOR,
    Phase.CLOSED,
)

TRANSITIONS: dict[Phase, frozenset[Phase]] = {
    G: frozenset({G, AN, C}),
    AN: frozenset({AN, AC, AP, H, OP, C}),
    AP: frozenset({AP, AC, OP, C}),
    H: frozenset({H, AN, AC, C}),
    AC: frozenset({AC, AN, V, H, OP, C}),
    V: frozenset({V, AN, AC, C}),
    OP: frozenset({OP, C}),
    C: frozenset(),
}


def move(state: IncidentState, to: Phase, **changes: object) -> IncidentState:
    """``state`` in phase ``to`` with ``changes``; InvalidTransitionError if the table forbids
    it. A closed incident stays closed: later results of work already in flight change nothing.
    """
    if to not in TRANSITIONS[state.phase]:
        raise InvalidTransitionError(f"{state.phase.value} → {to.value} is not a lifecycle move")
    return state.model_copy(update={"phase": to, **changes})


T = TypeVar("T")


def _keep(items: tuple[T, ...], new: T | None) -> tuple[T, ...]:
    return items if new is None else (*items, new)[-KEPT_SUMMARIES:]


def _closed(state: IncidentState, status: IncidentStatus, resolution: str | None) -> Transition:
    return Transition(
        state=move(
            state,
            C,
            status=status,
            resolution=resolution,
            plan=None,
            held_by=None,
            held_reason=None,
            deadline=None,
            answer=None,
            details=f"{status.value}: {resolution or 'closed elsewhere'}",
        )
    )


def _ignore_if_closed(state: IncidentState) -> Transition | None:
    return Transition(state=state) if state.phase is C else None


# --- opening, news ------------------------------------------------------------------------


def start(severity: Severity, now: datetime, params: IncidentParams) -> IncidentState:
    window = timedelta(seconds=params.grouping_window_seconds)
    return IncidentState(
        severity=severity,
        deadline=now + window,
        details=f"NEW: grouping failures for {span(window)}",
    )


def observe(
    state: IncidentState,
    *,
    severity: Severity | None = None,
    recovered: bool = False,
    joined: bool = False,
) -> IncidentState:
    """Ingest's news: severity only ever rises; recovery and new requests are flags the
    workflow clears once it has read the requests again."""
    if state.phase is C:
        return state
    raised = severity if severity is not None and severity.rank > state.severity.rank else None
    return state.model_copy(
        update={
            "severity": raised or state.severity,
            "news": News(
                recovered=state.news.recovered or recovered,
                joined=state.news.joined or joined,
                gate_changed=state.news.gate_changed,
            ),
        }
    )


def gate_changed(state: IncidentState) -> IncidentState:
    if state.phase is not H:
        return state
    return state.model_copy(update={"news": state.news.model_copy(update={"gate_changed": True})})


def grouping_over(state: IncidentState) -> IncidentState:
    if state.phase is C:
        return state
    return move(state, AN, deadline=None, details=f"ANALYZING (attempt {state.attempt})")


def on_review(state: IncidentState, result: ReviewResult) -> Transition:
    """After news, the requests as they are now: all proven recovered closes the incident."""
    if (done := _ignore_if_closed(state)) is not None:
        return done
    state = state.model_copy(
        update={"news": News(), "tally": result.tally, "status": result.status}
    )
    if not result.still_open:
        return _closed(state, result.status, None)
    if result.tally.all_recovered:
        return _close_if_unchanged(state, _recovered_words(state), result.tally)
    if result.handed_over:
        noun = "request" if result.handed_over == 1 else "requests"
        state = state.model_copy(
            update={
                "details": f"{state.status.value}: {result.handed_over} more failed {noun} "
                f"joined and went to the same human ({result.tally.words()}); waiting for an "
                "operator to resolve"
            }
        )
    return Transition(state=state)


def _close_if_unchanged(state: IncidentState, resolution: str, tally: Tally) -> Transition:
    """RESOLVED on the count just read, if the requests are still so when the close takes the
    incident's row: a request that joined in between must not be closed over unsent."""
    return Transition(
        state=state,
        command=CloseCmd(status=IncidentStatus.RESOLVED, resolution=resolution, only_if=tally),
    )


def _recovered_words(state: IncidentState) -> str:
    n = state.tally.total
    noun = "request" if n == 1 else "requests"
    if state.phase is G:
        return f"transient: the {n} failed {noun} recovered within the grouping window"
    return f"recovered: each of the {n} affected {noun} succeeded again at its sender"


# --- deciding -------------------------------------------------------------------------------


def after_analysis(
    state: IncidentState, result: AnalysisResult, now: datetime, params: IncidentParams
) -> Transition:
    """Go where the gate's verdict on the recorded decision says."""
    if (done := _ignore_if_closed(state)) is not None:
        return done
    state = state.model_copy(update={"tally": result.tally, "status": result.status})
    if not result.still_open:
        return _closed(state, result.status, None)
    if result.decision is None or result.plan is None:
        # Nothing left to decide about: every affected request worked, or a human has it.
        if result.tally.all_recovered or result.tally.all_done:
            resolution = (
                _recovered_words(state)
                if result.tally.all_recovered
                else f"done: each of the affected requests worked again ({result.tally.words()})"
            )
            return _close_if_unchanged(state, resolution, result.tally)
        return Transition(
            state=move(
                state,
                OP,
                plan=None,
                details=f"{state.status.value}: nothing left to remediate automatically "
                f"({result.tally.words()}); waiting for an operator",
            )
        )
    state = state.model_copy(
        update={"decisions": _keep(state.decisions, result.decision), "news": News()}
    )
    plan, verdict = result.plan, result.verdict
    reason = verdict.reason or ""
    match verdict.effect:
        case GateEffect.ACT | GateEffect.ESCALATE:
            return Transition(state=_acting(state, plan))
        case GateEffect.APPROVAL:
            deadline = now + timedelta(seconds=params.approval_timeout_seconds)
            return Transition(
                state=move(
                    state,
                    AP,
                    plan=plan,
                    deadline=deadline,
                    details=f"{state.status.value}: {reason}; plan {plan.plan_id}: {plan.words()}",
                )
            )
        case GateEffect.HOLD:
            # The gate names the control that holds; should it not, the kill switch is the
            # conservative reading (held until a person lets go), never a failed task.
            control = verdict.control or GateControl.KILL_SWITCH
            return Transition(
                state=_hold(state, plan, control, reason, now, params).model_copy(
                    update={"episode_id": verdict.episode_id}
                )
            )
        case GateEffect.SHADOW:
            return Transition(
                state=move(
                    state,
                    OP,
                    plan=None,
                    details=f"{state.status.value}: {plan.words()} not executed, {reason}; "
                    "waiting for an operator",
                )
            )
        case GateEffect.RECORD:
            return Transition(
                state=move(
                    state,
                    OP,
                    plan=None,
                    details=f"{state.status.value}: {reason}; waiting for an operator",
                )
            )


def phase_after(effect: GateEffect) -> Phase:
    """The phase a verdict leads to; the analysis records it on the incident."""
    return {
        GateEffect.ACT: AC,
        GateEffect.ESCALATE: AC,
        GateEffect.APPROVAL: AP,
        GateEffect.HOLD: H,
        GateEffect.SHADOW: OP,
        GateEffect.RECORD: OP,
    }[effect]


def _acting(state: IncidentState, plan: Plan) -> IncidentState:
    return move(
        state,
        AC,
        plan=plan,
        held_by=None,
        held_reason=None,
        deadline=None,
        details=f"{state.status.value}: {plan.words()} (attempt {state.attempt})",
    )


def _hold(
    state: IncidentState,
    plan: Plan | None,
    control: GateControl,
    reason: str,
    now: datetime,
    params: IncidentParams,
    recheck_at: datetime | None = None,
) -> IncidentState:
    return move(
        state,
        H,
        plan=plan,
        held_by=control,
        held_reason=reason,
        deadline=_recheck(now, params, recheck_at),
        news=state.news.model_copy(update={"gate_changed": False}),
        details=f"{state.status.value}: {reason}",
    )


def _recheck(now: datetime, params: IncidentParams, at: datetime | None) -> datetime:
    wait = timedelta(seconds=params.held_recheck_seconds)
    if at is not None:
        wait = min(wait, at - now)
    return now + max(wait, WAIT_FLOOR)


def after_decision(state: IncidentState, result: AnalysisResult) -> Transition:
    """A decision the analyzer did not make (an operator's, or the policy's): act on its plan.
    The gate's holds on automatic actions are checked again as each request is claimed."""
    if (done := _ignore_if_closed(state)) is not None:
        return done
    state = state.model_copy(update={"tally": result.tally, "status": result.status})
    if not result.still_open:
        return _closed(state, result.status, None)
    state = state.model_copy(
        update={"decisions": _keep(state.decisions, result.decision), "answer": None}
    )
    if result.plan is None:
        # Still open with nothing to carry out: closing only here would strand the incident
        # (open in PostgreSQL, no workflow left to run it). A human takes it from here.
        return Transition(
            state=move(
                state,
                OP,
                plan=None,
                deadline=None,
                details=f"{state.status.value}: the decision has nothing to carry out "
                f"({result.tally.words()}); waiting for an operator",
            )
        )
    return Transition(state=_acting(state, result.plan))


def approval_check(state: IncidentState, plan_id: str) -> str | None:
    """Why approve / reject of ``plan_id`` must be refused now; None when it may proceed."""
    if (refusal := close_check(state)) is not None:
        return refusal
    if state.phase is not AP or state.plan is None:
        return f"the incident is not waiting for approval ({state.phase.value})"
    if state.answer is not None:
        # Two answers at once: the second must not silently replace the first.
        if state.answer.decided_by is None:
            return "the approval timed out; the escalation is being recorded"
        verb = "approved" if state.answer.plan_id is not None else "rejected"
        return f"the plan was already {verb} by {state.answer.decided_by}; recording that"
    if plan_id != state.plan.plan_id:
        return (
            f"plan {plan_id} is not the plan awaiting approval: that is {state.plan.plan_id} "
            f"({state.plan.words()}); review it and name it"
        )
    return None


def needs_second_approver(state: IncidentState, params: IncidentParams) -> bool:
    """The two-person rule: a plan that is not reversible, approved by no one yet."""
    plan = state.plan
    return (
        params.two_person_rule
        and plan is not None
        and not plan.is_reversible
        and plan.first_approver is None
    )


def second_approver_check(state: IncidentState, actor: str) -> str | None:
    """Why ``actor`` may not approve now: they already gave the first of two approvals."""
    plan = state.plan
    if plan is None or plan.first_approver is None:
        return None
    if not same_principal(plan.first_approver, actor):
        return None
    return (
        f"{actor} already approved plan {plan.plan_id} and it is not reversible: the two-person "
        f"rule needs a second operator or admin of this tenant (anyone but {actor}) to approve it"
    )


def first_approval(state: IncidentState, actor: str) -> IncidentState:
    """Record the first of two approvals; the plan keeps waiting, its deadline unchanged."""
    assert state.plan is not None
    plan = state.plan.model_copy(update={"first_approver": actor})
    return state.model_copy(
        update={
            "plan": plan,
            "details": f"{state.status.value}: plan {plan.plan_id} ({plan.words()}) is not "
            f"reversible; approved by {actor}, awaiting a second approver (two-person rule)",
        }
    )


def answer(state: IncidentState, *, approved: bool, actor: str, reason: str | None) -> DecideCmd:
    """The decision an operator's approve / reject records. Approval adopts the reviewed plan
    as it is; it lifts only the holds an operator may lift (confidence, reversibility)."""
    plan = state.plan
    why = reason or "no reason given"
    if plan is None:  # validators refuse this; a replay never reaches it with another state
        return DecideCmd(
            action_type=ActionType.ESCALATE,
            reasoning=f"answered by {actor} with no plan waiting ({why}); escalating",
            ai_model=OPERATOR_MODEL,
            decided_by=actor,
        )
    if approved:
        by = f"{plan.first_approver} and {actor}" if plan.first_approver else actor
        return DecideCmd(
            action_type=plan.action_type,
            reasoning=f"approved by {by}: {why} (plan {plan.plan_id}: {plan.words()})",
            ai_model=OPERATOR_MODEL,
            decided_by=actor,
            plan_id=plan.plan_id,
            request_ids=plan.request_ids,
        )
    return DecideCmd(
        action_type=ActionType.ESCALATE,
        reasoning=f"rejected by {actor}: {why} (plan {plan.plan_id}: {plan.words()}); escalating",
        ai_model=OPERATOR_MODEL,
        decided_by=actor,
    )


def take_answer(state: IncidentState, command: DecideCmd) -> IncidentState:
    """Hold an operator's answer until the main loop records it (the update waits for that)."""
    return state.model_copy(update={"answer": command})


def request_close(state: IncidentState) -> IncidentState:
    return state.model_copy(update={"closing": True})


def approval_timed_out(state: IncidentState, params: IncidentParams) -> DecideCmd:
    timeout = timedelta(seconds=params.approval_timeout_seconds)
    plan = f" plan {state.plan.plan_id}" if state.plan else ""
    return DecideCmd(
        action_type=ActionType.ESCALATE,
        reasoning=f"no operator approved or rejected{plan} within {span(timeout)}; escalating",
        ai_model=POLICY_MODEL,
    )


# --- acting ---------------------------------------------------------------------------------


def after_round(
    state: IncidentState, result: RoundResult, now: datetime, params: IncidentParams
) -> Transition:
    """Where a retry round leaves the incident: held, stopped, escalating what failed,
    planning what joined meanwhile, or verifying."""
    if (done := _ignore_if_closed(state)) is not None:
        return done
    state = _took_in(state, result)
    if not result.still_open:
        return _closed(state, result.status, None)
    if result.held_by is not None:
        held = _hold(state, state.plan, result.held_by, result.held_reason or "", now, params)
        return Transition(state=held.model_copy(update={"episode_id": result.episode_id}))
    if result.stopped_by is GateControl.MODE:
        return Transition(
            state=move(
                state,
                OP,
                plan=None,
                details=f"{state.status.value}: {result.stopped_reason}; waiting for an operator",
            )
        )
    problems = _problems(result)
    if problems:
        return Transition(
            state=move(state, AC, plan=None, details=f"{state.status.value}: escalating"),
            command=DecideCmd(
                action_type=ActionType.ESCALATE,
                reasoning=f"{'; '.join(problems)}; escalating to a human",
                ai_model=POLICY_MODEL,
            ),
        )
    if result.new_pending > 0:
        return Transition(
            state=move(
                state,
                AN,
                plan=None,
                details=f"{state.status.value}: {result.new_pending} more failed requests "
                "joined; planning them",
            )
        )
    window = timedelta(seconds=params.verification_window_seconds)
    return Transition(
        state=move(
            state,
            V,
            plan=None,
            since=now,
            deadline=now + window,
            news=News(),
            details=f"{state.status.value}: {result.tally.words()}; verifying for {span(window)}",
        )
    )


def _problems(result: RoundResult) -> list[str]:
    problems = []
    if result.stopped_by is GateControl.BUDGET:
        problems.append(result.stopped_reason or "the remediation budget is spent")
    if result.gave_up_reason:
        problems.append(result.gave_up_reason)
    if result.failed_count:
        listed = "; ".join(r.words() for r in result.failed)
        more = result.failed_count - len(result.failed)
        noun = "request" if result.failed_count == 1 else "requests"
        problems.append(
            f"{result.failed_count} {noun} failed for good ({listed}"
            + (f"; and {more} more" if more > 0 else "")
            + ")"
        )
    if result.tally.pending_unreplayable:
        problems.append(
            f"{result.tally.pending_unreplayable} failed requests have nothing to replay"
        )
    return problems


def _took_in(state: IncidentState, result: RoundResult | EscalationResult) -> IncidentState:
    """An action's round taken into the state: the tally and status it saw, and the action."""
    return state.model_copy(
        update={
            "tally": result.tally,
            "status": result.status,
            "actions": _keep(state.actions, result.action),
        }
    )


def after_escalation(state: IncidentState, result: EscalationResult, now: datetime) -> Transition:
    """An escalation or hand-over finished: a human has the incident, or must be found. The
    incident waits for an operator either way; it never fails for an undeliverable page."""
    if (done := _ignore_if_closed(state)) is not None:
        return done
    state = _took_in(state, result)
    if not result.still_open:
        return _closed(state, result.status, None)
    action = result.action
    manual = action.action_type is ActionType.MANUAL
    handed = f" ({result.handed_over} requests handed over)" if result.handed_over else ""
    if result.delivered:
        what = "handed over for manual work" if manual else "escalated to on-call"
        shadow = " (shadow mode: delivered, marked shadow)" if result.shadow else ""
        details = f"ACTIONED: {what}{handed}{shadow}; waiting for an operator to resolve"
    else:
        details = (
            f"ACTIONED: escalation not delivered ({action.error or action.summary}){handed}; "
            "waiting for an operator"
        )
    return Transition(
        state=move(
            state,
            OP,
            plan=None,
            escalation=Escalation(
                delivered=result.delivered,
                summary=action.summary,
                shadow=result.shadow,
                at=now,
                action_id=action.action_id,
            ),
            details=details,
        )
    )


def after_episode(state: IncidentState, result: EpisodeResult) -> IncidentState:
    """The fuse episode's single escalation was tried by this incident (or another owns it)."""
    note = ""
    if result.claimed:
        note = (
            " · the episode's escalation was sent"
            if result.delivered
            else f" · the episode's escalation was not delivered: {result.summary}"
        )
    return state.model_copy(update={"episode_id": None, "details": state.details + note})


# --- waiting for a control, verifying -------------------------------------------------------


def after_probe(
    state: IncidentState, result: ProbeResult, now: datetime, params: IncidentParams
) -> Transition:
    """A held incident looked again: still held (next look not before the floor), recovered,
    or free to go on with its plan (or to a fresh analysis when it has none)."""
    if (done := _ignore_if_closed(state)) is not None:
        return done
    state = state.model_copy(update={"tally": result.tally, "news": News()})
    if not result.still_open:
        return _closed(state, result.status, None)
    if result.tally.all_recovered:
        return _close_if_unchanged(state, _recovered_words(state), result.tally)
    if result.holds:
        return Transition(
            state=_hold(
                state,
                state.plan,
                state.held_by or GateControl.KILL_SWITCH,
                result.reason or state.held_reason or "",
                now,
                params,
                result.recheck_at,
            )
        )
    if state.plan is not None:
        return Transition(state=_acting(state, state.plan))
    return Transition(
        state=move(
            state,
            AN,
            held_by=None,
            held_reason=None,
            deadline=None,
            details=f"{state.status.value}: released; analysing again",
        )
    )


def after_verification(
    state: IncidentState, result: VerificationResult, now: datetime, params: IncidentParams
) -> Transition:
    if (done := _ignore_if_closed(state)) is not None:
        return done
    state = state.model_copy(update={"tally": result.tally, "news": News()})
    if not result.still_open or result.resolved:
        return _closed(state, result.status, result.resolution)
    if result.new_failures == 0:
        # Woken early by news that proved nothing new: wait on. Never less than the floor, so
        # a window that ended unresolved is not concluded again in a tight loop.
        floor = now + WAIT_FLOOR
        deadline = state.deadline if state.deadline and state.deadline > floor else floor
        return Transition(state=state.model_copy(update={"deadline": deadline}))
    attempt = state.attempt + 1
    why = f"{result.new_failures} new failures after the requests succeeded"
    if attempt <= params.max_attempts:
        return Transition(
            state=move(
                state,
                AN,
                attempt=attempt,
                deadline=None,
                details=f"{state.status.value}: {why}; analysing again (attempt {attempt})",
            )
        )
    return Transition(
        state=move(state, AC, deadline=None, details=f"{state.status.value}: escalating"),
        command=DecideCmd(
            action_type=ActionType.ESCALATE,
            reasoning=f"{params.max_attempts} rounds did not stop the failures ({why}); escalating",
            ai_model=POLICY_MODEL,
        ),
    )


# --- operators closing ----------------------------------------------------------------------


def close_check(state: IncidentState) -> str | None:
    """Why resolve / ignore must be refused now; None when it may proceed."""
    if state.phase is C:
        return f"the incident is already {state.status.value}: {state.resolution}"
    if state.closing:
        return "the incident is already being closed"
    return None


def after_close(state: IncidentState, result: CloseResult) -> IncidentState:
    if state.phase is C:
        return state
    if result.status.is_open:
        # Declined: the requests changed after they were counted. Stay in the phase and read
        # them again, as when ingest says a request joined. Only automatic closes decline, so
        # `closing` (an operator's close in flight meanwhile) is left as it is.
        tally = result.tally or state.tally
        return state.model_copy(
            update={
                "tally": tally,
                "news": state.news.model_copy(update={"joined": True}),
                "details": f"{state.status.value}: the requests changed as it was closing "
                f"({tally.words()}); reading them again",
            }
        )
    return _closed(
        state.model_copy(update={"closing": False}), result.status, result.resolution
    ).state


def closed_elsewhere(state: IncidentState, status: IncidentStatus) -> IncidentState:
    if state.phase is C:
        return state
    return _closed(state, status, None).state
