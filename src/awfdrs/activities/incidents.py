"""Incident activities: analyse and plan, record operators' and policy decisions, settle a
retry round, verify, read the requests again, close, and tell PostgreSQL the phase.

All are short database steps, run as local activities. Each opens its own tenant-scoped
transaction and commits once; each is idempotent (ids chosen by the workflow, guarded state
moves), because Temporal may run it more than once.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from awfdrs.activities.context import (
    IncidentContext,
    action_view,
    decision_view,
    incident_fields,
    sample,
    tally,
)
from awfdrs.analysis import Analyzer, IncidentFacts
from awfdrs.contracts import (
    AnalyzeCommand,
    CloseIncident,
    DecideCommand,
    Payload,
    PhaseNote,
    ReviewCommand,
    SettleRound,
    VerifyCommand,
)
from awfdrs.db.models import Decision, Incident, RemediationRequest
from awfdrs.db.repositories import (
    ActionRepository,
    DecisionRepository,
    EventRepository,
    FuseEpisodeRepository,
    IncidentRepository,
    RequestRepository,
    VendorConnectionRepository,
)
from awfdrs.db.session import tenant_session
from awfdrs.enums import (
    OPEN_INCIDENT_STATUSES,
    ActionStatus,
    ActionType,
    GateControl,
    GateEffect,
    IncidentStatus,
    Phase,
    RequestStatus,
)
from awfdrs.lifecycle import (
    AnalysisResult,
    CloseResult,
    Plan,
    ReviewResult,
    RoundResult,
    Verdict,
    VerificationResult,
    plan_id,
)
from awfdrs.lifecycle.machine import phase_after
from awfdrs.metrics import Metrics
from awfdrs.remediation.executors import RetryExecutor
from awfdrs.remediation.gate import Gate
from awfdrs.words import span

log = activity.logger
# A plan covers at most this many requests; the rest wait for the next round's plan.
MAX_PLAN_REQUESTS = 200
UNSETTLED = (RequestStatus.PENDING, RequestStatus.FAILED)
# A close cancels unsent requests a batch per transaction, for at most CANCEL_SWEEP seconds.
CANCEL_BATCH = 5000
CANCEL_SWEEP = 1.0


def build_plan(
    action_type: ActionType,
    decision_id: uuid.UUID,
    action_id: uuid.UUID,
    rows: Sequence[RemediationRequest],
    *,
    sends: bool,
    approved_by: str | None = None,
) -> Plan:
    """A retry plan sends ``rows``; a hand-over plan names them (what the human gets)."""
    return Plan(
        plan_id=plan_id(action_type, [(r.id, r.request_hash) for r in rows]),
        decision_id=decision_id,
        action_id=action_id,
        action_type=action_type,
        request_ids=tuple(r.id for r in rows) if sends else (),
        request_count=len(rows),
        requests=sample(rows),
        vendors=tuple(sorted({r.vendor_name for r in rows if r.vendor_name})),
        is_reversible=all(RetryExecutor.reversible(r.method, r.reversible) for r in rows)
        if sends
        else True,
        approved_by=approved_by,
    )


class IncidentActivities:
    """Built once per worker; the analyzer and gate are injected."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        analyzer: Analyzer,
        gate: Gate,
        metrics: Metrics | None = None,
    ) -> None:
        self._sessions = sessions
        self._analyzer = analyzer
        self._gate = gate
        self._metrics = metrics or Metrics()

    def _closed(self, incident: Incident) -> None:
        self._metrics.incidents_closed.add(1, {"status": incident.status.value})
        log.info(
            "incident %s: %s",
            incident.status.value,
            incident.resolution,
            extra=incident_fields(incident),
        )

    @activity.defn(name="analyze_incident")
    async def analyze(self, command: AnalyzeCommand) -> AnalysisResult:
        """Move to ANALYZING, decide about the requests not yet settled, plan, and record the
        Decision with the gate's verdict (and its Action when it will run).

        Idempotent: the ids come from the workflow, so a second run returns the first's plan.
        """
        async with tenant_session(self._sessions, command.tenant_id) as session:
            incidents = IncidentRepository(session, tenant_id=command.tenant_id)
            incident = await incidents.transition(
                command.incident_id,
                expected=OPEN_INCIDENT_STATUSES,
                to=IncidentStatus.ANALYZING,
                phase=Phase.ANALYZING,
                phase_reason=None,
            )
            if incident is None:
                current = await incidents.get(command.incident_id)
                return AnalysisResult(still_open=False, status=current.status)
            decisions = DecisionRepository(session, tenant_id=command.tenant_id)
            earlier = await decisions.find(command.decision_id)
            if earlier is not None:
                return await self._replay(session, incident, earlier)
            requests = RequestRepository(session, tenant_id=command.tenant_id)
            pending = await requests.list_for_incident(
                incident.id,
                statuses=[RequestStatus.PENDING],
                replayable=True,
                limit=MAX_PLAN_REQUESTS,
            )
            unsettled = await requests.list_for_incident(
                incident.id, statuses=UNSETTLED, limit=MAX_PLAN_REQUESTS
            )
            if not unsettled:
                return AnalysisResult(
                    still_open=True,
                    status=incident.status,
                    tally=await tally(session, command.tenant_id, incident.id),
                )
            context = await IncidentContext.load(session, command.tenant_id, incident)
            first = (pending or unsettled)[0]
            event = await EventRepository(session, tenant_id=command.tenant_id).get(
                first.first_event_id
            )
            payload = Payload.model_validate(event.payload)
            successes, failures = await ActionRepository(
                session, tenant_id=command.tenant_id
            ).count_by_outcome(
                incident.signature,
                ActionType.RETRY,
                current=incident.id,
                again=command.attempt > 1,
            )
            connections = VendorConnectionRepository(session, tenant_id=command.tenant_id)
            connected = (
                first.vendor_id is not None
                and await connections.find_for_vendor(first.vendor_id) is not None
            )
            analysis = await self._analyzer.analyze(
                IncidentFacts(
                    incident_id=incident.id,
                    signature=incident.signature,
                    operation=incident.operation,
                    event_type=event.event_type,
                    event_count=incident.event_count,
                    attempt=command.attempt,
                    error=payload.error,
                    retry=payload.retry if pending else None,
                    vendor_name=first.vendor_name,
                    vendor_registered=first.vendor_id is not None,
                    vendor_connected=connected,
                    prior_retry_successes=successes,
                    prior_retry_failures=failures,
                    regression_of=incident.regression_of,
                    request_count=len(unsettled),
                )
            )
            decision_type, reasoning = analysis.decision_type, analysis.reasoning
            if decision_type is ActionType.RETRY and not pending:
                decision_type = ActionType.ESCALATE
                reasoning += (
                    " None of the affected requests may be sent (again): they failed for good "
                    "or failed again after succeeding; escalating."
                )
            retry = decision_type is ActionType.RETRY
            plan = build_plan(
                decision_type,
                command.decision_id,
                command.action_id,
                pending if retry else unsettled,
                sends=retry,
            )
            verdict = await self._gate.evaluate(
                context.gate_input(decision_type, analysis.confidence, plan.is_reversible),
                session,
            )
            if verdict.effect is GateEffect.ESCALATE:
                decision_type = ActionType.ESCALATE
                reasoning = f"{reasoning} Not acting: {verdict.reason}."
                plan = build_plan(
                    decision_type, command.decision_id, command.action_id, unsettled, sends=False
                )
            decision = await decisions.add_once(
                id=command.decision_id,
                incident_id=incident.id,
                decision_type=decision_type,
                reasoning=reasoning,
                confidence_score=analysis.confidence,
                ai_model=self._analyzer.model,
                classification=analysis.classification,
                attempt=command.attempt,
                gate=verdict.control,
                gate_reason=verdict.reason,
                details={
                    **analysis.details,
                    "proposed": analysis.decision_type.value,
                    "effect": verdict.effect.value,
                    "plan": plan.model_dump(mode="json"),
                },
            )
            self._metrics.decision_confidence.record(
                analysis.confidence, {"decision_type": decision_type.value}
            )
            log.info(
                "decision: %s (confidence %.2f)%s: %s",
                decision_type.value,
                analysis.confidence,
                f", held by {verdict.control.value}" if verdict.control else "",
                reasoning,
                extra=incident_fields(incident, decision_id=decision.id, plan_id=plan.plan_id),
            )
            if verdict.effect in (
                GateEffect.ACT,
                GateEffect.ESCALATE,
                GateEffect.HOLD,
                GateEffect.SHADOW,
            ):
                await self._add_action(
                    session, incident, plan, shadow=verdict.effect is GateEffect.SHADOW
                )
            phase = phase_after(verdict.effect)
            held = (
                verdict.control
                if verdict.effect in (GateEffect.HOLD, GateEffect.APPROVAL)
                else None
            )
            await incidents.note_phase(incident.id, phase, verdict.reason or plan.words(), held)
            return AnalysisResult(
                still_open=True,
                status=incident.status,
                tally=await tally(session, command.tenant_id, incident.id),
                decision=decision_view(decision),
                verdict=verdict,
                plan=plan,
                recorded_phase=phase,
            )

    async def _add_action(
        self, session: AsyncSession, incident: Incident, plan: Plan, *, shadow: bool = False
    ) -> None:
        """The Action that carries out ``plan``; in shadow mode it is recorded as not executed
        and its requests as what would have been sent."""
        tenant_id = incident.tenant_id
        vendors = await RequestRepository(session, tenant_id=tenant_id).list_by_ids(
            plan.request_ids
        )
        vendor_ids = {r.vendor_id for r in vendors if r.vendor_id is not None}
        values: dict[str, Any] = {}
        if shadow:
            values = {
                "status": ActionStatus.SHADOWED,
                "result": {"shadow": True, "summary": "shadow mode: not executed"},
                "finished_at": datetime.now(UTC),
            }
        await ActionRepository(session, tenant_id=tenant_id).add_once(
            id=plan.action_id,
            incident_id=incident.id,
            decision_id=plan.decision_id,
            action_type=plan.action_type,
            parameters={
                "plan_id": plan.plan_id,
                "request_ids": [str(i) for i in plan.request_ids],
                "request_count": plan.request_count,
            },
            vendor_id=vendor_ids.pop() if len(vendor_ids) == 1 else None,
            is_reversible=plan.is_reversible,
            **values,
        )
        if shadow:
            await RequestRepository(session, tenant_id=tenant_id).settle_unsent(
                incident.id,
                to=RequestStatus.SHADOWED,
                ids=plan.request_ids,
                action_id=plan.action_id,
                note="shadow mode: recorded as what would have been sent",
            )
            self._metrics.actions.add(
                1, {"type": plan.action_type.value, "outcome": ActionStatus.SHADOWED.value}
            )

    async def _replay(
        self, session: AsyncSession, incident: Incident, decision: Decision
    ) -> AnalysisResult:
        """The result a stored decision was taken with: a retried activity returns it again."""
        details = decision.details or {}
        effect = GateEffect(details.get("effect", GateEffect.ACT.value))
        episode_id = None
        if decision.gate is GateControl.FUSE:
            episode = await FuseEpisodeRepository(session, tenant_id=decision.tenant_id).find_open()
            episode_id = episode.id if episode else None
        plan = Plan.model_validate(details["plan"]) if "plan" in details else None
        return AnalysisResult(
            still_open=True,
            status=incident.status,
            tally=await tally(session, incident.tenant_id, incident.id),
            decision=decision_view(decision),
            verdict=Verdict(
                effect=effect,
                control=decision.gate,
                reason=decision.gate_reason,
                episode_id=episode_id,
            ),
            plan=plan,
        )

    @activity.defn(name="record_decision")
    async def decide(self, command: DecideCommand) -> AnalysisResult:
        """Record a decision the analyzer did not make (an operator's answer, or the workflow's
        policy, such as escalating) and the Action that carries it out.

        An approval adopts the reviewed plan as it is: the same requests, nothing that joined
        since. Idempotent by ids.
        """
        cmd = command.decision
        async with tenant_session(self._sessions, command.tenant_id) as session:
            incident = await IncidentRepository(session, tenant_id=command.tenant_id).get(
                command.incident_id
            )
            if not incident.status.is_open:
                return AnalysisResult(still_open=False, status=incident.status)
            decisions = DecisionRepository(session, tenant_id=command.tenant_id)
            earlier = await decisions.find(command.decision_id)
            if earlier is not None:
                return await self._replay(session, incident, earlier)
            requests = RequestRepository(session, tenant_id=command.tenant_id)
            sends = cmd.action_type is ActionType.RETRY
            if cmd.request_ids:
                rows = await requests.list_by_ids(cmd.request_ids)
            elif sends:
                rows = await requests.list_for_incident(
                    incident.id,
                    statuses=[RequestStatus.PENDING],
                    replayable=True,
                    limit=MAX_PLAN_REQUESTS,
                )
            else:
                rows = await requests.list_for_incident(
                    incident.id, statuses=UNSETTLED, limit=MAX_PLAN_REQUESTS
                )
            plan = build_plan(
                cmd.action_type,
                command.decision_id,
                command.action_id,
                rows,
                sends=sends,
                approved_by=cmd.decided_by if cmd.plan_id else None,
            )
            if cmd.plan_id is not None and plan.plan_id != cmd.plan_id:
                # Request content never changes, so the same ids give the same plan; anything
                # else means the plan was not the one reviewed.
                raise ValueError(f"plan {cmd.plan_id} does not match its requests ({plan.plan_id})")
            decision = await decisions.add_once(
                id=command.decision_id,
                incident_id=incident.id,
                decision_type=cmd.action_type,
                reasoning=cmd.reasoning,
                confidence_score=cmd.confidence,
                ai_model=cmd.ai_model,
                attempt=command.attempt,
                decided_by=cmd.decided_by,
                details={"effect": GateEffect.ACT.value, "plan": plan.model_dump(mode="json")},
            )
            await self._add_action(session, incident, plan)
            await IncidentRepository(session, tenant_id=command.tenant_id).note_phase(
                incident.id, Phase.ACTING, plan.words()
            )
            return AnalysisResult(
                still_open=True,
                status=incident.status,
                tally=await tally(session, command.tenant_id, incident.id),
                decision=decision_view(decision),
                verdict=Verdict(),
                plan=plan,
                recorded_phase=Phase.ACTING,
            )

    @activity.defn(name="settle_round")
    async def settle_round(self, command: SettleRound) -> RoundResult:
        """After a retry plan's requests were sent: finish its Action from their outcomes,
        move the incident to ACTIONED, and say what the round leaves to do."""
        async with tenant_session(self._sessions, command.tenant_id) as session:
            incidents = IncidentRepository(session, tenant_id=command.tenant_id)
            incident = await incidents.get(command.incident_id)
            requests = RequestRepository(session, tenant_id=command.tenant_id)
            rows = await requests.list_by_ids(command.request_ids)
            unanswered = {
                o.request_id: o.error
                for o in command.outcomes
                if o.status is RequestStatus.FAILED
                and any(r.id == o.request_id and not r.status.is_final for r in rows)
            }
            for request_id, error in unanswered.items():
                # Its attempts ran out of time without an answer: a human must look (the vendor
                # may or may not have applied it).
                await requests.settle_unsent(
                    incident.id,
                    to=RequestStatus.FAILED,
                    ids=[request_id],
                    from_statuses=(RequestStatus.PENDING, RequestStatus.SENT),
                    note=(error or "no answer")[:2000],
                )
            if unanswered:
                rows = await requests.list_by_ids(command.request_ids)
            halt = next((o for o in command.outcomes if o.halts), None)
            gave_up = next((o for o in command.outcomes if o.gave_up_waiting), None)
            actions = ActionRepository(session, tenant_id=command.tenant_id)
            finished = None
            if halt is None or halt.stopped_by is not None:
                done = sum(
                    r.status in (RequestStatus.SUCCEEDED, RequestStatus.RECOVERED) for r in rows
                )
                summary = f"{done} of {len(rows)} requests succeeded"
                if halt is not None:
                    summary += f"; stopped: {halt.reason}"
                finished = await actions.finish(
                    command.action_id,
                    status=ActionStatus.SUCCEEDED if done == len(rows) else ActionStatus.FAILED,
                    result={
                        "summary": summary,
                        "requests": {
                            s.value: sum(r.status is s for r in rows)
                            for s in RequestStatus
                            if any(r.status is s for r in rows)
                        },
                    },
                    error=None if done == len(rows) else summary,
                    attempts=sum(r.attempts for r in rows),
                )
                if finished is not None:
                    self._metrics.actions.add(
                        1, {"type": finished.action_type.value, "outcome": finished.status.value}
                    )
                    log.info(
                        "action %s %s after %d attempt(s): %s",
                        finished.action_type.value,
                        finished.status.value,
                        finished.attempts,
                        summary,
                        extra=incident_fields(incident, action_id=finished.id),
                    )
            if incident.status.is_open and any(r.attempts for r in rows):
                incident = await incidents.transition(
                    incident.id, expected=[IncidentStatus.ANALYZING], to=IncidentStatus.ACTIONED
                ) or await incidents.get(incident.id)
            failed = await requests.list_for_incident(
                incident.id, statuses=[RequestStatus.FAILED], limit=10
            )
            counts = await tally(session, command.tenant_id, incident.id)
            in_plan_pending = sum(r.status is RequestStatus.PENDING and r.replayable for r in rows)
            action = finished or await actions.find(command.action_id)
            return RoundResult(
                still_open=incident.status.is_open,
                status=incident.status,
                tally=counts,
                action=action_view(action) if action is not None else None,
                held_by=halt.held_by if halt else None,
                held_reason=halt.reason if halt and halt.held_by else None,
                episode_id=halt.episode_id if halt else None,
                stopped_by=halt.stopped_by if halt else None,
                stopped_reason=halt.reason if halt and halt.stopped_by else None,
                gave_up_reason=gave_up.reason if gave_up else None,
                failed=sample(failed),
                failed_count=counts.failed,
                new_pending=max(0, counts.replayable_pending - in_plan_pending),
            )

    @activity.defn(name="conclude_verification")
    async def conclude_verification(self, command: VerifyCommand) -> VerificationResult:
        """RESOLVED when the window passed with no new failure (or every affected request's own
        success arrived); else the count of failures since the round ended."""
        async with tenant_session(self._sessions, command.tenant_id) as session:
            incidents = IncidentRepository(session, tenant_id=command.tenant_id)
            # The row lock first: a batch that counts onto this incident holds it until its
            # requests are committed, so the tally below sees them, and a batch after this
            # close finds the incident closed and opens a new one. Read before the lock, a
            # request joining meanwhile was in neither and the incident resolved without it.
            incident = await incidents.get_for_update(command.incident_id)
            if not incident.status.is_open:
                return VerificationResult(
                    still_open=False, status=incident.status, resolution=incident.resolution
                )
            counts = await tally(session, command.tenant_id, incident.id)
            new = await RequestRepository(
                session, tenant_id=command.tenant_id
            ).count_failures_since(incident.id, command.since)
            # Never resolve with a request that is not done: one inserted before the round's
            # end but committed after it was in neither the round nor the count above.
            new = max(new, counts.pending + counts.sent + counts.failed + counts.shadowed)
            if new:
                return VerificationResult(
                    still_open=True, status=incident.status, new_failures=new, tally=counts
                )
            if counts.all_recovered:
                resolution = (
                    f"verified: each of the {counts.total} affected requests succeeded again at "
                    "its sender"
                )
            elif command.final:
                window = span(timedelta(seconds=command.window_seconds))
                resolution = (
                    f"verified: {counts.words()}; no new failures within {window} after the "
                    "last request succeeded"
                )
            else:
                return VerificationResult(still_open=True, status=incident.status, tally=counts)
            closed = await incidents.transition(
                command.incident_id,
                expected=OPEN_INCIDENT_STATUSES,
                to=IncidentStatus.RESOLVED,
                resolved_at=datetime.now(UTC),
                resolution=resolution,
                phase=Phase.CLOSED,
                phase_reason=None,
            )
            if closed is not None:
                self._closed(closed)
            current = closed or await incidents.get(command.incident_id)
            return VerificationResult(
                still_open=False,
                status=current.status,
                resolved=closed is not None,
                resolution=current.resolution,
                tally=counts,
            )

    @activity.defn(name="review_requests")
    async def review(self, command: ReviewCommand) -> ReviewResult:
        """Read the requests again after news; hand over to the escalation's human the ones
        that joined an escalated incident."""
        async with tenant_session(self._sessions, command.tenant_id) as session:
            incident = await IncidentRepository(session, tenant_id=command.tenant_id).get(
                command.incident_id
            )
            handed = 0
            if incident.status.is_open and command.hand_over_to is not None:
                moved = await RequestRepository(session, tenant_id=command.tenant_id).settle_unsent(
                    incident.id,
                    to=RequestStatus.HANDED_OVER,
                    from_statuses=UNSETTLED,
                    action_id=command.hand_over_to,
                    note="joined after the escalation: handed over to the same human",
                )
                handed = len(moved)
            return ReviewResult(
                still_open=incident.status.is_open,
                status=incident.status,
                tally=await tally(session, command.tenant_id, incident.id),
                handed_over=handed,
            )

    @activity.defn(name="close_incident")
    async def close(self, command: CloseIncident) -> CloseResult:
        """Move an open incident to RESOLVED or IGNORED and cancel what has not been sent; a
        closed one is left as it is. From this commit on, no request of it is claimed."""
        if command.status.is_open:
            raise ValueError(f"{command.status} is not a closing status")
        async with tenant_session(self._sessions, command.tenant_id) as session:
            incidents = IncidentRepository(session, tenant_id=command.tenant_id)
            if command.only_if is not None:
                # The row lock first, as in conclude_verification: a batch adding a request
                # holds it until the request is committed, so the count below includes it.
                incident = await incidents.get_for_update(command.incident_id)
                if incident.status.is_open:
                    counts = await tally(session, command.tenant_id, incident.id)
                    if counts != command.only_if:
                        return CloseResult(
                            status=incident.status,
                            resolution=None,
                            closed_now=False,
                            tally=counts,
                        )
            closed = await incidents.transition(
                command.incident_id,
                expected=OPEN_INCIDENT_STATUSES,
                to=command.status,
                resolved_at=datetime.now(UTC),
                resolution=command.resolution,
                phase=Phase.CLOSED,
                phase_reason=None,
            )
            cancelled = 0
            if closed is not None:
                self._closed(closed)
            incident = closed or await incidents.get(command.incident_id)
            note = (
                f"not sent: the incident was {incident.status.value.lower()} first "
                f"({incident.resolution})"
            )[:2000]
            if not incident.status.is_open:
                # The first batch in the close's own transaction; claims already refuse the
                # rest (their incident is closed), so the sweep below is only bookkeeping.
                cancelled = await RequestRepository(
                    session, tenant_id=command.tenant_id
                ).cancel_pending(incident.id, note, limit=CANCEL_BATCH)
            result = CloseResult(
                status=incident.status,
                resolution=incident.resolution,
                closed_now=closed is not None,
                cancelled=cancelled,
            )
        if cancelled == CANCEL_BATCH:
            swept, more = await self._sweep(command, note)
            result = result.model_copy(update={"cancelled": cancelled + swept, "more": more})
        return result

    async def _sweep(self, command: CloseIncident, note: str) -> tuple[int, bool]:
        """Cancel the rest of a very large closed incident, a batch per transaction, for at
        most CANCEL_SWEEP (the close runs as a local activity); how many, and whether some may
        be left (the workflow then closes again, which sweeps on)."""
        swept = 0
        deadline = time.monotonic() + CANCEL_SWEEP
        while True:
            async with tenant_session(self._sessions, command.tenant_id) as session:
                moved = await RequestRepository(
                    session, tenant_id=command.tenant_id
                ).cancel_pending(command.incident_id, note, limit=CANCEL_BATCH)
            swept += moved
            if moved < CANCEL_BATCH:
                return swept, False
            if time.monotonic() >= deadline:
                return swept, True

    @activity.defn(name="note_phase")
    async def note_phase(self, note: PhaseNote) -> bool:
        """Record the phase the workflow now waits in (open incidents only)."""
        async with tenant_session(self._sessions, note.tenant_id) as session:
            return await IncidentRepository(session, tenant_id=note.tenant_id).note_phase(
                note.incident_id, note.phase, note.reason, note.held_by
            )
