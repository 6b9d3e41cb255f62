"""Incident activities: analyse and decide, record operators' decisions, verify, close."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from awfdrs.activities.context import IncidentContext
from awfdrs.analysis import Analyzer, IncidentFacts
from awfdrs.constants import incident_workflow_id
from awfdrs.contracts import (
    ActionPlan,
    AnalysisOutcome,
    AnalyzeCommand,
    CloseIncident,
    CloseOutcome,
    DecideCommand,
    DecisionSummary,
    GateVerdict,
    VerifyCommand,
    VerifyOutcome,
)
from awfdrs.db.models import Action, Decision, Incident
from awfdrs.db.repositories import (
    ActionRepository,
    DecisionRepository,
    EventRepository,
    FuseEpisodeRepository,
    IncidentRepository,
)
from awfdrs.db.session import tenant_session
from awfdrs.enums import (
    OPEN_INCIDENT_STATUSES,
    ActionStatus,
    ActionType,
    GateControl,
    GateEffect,
    IncidentStatus,
)
from awfdrs.metrics import Metrics
from awfdrs.remediation.executors import Executor
from awfdrs.remediation.gate import Gate

log = activity.logger


def summarize(decision: Decision) -> DecisionSummary:
    return DecisionSummary(
        decision_id=decision.id,
        decision_type=decision.decision_type,
        confidence=decision.confidence_score,
        reasoning=decision.reasoning,
        ai_model=decision.ai_model,
        attempt=decision.attempt,
        classification=decision.classification,
        gate=decision.gate,
        gate_reason=decision.gate_reason,
        decided_by=decision.decided_by,
    )


def plan(action: Action) -> ActionPlan:
    return ActionPlan(
        action_id=action.id,
        action_type=action.action_type,
        decision_id=action.decision_id,
        is_reversible=action.is_reversible,
    )


def incident_fields(incident: Incident, **more: object) -> dict[str, object]:
    """The log context of an incident: who, which, where in Temporal, which trace."""
    return {
        "tenant_id": incident.tenant_id,
        "incident_id": incident.id,
        "workflow_id": incident_workflow_id(incident.id),
        "correlation_id": incident.correlation_id,
        **more,
    }


_EFFECT_OF_CONTROL = {
    GateControl.KILL_SWITCH: GateEffect.HOLD,
    GateControl.FUSE: GateEffect.HOLD,
    GateControl.BUDGET: GateEffect.ESCALATE,
    GateControl.CONFIDENCE: GateEffect.APPROVAL,
    GateControl.REVERSIBILITY: GateEffect.APPROVAL,
}


async def _replayed_verdict(
    session: AsyncSession, decision: Decision, action: Action | None
) -> GateVerdict:
    """The verdict a stored decision was taken with (a retried activity returns it again)."""
    control = decision.gate
    if control is None:
        return GateVerdict()
    if control is GateControl.MODE:
        shadowed = action is not None and action.status is ActionStatus.SHADOWED
        effect = GateEffect.SHADOW if shadowed else GateEffect.RECORD
    else:
        effect = _EFFECT_OF_CONTROL[control]
    episode_id = None
    if control is GateControl.FUSE:
        pending = await FuseEpisodeRepository(session, tenant_id=decision.tenant_id).unescalated()
        episode_id = pending.id if pending else None
    return GateVerdict(
        effect=effect, control=control, reason=decision.gate_reason, episode_id=episode_id
    )


class IncidentActivities:
    """Built once per worker; the analyzer, executors and gate are injected."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        analyzer: Analyzer,
        executors: dict[ActionType, Executor],
        gate: Gate,
        metrics: Metrics | None = None,
    ) -> None:
        self._sessions = sessions
        self._analyzer = analyzer
        self._executors = executors
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

    async def _add_action(
        self,
        context: IncidentContext,
        *,
        action_id: uuid.UUID,
        decision_id: uuid.UUID,
        action_type: ActionType,
        reasoning: str,
        shadow: bool = False,
    ) -> Action:
        parameters = context.parameters(action_type, reasoning)
        if action_type is ActionType.RETRY and "request" not in parameters:
            # An operator approved a retry of something that has no request to replay.
            action_type, parameters = ActionType.MANUAL, {"note": reasoning}
        vendor_id = None
        if action_type is ActionType.RETRY:
            vendor = await context.vendor()
            vendor_id = vendor.id if vendor else None
        return await ActionRepository(context.session, tenant_id=context.tenant_id).add_once(
            id=action_id,
            incident_id=context.incident.id,
            decision_id=decision_id,
            action_type=action_type,
            parameters=parameters,
            vendor_id=vendor_id,
            is_reversible=self._executors[action_type].is_reversible(parameters),
            **(
                {
                    "status": ActionStatus.SHADOWED,
                    "result": {"shadow": True, "summary": "shadow mode: not executed"},
                    "finished_at": datetime.now(UTC),
                }
                if shadow
                else {}
            ),
        )

    @activity.defn(name="analyze_incident")
    async def analyze(self, command: AnalyzeCommand) -> AnalysisOutcome:
        """Move to ANALYZING, record the analyzer's Decision with the gate's verdict, and add
        the Action (PENDING) when the gate lets it run.

        Idempotent: the ids come from the workflow, so a second run returns the first's rows.
        """
        async with tenant_session(self._sessions, command.tenant_id) as session:
            incidents = IncidentRepository(session, tenant_id=command.tenant_id)
            incident = await incidents.transition(
                command.incident_id, expected=OPEN_INCIDENT_STATUSES, to=IncidentStatus.ANALYZING
            )
            if incident is None:
                current = await incidents.get(command.incident_id)
                return AnalysisOutcome(still_open=False, status=current.status)
            decisions = DecisionRepository(session, tenant_id=command.tenant_id)
            actions = ActionRepository(session, tenant_id=command.tenant_id)
            earlier = await decisions.find(command.decision_id)
            if earlier is not None:
                action = await actions.find(command.action_id)
                return AnalysisOutcome(
                    still_open=True,
                    status=incident.status,
                    decision=summarize(earlier),
                    verdict=await _replayed_verdict(session, earlier, action),
                    action=plan(action) if action else None,
                )
            context = await IncidentContext.load(session, command.tenant_id, incident)
            vendor = await context.vendor()
            successes, failures = await actions.outcome_counts(
                incident.signature, ActionType.RETRY, reanalysed=incident.id
            )
            analysis = await self._analyzer.analyze(
                IncidentFacts(
                    incident_id=incident.id,
                    signature=incident.signature,
                    operation=incident.operation,
                    event_type=context.event.event_type if context.event else "",
                    event_count=incident.event_count,
                    attempt=command.attempt,
                    error=context.payload.error,
                    retry=context.payload.retry,
                    vendor_name=context.vendor_name,
                    vendor_registered=vendor is not None,
                    prior_retry_successes=successes,
                    prior_retry_failures=failures,
                    regression_of=incident.regression_of,
                )
            )
            parameters = context.parameters(analysis.decision_type, analysis.reasoning)
            executor = self._executors[analysis.decision_type]
            verdict = await self._gate.evaluate(
                context.gate_input(
                    analysis.decision_type,
                    analysis.confidence,
                    executor.is_reversible(parameters),
                ),
                session,
            )
            decision_type, reasoning = analysis.decision_type, analysis.reasoning
            if verdict.effect is GateEffect.ESCALATE:
                decision_type = ActionType.ESCALATE
                reasoning = f"{reasoning} Not acting: {verdict.reason}."
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
                details={**analysis.details, "proposed": analysis.decision_type.value},
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
                extra=incident_fields(incident, decision_id=decision.id),
            )
            action = None
            if verdict.effect in (GateEffect.ACT, GateEffect.ESCALATE, GateEffect.SHADOW):
                action = await self._add_action(
                    context,
                    action_id=command.action_id,
                    decision_id=decision.id,
                    action_type=decision_type,
                    reasoning=reasoning,
                    shadow=verdict.effect is GateEffect.SHADOW,
                )
                if action.status is ActionStatus.SHADOWED:
                    self._metrics.actions.add(
                        1, {"type": action.action_type.value, "outcome": action.status.value}
                    )
            return AnalysisOutcome(
                still_open=True,
                status=incident.status,
                decision=summarize(decision),
                verdict=verdict,
                action=plan(action) if action else None,
            )

    @activity.defn(name="record_decision")
    async def decide(self, command: DecideCommand) -> AnalysisOutcome:
        """Record a decision the analyzer did not make (an operator's, or the workflow's policy,
        such as escalating after the last attempt) and add its Action. Idempotent by ids."""
        async with tenant_session(self._sessions, command.tenant_id) as session:
            incident = await IncidentRepository(session, tenant_id=command.tenant_id).get(
                command.incident_id
            )
            if not incident.status.is_open:
                return AnalysisOutcome(still_open=False, status=incident.status)
            decision = await DecisionRepository(session, tenant_id=command.tenant_id).add_once(
                id=command.decision_id,
                incident_id=incident.id,
                decision_type=command.action_type,
                reasoning=command.reasoning,
                confidence_score=command.confidence,
                ai_model=command.ai_model,
                attempt=command.attempt,
                decided_by=command.decided_by,
            )
            context = await IncidentContext.load(session, command.tenant_id, incident)
            action = await self._add_action(
                context,
                action_id=command.action_id,
                decision_id=decision.id,
                action_type=command.action_type,
                reasoning=command.reasoning,
            )
            return AnalysisOutcome(
                still_open=True,
                status=incident.status,
                decision=summarize(decision),
                verdict=GateVerdict(),
                action=plan(action),
            )

    @activity.defn(name="conclude_verification")
    async def conclude_verification(self, command: VerifyCommand) -> VerifyOutcome:
        """RESOLVED when no failure of the signature arrived since the action finished."""
        async with tenant_session(self._sessions, command.tenant_id) as session:
            new_failures = await EventRepository(
                session, tenant_id=command.tenant_id
            ).count_received_since(command.signature, command.since)
            if new_failures:
                return VerifyOutcome(resolved=False, still_open=True, new_failures=new_failures)
            window = timedelta(seconds=command.window_seconds)
            closed = await IncidentRepository(session, tenant_id=command.tenant_id).transition(
                command.incident_id,
                expected=OPEN_INCIDENT_STATUSES,
                to=IncidentStatus.RESOLVED,
                resolved_at=datetime.now(UTC),
                resolution=f"verified: no new failures within {window} after the action",
            )
            if closed is not None:
                self._closed(closed)
            return VerifyOutcome(resolved=closed is not None, still_open=False, new_failures=0)

    @activity.defn(name="close_incident")
    async def close(self, command: CloseIncident) -> CloseOutcome:
        """Move an open incident to RESOLVED or IGNORED; a closed one is left as it is."""
        if command.status.is_open:
            raise ValueError(f"{command.status} is not a closing status")
        async with tenant_session(self._sessions, command.tenant_id) as session:
            incidents = IncidentRepository(session, tenant_id=command.tenant_id)
            closed = await incidents.transition(
                command.incident_id,
                expected=OPEN_INCIDENT_STATUSES,
                to=command.status,
                resolved_at=datetime.now(UTC),
                resolution=command.resolution,
            )
            if closed is not None:
                self._closed(closed)
            incident = closed or await incidents.get(command.incident_id)
            return CloseOutcome(
                status=incident.status,
                resolution=incident.resolution,
                closed_now=closed is not None,
            )
