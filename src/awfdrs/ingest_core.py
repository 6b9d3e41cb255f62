"""The one ingest core: store a batch of a tenant's events in one transaction.

The HTTP edge and ``IngestEvents`` (for trusted Temporal clients) both call
:func:`store_events`. In one transaction it inserts the new events (set-based, counting only
rows really inserted), upserts their incidents, adds their failed requests to the incidents'
remediation, applies the successes as recovery evidence, and writes an outbox row for every
incident workflow that must start or hear something. The transaction commits before the caller
answers, so a 2xx means durable; the dispatcher delivers the outbox, so ingest neither waits for
Temporal nor loses a start when it is down.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from awfdrs import intake
from awfdrs.constants import incident_workflow_id
from awfdrs.contracts import (
    IncidentChange,
    IncidentInput,
    IncidentParams,
    IngestResult,
    TenantSettings,
    incident_params,
)
from awfdrs.db.models import Incident, Workflow
from awfdrs.db.repositories import (
    EventRepository,
    IncidentRepository,
    IncidentTouch,
    Notice,
    OutboxRepository,
    RequestRepository,
    TenantRepository,
    WorkflowRepository,
)
from awfdrs.db.session import tenant_session
from awfdrs.errors import AwfdrsError

log = logging.getLogger("awfdrs.ingest")
DEADLOCK_ATTEMPTS = 3
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})  # deadlock detected, serialization failure


def _sqlstate(error: BaseException) -> str | None:
    """The SQLSTATE behind an error from SQLAlchemy (wrapped) or asyncpg (raw statements)."""
    seen: set[int] = set()
    candidate: BaseException | None = error.orig if isinstance(error, DBAPIError) else error
    while candidate is not None and id(candidate) not in seen:
        seen.add(id(candidate))
        state = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if isinstance(state, str):
            return state
        candidate = candidate.__cause__
    return None


class TenantUnavailable(AwfdrsError):
    """The batch as a whole is refused: the tenant is unknown or inactive. Nothing is written."""


async def store_events(
    sessions: async_sessionmaker[AsyncSession],
    tenant_id: uuid.UUID,
    events: Sequence[object],
    *,
    task_queue: str,
    implied_tenant: bool = False,
    now: datetime | None = None,
) -> IngestResult:
    """Store what is new in ``events`` and tell the incidents concerned; one outcome per
    event in input order. ``events`` are decoded JSON objects, or ``jsonbatch.Undecodable``
    items (rejected with their reason). Each bad event is rejected on its own; the rest land.
    ``task_queue`` is where the incident workflows run (the dispatchers of that queue start
    them).

    Idempotent: a redelivered batch inserts nothing, counts nothing and notifies nothing.
    Raises :class:`TenantUnavailable` for an unknown or inactive tenant; database errors
    propagate (nothing was written).
    """
    for attempt in range(1, DEADLOCK_ATTEMPTS + 1):
        prepared = intake.prepare(
            tenant_id, events, now or datetime.now(UTC), implied_tenant=implied_tenant
        )
        try:
            return await _transaction(sessions, tenant_id, prepared, task_queue)
        except (DBAPIError, asyncpg.PostgresError) as error:
            # Two batches touching the same incidents' requests in crossing orders: PostgreSQL
            # aborts one. Nothing of it was written; run it again, as PostgreSQL advises.
            if _sqlstate(error) not in RETRYABLE_SQLSTATES or attempt == DEADLOCK_ATTEMPTS:
                raise
            log.warning("ingest transaction aborted (%s); running it again", _sqlstate(error))
    raise AssertionError("unreachable")


async def _transaction(
    sessions: async_sessionmaker[AsyncSession],
    tenant_id: uuid.UUID,
    prepared: intake.PreparedBatch,
    task_queue: str,
) -> IngestResult:
    async with tenant_session(sessions, tenant_id) as session:
        settings, workflows = await _scope(session, tenant_id, prepared)
        touches, notices = await _store(
            session, tenant_id, prepared, grouping_window=settings.grouping_window_seconds
        )
        incidents = await IncidentRepository(session, tenant_id=tenant_id).list_by_ids(notices)
        params = incident_params(settings)
        await OutboxRepository(session, tenant_id=tenant_id).add(
            [
                Notice(
                    incident_id=incident.id,
                    start=_input(incident, workflows, params).model_dump(mode="json"),
                    opened=notices[incident.id].opened,
                    severity=notices[incident.id].severity,
                    recovered=notices[incident.id].recovered,
                    joined=notices[incident.id].joined,
                )
                for incident in sorted(incidents, key=lambda i: str(i.id))
                if incident.status.is_open
            ],
            task_queue=task_queue,
        )
    for incident in incidents:
        if notices[incident.id].opened:
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
    return IngestResult(
        tenant_id=tenant_id,
        outcomes=prepared.outcomes(),
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


async def _scope(
    session: AsyncSession, tenant_id: uuid.UUID, prepared: intake.PreparedBatch
) -> tuple[TenantSettings, dict[uuid.UUID, Workflow]]:
    tenant = await TenantRepository(session, tenant_id=tenant_id).find(tenant_id)
    if tenant is None or not tenant.is_active:
        state = "unknown" if tenant is None else "inactive"
        raise TenantUnavailable(f"tenant_id: tenant {tenant_id} is {state}; batch rejected")
    found = {
        w.id: w
        for w in await WorkflowRepository(session, tenant_id=tenant_id).list_by_ids(
            prepared.workflow_ids
        )
    }
    prepared.reject_workflows({w.id: w.is_active for w in found.values()})
    return TenantSettings.model_validate(tenant.settings), found


@dataclass
class _News:
    """What one incident's workflow must hear from this batch."""

    opened: bool = False
    severity: str | None = None
    recovered: bool = False
    joined: bool = False


async def _store(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    prepared: intake.PreparedBatch,
    *,
    grouping_window: float,
) -> tuple[list[IncidentTouch], dict[uuid.UUID, _News]]:
    """Events, incidents, requests, evidence; returns the touches and, per incident that must
    hear something, what (the flags of its outbox row)."""
    events = EventRepository(session, tenant_id=tenant_id)
    inserted = await events.insert_new([a.row for a in prepared.accepted])
    stored = await events.list_payload_hashes(
        {a.row.idempotency_key for a in prepared.accepted} - set(inserted)
    )
    prepared.settle(inserted, stored)
    touches = await IncidentRepository(session, tenant_id=tenant_id).upsert_failures(
        intake.group_failures(prepared.new)
    )
    by_signature = {t.signature: t for t in touches}
    requests = RequestRepository(session, tenant_id=tenant_id)
    joined = await requests.upsert_failed(
        [
            (by_signature[f.signature].id, inserted[f.event_key], f)
            for f in intake.failed_requests(tenant_id, prepared.new)
            if by_signature[f.signature].status.is_open
        ]
    )
    recovered = await requests.apply_evidence(
        intake.evidence(prepared.new), grouping_window_seconds=grouping_window
    )
    notices: dict[uuid.UUID, _News] = {}
    for touch in touches:
        raised = (
            touch.prior_severity is not None and touch.severity.rank > touch.prior_severity.rank
        )
        if touch.opened or raised:
            notices[touch.id] = _News(
                opened=touch.opened, severity=touch.severity.value if raised else None
            )
    opened = {t.id for t in touches if t.opened}
    for incident_id in joined - opened:  # a new incident reads its requests when it analyses
        notices.setdefault(incident_id, _News()).joined = True
    for incident_id in recovered:
        notices.setdefault(incident_id, _News()).recovered = True
    return touches, notices


def _input(
    incident: Incident, workflows: dict[uuid.UUID, Workflow], params: IncidentParams
) -> IncidentInput:
    workflow = workflows.get(incident.workflow_id)
    return IncidentInput(
        tenant_id=incident.tenant_id,
        incident_id=incident.id,
        signature=incident.signature,
        workflow_id=incident.workflow_id,
        workflow_name=workflow.name if workflow else str(incident.workflow_id),
        title=incident.title,
        severity=incident.severity,
        regression_of=incident.regression_of,
        params=params,
    )
