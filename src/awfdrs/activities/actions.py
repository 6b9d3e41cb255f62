"""Handing an incident to humans: escalate to the tenant's on-call, or hand over for manual work.

No control holds these (kill switch, mode and fuse stop automatic actions only): a human is never
silenced. In shadow mode the page goes out marked shadow. A page that cannot be delivered (no
webhook, a 4xx, retries spent) is recorded as such and the incident waits for an operator with
the reason in view; the workflow never fails for it.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from awfdrs.activities.context import (
    IncidentContext,
    action_view,
    incident_fields,
    request_details,
    tally,
)
from awfdrs.constants import incident_workflow_id
from awfdrs.contracts import AbandonCommand, ExecuteCommand, Payload, WorkflowSettings
from awfdrs.db.models import Action, Incident
from awfdrs.db.repositories import (
    ActionRepository,
    DecisionRepository,
    EventRepository,
    IncidentRepository,
    RequestRepository,
)
from awfdrs.db.session import tenant_session
from awfdrs.enums import ActionStatus, ActionType, IncidentStatus, RemediationMode, RequestStatus
from awfdrs.lifecycle import EscalationResult, Tally
from awfdrs.metrics import Metrics
from awfdrs.remediation.executors import (
    Executed,
    ExecutionContext,
    Executor,
    IncidentBrief,
    TransientActionError,
)

log = activity.logger
REQUESTS_IN_A_PAGE = 20
UNSETTLED = (RequestStatus.PENDING, RequestStatus.FAILED, RequestStatus.SHADOWED)


class ActionActivities:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        executors: dict[ActionType, Executor],
        metrics: Metrics | None = None,
        links: dict[str, str] | None = None,
    ) -> None:
        self._sessions = sessions
        self._executors = executors
        self._metrics = metrics or Metrics()
        self._links = links or {}

    async def _context(
        self, session: AsyncSession, action: Action, incident: Incident
    ) -> ExecutionContext:
        tenant_id = action.tenant_id
        context = await IncidentContext.load(session, tenant_id, incident)
        decision = await DecisionRepository(session, tenant_id=tenant_id).get(action.decision_id)
        requests = RequestRepository(session, tenant_id=tenant_id)
        affected = await requests.list_for_incident(incident.id, limit=REQUESTS_IN_A_PAGE)
        counts = await tally(session, tenant_id, incident.id)
        error: dict[str, object] = {}
        if affected:
            event = await EventRepository(session, tenant_id=tenant_id).find(
                affected[-1].first_event_id
            )
            payload = Payload.model_validate(event.payload) if event else Payload()
            if payload.error is not None:
                error = payload.error.model_dump(mode="json", exclude_none=True)
        mode = (
            WorkflowSettings.model_validate(context.workflow.settings).remediation_mode
            or context.settings.remediation_mode
        )
        return ExecutionContext(
            action_id=action.id,
            parameters=action.parameters,
            incident=IncidentBrief(
                incident_id=incident.id,
                tenant_id=tenant_id,
                tenant_name=context.tenant.name,
                workflow_name=context.workflow.name,
                title=incident.title,
                signature=incident.signature,
                severity=incident.severity,
                event_count=incident.event_count,
                first_seen_at=incident.first_seen_at,
                last_seen_at=incident.last_seen_at,
                status=incident.status.value,
            ),
            settings=context.settings,
            decision={
                "decision_id": str(decision.id),
                "type": decision.decision_type.value,
                "reasoning": decision.reasoning,
                "confidence": decision.confidence_score,
                "ai_model": decision.ai_model,
                "classification": decision.classification.value
                if decision.classification
                else None,
                "decided_by": decision.decided_by,
            },
            requests=[request_details(r) for r in affected],
            request_counts=_counts(counts),
            error=error,
            links={
                "incident_id": str(incident.id),
                "temporal_workflow_id": incident_workflow_id(incident.id),
                **{k: v.format(incident_id=incident.id) for k, v in self._links.items()},
            },
            shadow=mode is RemediationMode.SHADOW,
        )

    @activity.defn(name="execute_action")
    async def execute(self, command: ExecuteCommand) -> EscalationResult:
        """One attempt at an escalation or hand-over; an action already finished is reported.

        A transient failure (5xx, timeout) is raised for Temporal to retry; on the last allowed
        attempt, or for a permanent refusal (no webhook, 4xx), the action is FAILED and the
        result says the page was not delivered. The incident's unsettled requests are handed
        over either way: the incident then waits in the operators' queue.
        """
        async with tenant_session(self._sessions, command.tenant_id) as session:
            actions = ActionRepository(session, tenant_id=command.tenant_id)
            action = await actions.get(command.action_id)
            incident = await IncidentRepository(session, tenant_id=command.tenant_id).get(
                command.incident_id
            )
            if action.status.is_final:
                return await self._result(session, incident, action)
            if not incident.status.is_open:
                # An operator closed it first: nobody is to be paged about a closed incident.
                closed = await actions.finish(
                    command.action_id,
                    status=ActionStatus.FAILED,
                    result={"summary": f"not sent: the incident was {incident.status.value}"},
                    error=f"not sent: the incident was {incident.status.value} first",
                )
                return await self._result(session, incident, closed or action)
            claimed = await actions.claim(command.action_id)
            assert claimed is not None
            context = await self._context(session, claimed, incident)
        try:
            executed = await self._executors[claimed.action_type].execute(context)
        except TransientActionError as exc:
            if claimed.attempts < command.max_attempts:
                async with tenant_session(self._sessions, command.tenant_id) as session:
                    await ActionRepository(
                        session, tenant_id=command.tenant_id
                    ).record_attempt_error(command.action_id, f"attempt {claimed.attempts}: {exc}")
                raise ApplicationError(str(exc), type="TransientActionError") from exc
            executed = Executed(
                False, str(exc), {}, error=f"gave up after {claimed.attempts} attempts: {exc}"
            )
        return await self._finish(command, executed, shadow=context.shadow)

    async def _finish(
        self, command: ExecuteCommand | AbandonCommand, executed: Executed, *, shadow: bool
    ) -> EscalationResult:
        async with tenant_session(self._sessions, command.tenant_id) as session:
            actions = ActionRepository(session, tenant_id=command.tenant_id)
            finished = await actions.finish(
                command.action_id,
                status=ActionStatus.SUCCEEDED if executed.succeeded else ActionStatus.FAILED,
                result={**executed.result, "summary": executed.summary, "shadow": shadow},
                error=executed.error,
            )
            incidents = IncidentRepository(session, tenant_id=command.tenant_id)
            incident = await incidents.transition(
                command.incident_id, expected=[IncidentStatus.ANALYZING], to=IncidentStatus.ACTIONED
            ) or await incidents.get(command.incident_id)
            action = finished or await actions.get(command.action_id)
            handed = 0
            if incident.status.is_open:
                delivered = "delivered" if executed.succeeded else "not delivered"
                moved = await RequestRepository(session, tenant_id=command.tenant_id).settle_unsent(
                    incident.id,
                    to=RequestStatus.HANDED_OVER,
                    from_statuses=UNSETTLED,
                    action_id=action.id,
                    note=f"handed over ({action.action_type.value}, page {delivered}): "
                    f"{executed.summary}"[:2000],
                )
                handed = len(moved)
            if finished is not None:
                self._metrics.actions.add(
                    1, {"type": finished.action_type.value, "outcome": finished.status.value}
                )
                log.info(
                    "%s %s: %s (%d requests handed over)",
                    finished.action_type.value,
                    "delivered" if executed.succeeded else "NOT delivered",
                    executed.summary,
                    handed,
                    extra=incident_fields(incident, action_id=finished.id),
                )
            return await self._result(session, incident, action, handed=handed)

    @staticmethod
    async def _result(
        session: AsyncSession, incident: Incident, action: Action, handed: int = 0
    ) -> EscalationResult:
        result = action.result or {}
        return EscalationResult(
            still_open=incident.status.is_open,
            status=incident.status,
            action=action_view(action),
            delivered=action.status is ActionStatus.SUCCEEDED,
            handed_over=handed,
            shadow=bool(result.get("shadow", False)),
            tally=await tally(session, incident.tenant_id, incident.id),
        )

    @activity.defn(name="abandon_action")
    async def abandon(self, command: AbandonCommand) -> EscalationResult:
        """Record an escalation as not delivered when its attempts ran out without an answer."""
        return await self._finish(
            command, Executed(False, command.reason, {}, error=command.reason), shadow=False
        )


def _counts(counts: Tally) -> dict[str, int]:
    return {
        "total": counts.total,
        "pending": counts.pending,
        "succeeded": counts.succeeded,
        "failed": counts.failed,
        "recovered": counts.recovered,
        "handed_over": counts.handed_over,
        "shadowed": counts.shadowed,
    }
