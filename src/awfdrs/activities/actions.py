"""Executing an action: the last checks and the claim, one attempt, the record of it.

The claim transaction takes the tenant's kill-switch lock (shared) and checks that no switch
covers the action, then, for a vendor call, takes the vendor's row lock to ask the circuit
breaker and the rate limit, and only then moves the action to IN_PROGRESS. It commits before the
vendor is called, so the record shows the attempt even if the worker dies during the call; the
outcome is written in a second transaction. No transaction is held open across the network.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from awfdrs.activities.incidents import incident_fields
from awfdrs.contracts import AbandonCommand, ActionOutcome, ExecuteCommand, TenantSettings
from awfdrs.db.models import Action, Incident, Vendor
from awfdrs.db.repositories import (
    ActionRepository,
    DecisionRepository,
    IncidentRepository,
    KillSwitchRepository,
    TenantRepository,
    VendorCallRepository,
    VendorRepository,
    WorkflowRepository,
)
from awfdrs.db.session import tenant_session
from awfdrs.enums import ActionStatus, ActionType, GateControl, IncidentStatus
from awfdrs.metrics import Metrics
from awfdrs.remediation import breaker, rate_limit
from awfdrs.remediation.executors import (
    Executed,
    ExecutionContext,
    Executor,
    IncidentBrief,
    TransientActionError,
)
from awfdrs.remediation.gate import describe_switch

POLICY_MODEL = "awfdrs-policy/1"
log = activity.logger


def outcome(action: Action, summary: str = "", **extra: object) -> ActionOutcome:
    result = action.result or {}
    return ActionOutcome.model_validate(
        {
            "action_id": action.id,
            "action_type": action.action_type,
            "status": action.status,
            "attempts": action.attempts,
            "finished_at": action.finished_at,
            "summary": summary or str(result.get("summary", "")),
            "error": action.error,
            **extra,
        }
    )


class Deferred(Exception):
    def __init__(self, delay: timedelta, reason: str) -> None:
        super().__init__(reason)
        self.delay = delay
        self.reason = reason


class ActionActivities:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        executors: dict[ActionType, Executor],
        metrics: Metrics | None = None,
    ) -> None:
        self._sessions = sessions
        self._executors = executors
        self._metrics = metrics or Metrics()

    async def _context(
        self, session: AsyncSession, action: Action, vendor: Vendor | None, incident: Incident
    ) -> ExecutionContext:
        if action.action_type is ActionType.RETRY:
            return ExecutionContext(
                action_id=action.id,
                parameters=action.parameters,
                vendor_base_url=vendor.base_url if vendor else None,
            )
        tenant_id = action.tenant_id
        tenant = await TenantRepository(session, tenant_id=tenant_id).current()
        workflow = await WorkflowRepository(session, tenant_id=tenant_id).find(incident.workflow_id)
        decision = await DecisionRepository(session, tenant_id=tenant_id).get(action.decision_id)
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

    async def _hold(
        self, session: AsyncSession, command: ExecuteCommand, action: Action, incident: Incident
    ) -> ActionOutcome | None:
        """Enforce the kill switch in the claim's transaction; the hold is an audited decision."""
        switches = KillSwitchRepository(session, tenant_id=command.tenant_id)
        await switches.lock_for_enforcement()
        switch = await switches.covering(incident.workflow_id)
        if switch is None:
            return None
        workflow = await WorkflowRepository(session, tenant_id=command.tenant_id).get(
            incident.workflow_id
        )
        reason = describe_switch(
            switch.workflow_id, workflow.name, switch.activated_by, switch.reason, switch.expires_at
        )
        decided = await DecisionRepository(session, tenant_id=command.tenant_id).get(
            action.decision_id
        )
        await DecisionRepository(session, tenant_id=command.tenant_id).add(
            incident_id=command.incident_id,
            decision_type=action.action_type,
            reasoning=f"{action.action_type.value} not started: {reason}",
            confidence_score=decided.confidence_score,
            ai_model=POLICY_MODEL,
            attempt=decided.attempt,
            gate=GateControl.KILL_SWITCH,
            gate_reason=reason,
            details={"action_id": str(action.id)},
        )
        return outcome(action, held_by=GateControl.KILL_SWITCH, held_reason=reason)

    async def _vendor_permit(
        self, session: AsyncSession, action: Action, command: ExecuteCommand
    ) -> tuple[Vendor | None, breaker.Permit | None]:
        """Ask the breaker and the rate limit, under the vendor's row lock; Deferred if not now."""
        if action.vendor_id is None:
            return None, None
        vendor = await VendorRepository(session).get_for_update(action.vendor_id)
        now = datetime.now(UTC)
        permit = breaker.acquire(vendor, now, lease=timedelta(seconds=command.timeout_seconds))
        if isinstance(permit, breaker.Blocked):
            raise Deferred(permit.retry_after, permit.reason)
        wait = await rate_limit.claim_slot(VendorCallRepository(session), vendor, now)
        if wait is not None:
            if permit.probe:
                breaker.release_probe(vendor)
            raise Deferred(
                wait, f"rate limit of {vendor.name}: next free slot in {wait.total_seconds():.2f}s"
            )
        return vendor, permit

    async def _defer(self, command: ExecuteCommand, deferred: Deferred) -> ActionOutcome:
        """Wait for the vendor (a retry with the exact delay) or, past the maximum, give up."""
        async with tenant_session(self._sessions, command.tenant_id) as session:
            tenant = await TenantRepository(session, tenant_id=command.tenant_id).current()
            limit = TenantSettings.model_validate(tenant.settings).max_deferral_seconds
            action = await ActionRepository(session, tenant_id=command.tenant_id).note_deferral(
                command.action_id
            )
            assert action.deferred_since is not None
            waited = datetime.now(UTC) - action.deferred_since
        if waited + deferred.delay <= timedelta(seconds=limit):
            raise ApplicationError(
                f"deferred: {deferred.reason}",
                type="ActionDeferred",
                next_retry_delay=deferred.delay,
            )
        return await self._finish(
            command,
            Executed(
                False,
                f"gave up waiting after {waited}: {deferred.reason}",
                {"deferred_for_seconds": waited.total_seconds()},
                error=f"vendor unavailable for longer than {timedelta(seconds=limit)}: "
                f"{deferred.reason}",
            ),
            gave_up_waiting=True,
        )

    async def _finish(
        self,
        command: ExecuteCommand | AbandonCommand,
        executed: Executed,
        *,
        vendor: tuple[Vendor, breaker.Permit] | None = None,
        healthy: bool | None = None,
        gave_up_waiting: bool = False,
    ) -> ActionOutcome:
        async with tenant_session(self._sessions, command.tenant_id) as session:
            if vendor is not None and healthy is not None:
                await self._record_call(session, vendor, healthy)
            actions = ActionRepository(session, tenant_id=command.tenant_id)
            finished = await actions.finish(
                command.action_id,
                status=ActionStatus.SUCCEEDED if executed.succeeded else ActionStatus.FAILED,
                result={**executed.result, "summary": executed.summary},
                error=executed.error,
            )
            incidents = IncidentRepository(session, tenant_id=command.tenant_id)
            moved = await incidents.transition(
                command.incident_id,
                expected=[IncidentStatus.ANALYZING],
                to=IncidentStatus.ACTIONED,
            )
            if finished is not None:
                incident = moved or await incidents.get(command.incident_id)
                self._metrics.actions.add(
                    1, {"type": finished.action_type.value, "outcome": finished.status.value}
                )
                log.info(
                    "action %s %s after %d attempt(s): %s",
                    finished.action_type.value,
                    finished.status.value,
                    finished.attempts,
                    executed.summary,
                    extra=incident_fields(incident, action_id=finished.id),
                )
            return outcome(
                finished or await actions.get(command.action_id),
                executed.summary,
                gave_up_waiting=gave_up_waiting,
            )

    @staticmethod
    async def _record_call(
        session: AsyncSession,
        vendor: tuple[Vendor, breaker.Permit],
        healthy: bool,
        retry_after: float | None = None,
    ) -> None:
        row, permit = vendor
        locked = await VendorRepository(session).get_for_update(row.id)
        now = datetime.now(UTC)
        breaker.record(locked, now, healthy=healthy, probe=permit.probe)
        if retry_after is not None:
            rate_limit.note_retry_after(locked, now, retry_after)

    @activity.defn(name="execute_action")
    async def execute(self, command: ExecuteCommand) -> ActionOutcome:
        """One attempt of the action; an action already finished is reported, never rerun.

        Held by a kill switch, it stays PENDING and the outcome says so. Deferred by the breaker
        or the rate limit, it is retried with the exact delay until the tenant's maximum
        deferral, then reported as given up. A transient failure is recorded on the row and
        raised for Temporal to retry (with the vendor's Retry-After as the delay); on the last
        allowed attempt it becomes the action's final failure.
        """
        try:
            async with tenant_session(self._sessions, command.tenant_id) as session:
                actions = ActionRepository(session, tenant_id=command.tenant_id)
                action = await actions.get(command.action_id)
                if action.status.is_final:
                    return outcome(action)
                incident = await IncidentRepository(session, tenant_id=command.tenant_id).get(
                    command.incident_id
                )
                if action.status is ActionStatus.PENDING:
                    held = await self._hold(session, command, action, incident)
                    if held is not None:
                        return held
                vendor, permit = await self._vendor_permit(session, action, command)
                claimed = await actions.claim(command.action_id)
                assert claimed is not None
                context = await self._context(session, claimed, vendor, incident)
        except Deferred as deferred:
            return await self._defer(command, deferred)
        permitted = (vendor, permit) if vendor is not None and permit is not None else None
        try:
            executed = await self._executors[claimed.action_type].execute(context)
        except TransientActionError as exc:
            if claimed.attempts >= command.max_attempts:
                failed = Executed(
                    False, str(exc), {}, error=f"gave up after {claimed.attempts} attempts: {exc}"
                )
                return await self._finish(
                    command, failed, vendor=permitted, healthy=exc.rate_limited
                )
            async with tenant_session(self._sessions, command.tenant_id) as session:
                if permitted is not None:
                    # A 429 is the vendor pacing us, not failing: honoured, not held against it.
                    healthy = exc.rate_limited
                    await self._record_call(session, permitted, healthy, exc.retry_after)
                await ActionRepository(session, tenant_id=command.tenant_id).record_attempt_error(
                    command.action_id, f"attempt {claimed.attempts}: {exc}"
                )
            delay = timedelta(seconds=exc.retry_after) if exc.retry_after is not None else None
            raise ApplicationError(
                str(exc), type="TransientActionError", next_retry_delay=delay
            ) from exc
        # A permanent 4xx is the request's fault: the vendor answered, so it counts as healthy.
        return await self._finish(command, executed, vendor=permitted, healthy=True)

    @activity.defn(name="abandon_action")
    async def abandon(self, command: AbandonCommand) -> ActionOutcome:
        """Record an action as FAILED when its attempts ran out without an answer (timeouts)."""
        return await self._finish(
            command, Executed(False, command.reason, {}, error=command.reason)
        )
