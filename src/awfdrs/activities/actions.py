"""Executing an action: claim it, perform one attempt, record what happened.

This activity commits twice on purpose. The claim (PENDING → IN_PROGRESS, attempts + 1) must be
durable before the vendor is called, so the record shows the attempt even if the worker dies
during the call; the outcome is written after. Between the two, no transaction is held open
across the network call.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from awfdrs.contracts import AbandonCommand, ActionOutcome, ExecuteCommand, TenantSettings
from awfdrs.db.models import Action
from awfdrs.db.repositories import (
    ActionRepository,
    DecisionRepository,
    IncidentRepository,
    TenantRepository,
    VendorRepository,
    WorkflowRepository,
)
from awfdrs.db.session import tenant_session
from awfdrs.enums import ActionStatus, ActionType, IncidentStatus
from awfdrs.remediation.executors import (
    Executed,
    ExecutionContext,
    Executor,
    IncidentBrief,
    TransientActionError,
)


def outcome(action: Action, summary: str = "") -> ActionOutcome:
    result = action.result or {}
    return ActionOutcome(
        action_id=action.id,
        action_type=action.action_type,
        status=action.status,
        attempts=action.attempts,
        finished_at=action.finished_at,
        summary=summary or str(result.get("summary", "")),
        error=action.error,
    )


class ActionActivities:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], executors: dict[ActionType, Executor]
    ) -> None:
        self._sessions = sessions
        self._executors = executors

    async def _context(self, session: AsyncSession, action: Action) -> ExecutionContext:
        tenant_id = action.tenant_id
        tenant = await TenantRepository(session, tenant_id=tenant_id).current()
        incident = await IncidentRepository(session, tenant_id=tenant_id).get(action.incident_id)
        workflow = await WorkflowRepository(session, tenant_id=tenant_id).find(incident.workflow_id)
        decision = await DecisionRepository(session, tenant_id=tenant_id).get(action.decision_id)
        vendor = (
            await VendorRepository(session).find(action.vendor_id) if action.vendor_id else None
        )
        return ExecutionContext(
            action_id=action.id,
            parameters=action.parameters,
            incident=IncidentBrief(
                incident_id=incident.id,
                tenant_id=tenant_id,
                tenant_name=tenant.name,
                workflow_name=workflow.name if workflow else str(incident.workflow_id),
                title=incident.title,
                signature=incident.signature,
                severity=incident.severity,
                event_count=incident.event_count,
                first_seen_at=incident.first_seen_at,
                last_seen_at=incident.last_seen_at,
                status=incident.status.value,
            ),
            settings=TenantSettings.model_validate(tenant.settings),
            vendor_base_url=vendor.base_url if vendor else None,
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
        )

    async def _finish(
        self, command: ExecuteCommand | AbandonCommand, executed: Executed
    ) -> ActionOutcome:
        async with tenant_session(self._sessions, command.tenant_id) as session:
            actions = ActionRepository(session, tenant_id=command.tenant_id)
            finished = await actions.finish(
                command.action_id,
                status=ActionStatus.SUCCEEDED if executed.succeeded else ActionStatus.FAILED,
                result={**executed.result, "summary": executed.summary},
                error=executed.error,
            )
            await IncidentRepository(session, tenant_id=command.tenant_id).transition(
                command.incident_id,
                expected=[IncidentStatus.ANALYZING],
                to=IncidentStatus.ACTIONED,
            )
            return outcome(finished or await actions.get(command.action_id), executed.summary)

    @activity.defn(name="execute_action")
    async def execute(self, command: ExecuteCommand) -> ActionOutcome:
        """One attempt of the action; an action already finished is reported, never rerun.

        A transient failure is recorded on the row and raised for Temporal to retry, with the
        vendor's Retry-After as the next delay when it sent one; on the last allowed attempt it
        is recorded as the action's final failure instead.
        """
        attempt = activity.info().attempt
        async with tenant_session(self._sessions, command.tenant_id) as session:
            actions = ActionRepository(session, tenant_id=command.tenant_id)
            action = await actions.claim(command.action_id)
            if action is None:
                return outcome(await actions.get(command.action_id))
            context = await self._context(session, action)
            executor = self._executors[action.action_type]
        try:
            executed = await executor.execute(context)
        except TransientActionError as exc:
            if attempt >= command.max_attempts:
                executed = Executed(
                    False, str(exc), {}, error=f"gave up after {attempt} attempts: {exc}"
                )
            else:
                async with tenant_session(self._sessions, command.tenant_id) as session:
                    await ActionRepository(
                        session, tenant_id=command.tenant_id
                    ).record_attempt_error(command.action_id, f"attempt {attempt}: {exc}")
                delay = timedelta(seconds=exc.retry_after) if exc.retry_after is not None else None
                raise ApplicationError(
                    str(exc), type="TransientActionError", next_retry_delay=delay
                ) from exc
        return await self._finish(command, executed)

    @activity.defn(name="abandon_action")
    async def abandon(self, command: AbandonCommand) -> ActionOutcome:
        """Record an action as FAILED when its attempts ran out without an answer (timeouts)."""
        return await self._finish(
            command, Executed(False, command.reason, {}, error=command.reason)
        )
