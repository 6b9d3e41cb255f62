"""Ingest: store a batch in a few set-based statements, then make incident workflows exist."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.client import Client
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError

from awfdrs.constants import (
    INCIDENT_WORKFLOW,
    SA_SEVERITY,
    SA_SIGNATURE,
    SA_STATUS,
    SA_TENANT,
    SA_WORKFLOW_NAME,
    incident_workflow_id,
)
from awfdrs.contracts import (
    Contract,
    EventResult,
    IncidentChange,
    IncidentInput,
    IncidentParams,
    IngestBatch,
    IngestResult,
    Observation,
    Outcome,
    TenantSettings,
)
from awfdrs.db.models import Incident, Workflow
from awfdrs.db.repositories import (
    EventRepository,
    IncidentRepository,
    IncidentTouch,
    TenantRepository,
    WorkflowRepository,
)
from awfdrs.db.session import tenant_session
from awfdrs.enums import IncidentStatus
from awfdrs.intake import PreparedBatch, conflict, group_failures, latest_successes, prepare
from awfdrs.metrics import Metrics

DISPATCH_CONCURRENCY = 32
log = activity.logger


class IncidentStart(Contract):
    """Everything needed to start an incident's workflow, or to tell it something."""

    workflow: IncidentInput
    observation: Observation


class StoredBatch(Contract):
    result: IngestResult
    dispatch: list[IncidentStart] = []


class DispatchRequest(Contract):
    starts: list[IncidentStart]


class TenantUnavailable(ApplicationError):
    """The batch as a whole is refused: unknown or inactive tenant or workflow."""

    def __init__(self, message: str) -> None:
        super().__init__(message, type="BatchRejected", non_retryable=True)


class IngestActivities:
    """Ingest's two steps; built once per worker with the session factory and Temporal client."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        client: Client,
        task_queue: str,
        metrics: Metrics | None = None,
    ) -> None:
        self._sessions = sessions
        self._client = client
        self._task_queue = task_queue
        self._metrics = metrics or Metrics()

    @activity.defn(name="ingest_batch")
    async def ingest_batch(self, batch: IngestBatch) -> StoredBatch:
        """Store the batch's new events and count them onto incidents, in one transaction.

        Redelivery is harmless: existing keys insert nothing and count nothing, and the result
        still names the open incidents those events belong to, so a retry after a crash dispatches
        what the first attempt could not.
        """
        started = time.perf_counter()
        prepared = prepare(batch.tenant_id, batch.events, datetime.now(UTC))
        async with tenant_session(self._sessions, batch.tenant_id) as session:
            settings, workflows = await self._check_scope(session, batch.tenant_id, prepared)
            events = EventRepository(session, tenant_id=batch.tenant_id)
            incidents = IncidentRepository(session, tenant_id=batch.tenant_id)
            inserted = await events.insert_new([a.row for a in prepared.accepted])
            known = await events.payload_hashes(
                {a.row.idempotency_key for a in prepared.accepted} - inserted
            )
            duplicate_signatures = self._settle_outcomes(prepared, inserted, known)
            new = [a for a in prepared.accepted if a.row.idempotency_key in inserted]
            touches = await incidents.upsert_failures(group_failures(new))
            recoveries = await incidents.find_recoveries(latest_successes(new))
            counted = {t.signature for t in touches}
            uncounted = await incidents.find_open_by_signatures(duplicate_signatures - counted)
            touched = await incidents.find_many(
                {t.id for t in touches} | {r.incident_id for r in recoveries}
            )
        by_id = {i.id: i for i in [*touched, *uncounted]}
        params = IncidentParams.from_settings(settings)
        starts: dict[uuid.UUID, IncidentStart] = {}
        for touch in touches:
            raised = (
                touch.prior_severity is not None and touch.severity.rank > touch.prior_severity.rank
            )
            if (touch.opened or raised) and touch.status.is_open:
                starts[touch.id] = _start(
                    by_id[touch.id],
                    workflows,
                    params,
                    Observation(severity=touch.severity if raised else None),
                )
        for incident in uncounted:
            starts.setdefault(incident.id, _start(incident, workflows, params, Observation()))
        for recovery in recoveries:
            starts[recovery.incident_id] = _start(
                by_id[recovery.incident_id],
                workflows,
                params,
                Observation(
                    severity=starts[recovery.incident_id].observation.severity
                    if recovery.incident_id in starts
                    else None,
                    recovered_at=recovery.recovered_at,
                ),
            )
        result = IngestResult(
            tenant_id=batch.tenant_id,
            outcomes=[r for r in prepared.results if r is not None],
            incidents=[
                IncidentChange(
                    incident_id=t.id,
                    signature=t.signature,
                    status=t.status,
                    severity=t.severity,
                    event_count=t.event_count,
                    opened=t.opened,
                    regression_of=t.regression_of,
                )
                for t in touches
            ],
        )
        self._observe(result, touches, by_id, time.perf_counter() - started)
        return StoredBatch(result=result, dispatch=list(starts.values()))

    def _observe(
        self,
        result: IngestResult,
        touches: Sequence[IncidentTouch],
        incidents: dict[uuid.UUID, Incident],
        seconds: float,
    ) -> None:
        self._metrics.ingest_batch_seconds.record(seconds)
        for outcome in Outcome:
            if count := result.count(outcome):
                self._metrics.events.add(count, {"outcome": outcome.value})
        opened = [t for t in touches if t.opened]
        if opened:
            self._metrics.incidents_opened.add(len(opened))
        log.info(
            "batch stored: %d accepted, %d duplicate, %d conflict, %d rejected in %.3fs",
            *(result.count(o) for o in Outcome),
            seconds,
            extra={"tenant_id": result.tenant_id},
        )
        for touch in opened:
            incident = incidents[touch.id]
            log.info(
                "incident opened: %s",
                incident.title,
                extra={
                    "tenant_id": incident.tenant_id,
                    "incident_id": incident.id,
                    "workflow_id": incident_workflow_id(incident.id),
                    "correlation_id": incident.correlation_id,
                },
            )

    async def _check_scope(
        self, session: AsyncSession, tenant_id: uuid.UUID, prepared: PreparedBatch
    ) -> tuple[TenantSettings, dict[uuid.UUID, Workflow]]:
        tenant = await TenantRepository(session, tenant_id=tenant_id).find(tenant_id)
        if tenant is None or not tenant.is_active:
            state = "unknown" if tenant is None else "inactive"
            raise TenantUnavailable(f"tenant_id: tenant {tenant_id} is {state}; batch rejected")
        wanted = prepared.workflow_ids
        found = {
            w.id: w
            for w in await WorkflowRepository(session, tenant_id=tenant_id).find_many(wanted)
        }
        for workflow_id in sorted(wanted, key=str):
            workflow = found.get(workflow_id)
            if workflow is None or not workflow.is_active:
                state = "unknown" if workflow is None else "inactive"
                raise TenantUnavailable(
                    f"workflow_id: workflow {workflow_id} is {state} for tenant {tenant_id}; "
                    "batch rejected"
                )
        return TenantSettings.model_validate(tenant.settings), found

    @staticmethod
    def _settle_outcomes(
        prepared: PreparedBatch, inserted: set[str], known: dict[str, str]
    ) -> set[str]:
        """Fill in accepted / duplicate / conflict; return signatures seen only as duplicates."""
        duplicate_signatures: set[str] = set()
        for item in prepared.accepted:
            key = item.row.idempotency_key
            if key in inserted:
                prepared.results[item.index] = EventResult(
                    idempotency_key=key, outcome=Outcome.ACCEPTED
                )
            elif known.get(key) == item.row.payload_hash:
                prepared.results[item.index] = EventResult(
                    idempotency_key=key, outcome=Outcome.DUPLICATE
                )
                if item.row.signature is not None:
                    duplicate_signatures.add(item.row.signature)
            else:
                # A key stored with another payload, or inserted concurrently and gone since.
                stored = known.get(key, "unknown")
                prepared.results[item.index] = conflict(key, stored, item.row.payload_hash)
        return duplicate_signatures

    @activity.defn(name="dispatch_incidents")
    async def dispatch_incidents(self, request: DispatchRequest) -> int:
        """Signal-with-start every incident workflow that must exist or must hear something.

        USE_EXISTING attaches to a running workflow instead of starting a second one; a closed
        incident's workflow is not started again (only a failed or terminated one is), so a
        late redelivery cannot reopen what an operator closed.
        """
        limit = asyncio.Semaphore(DISPATCH_CONCURRENCY)

        async def one(start: IncidentStart) -> bool:
            news = start.observation.severity is not None or start.observation.recovered_at
            signal: dict[str, Any] = (
                {"start_signal": "observe", "start_signal_args": [start.observation]}
                if news
                else {"request_eager_start": True}
            )
            async with limit:
                try:
                    await self._client.start_workflow(
                        INCIDENT_WORKFLOW,
                        start.workflow,
                        id=incident_workflow_id(start.workflow.incident_id),
                        task_queue=self._task_queue,
                        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
                        search_attributes=_search_attributes(start.workflow),
                        static_summary=f"{start.workflow.workflow_name}: {start.workflow.title}",
                        static_details=_static_details(start.workflow),
                        **signal,
                    )
                except WorkflowAlreadyStartedError:
                    return False
                return True

        started = await asyncio.gather(*(one(s) for s in request.starts))
        return sum(started)


def _start(
    incident: Incident,
    workflows: dict[uuid.UUID, Workflow],
    params: IncidentParams,
    observation: Observation,
) -> IncidentStart:
    workflow = workflows.get(incident.workflow_id)
    return IncidentStart(
        workflow=IncidentInput(
            tenant_id=incident.tenant_id,
            incident_id=incident.id,
            signature=incident.signature,
            workflow_id=incident.workflow_id,
            workflow_name=workflow.name if workflow else str(incident.workflow_id),
            title=incident.title,
            severity=incident.severity,
            regression_of=incident.regression_of,
            params=params,
        ),
        observation=observation,
    )


def _search_attributes(incident: IncidentInput) -> TypedSearchAttributes:
    return TypedSearchAttributes(
        [
            SearchAttributePair(SA_TENANT, str(incident.tenant_id)),
            SearchAttributePair(SA_STATUS, IncidentStatus.NEW.value),
            SearchAttributePair(SA_SEVERITY, incident.severity.value),
            SearchAttributePair(SA_SIGNATURE, incident.signature),
            SearchAttributePair(SA_WORKFLOW_NAME, incident.workflow_name),
        ]
    )


def _static_details(incident: IncidentInput) -> str:
    lines = [
        f"**Incident** `{incident.incident_id}`",
        f"**Tenant** `{incident.tenant_id}` · **workflow** {incident.workflow_name}",
        f"**Signature** `{incident.signature}`",
    ]
    if incident.regression_of is not None:
        lines.append(f"**Regression of** `{incident.regression_of}`")
    return "  \n".join(lines)


__all__: Sequence[str] = ["DispatchRequest", "IncidentStart", "IngestActivities", "StoredBatch"]
