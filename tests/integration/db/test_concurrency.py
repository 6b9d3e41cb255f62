"""Transactions racing for the same rows: the database keeps them exact."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import ActivityEnvironment

from awfdrs.activities.context import tally
from awfdrs.activities.incidents import IncidentActivities
from awfdrs.analysis.rules import RulesAnalyzer
from awfdrs.contracts.incidents import CloseIncident, VerifyCommand
from awfdrs.db.models import Event, RemediationRequest
from awfdrs.db.repositories import (
    EventRepository,
    IncidentRepository,
    IncidentTouch,
    OutboxRepository,
    RequestRepository,
    WorkflowRepository,
)
from awfdrs.db.session import tenant_session
from awfdrs.enums import IncidentStatus, RequestStatus, Severity
from awfdrs.errors import ConflictError
from awfdrs.ingest_core import store_events
from awfdrs.intake import FailureGroup
from awfdrs.lifecycle.state import CloseResult, VerificationResult
from awfdrs.remediation.gate import default_gate
from tests.support.factories import TenantRef, make_incident, make_tenant, new_event
from tests.support.pipeline import retryable


async def test_only_one_of_two_concurrent_openings_succeeds(
    committed_sessions: async_sessionmaker[AsyncSession],
) -> None:
    tenant = await make_tenant(committed_sessions)
    first_inserted = asyncio.Event()

    async def first() -> uuid.UUID:
        async with tenant_session(committed_sessions, tenant.id) as session:
            incident_id = await make_incident(session, tenant, "sig-race")
            first_inserted.set()
            # Hold the transaction open while the second one runs into the unique index.
            await asyncio.sleep(0.3)
            return incident_id

    async def second() -> uuid.UUID:
        await first_inserted.wait()
        async with tenant_session(committed_sessions, tenant.id) as session:
            return await make_incident(session, tenant, "sig-race")

    results = await asyncio.gather(first(), second(), return_exceptions=True)
    winners = [r for r in results if isinstance(r, uuid.UUID)]
    losers = [r for r in results if isinstance(r, BaseException)]
    assert len(winners) == 1
    assert len(losers) == 1
    assert isinstance(losers[0], ConflictError)
    assert losers[0].constraint == "uq_incidents_open_signature"
    async with tenant_session(committed_sessions, tenant.id) as session:
        assert len(await IncidentRepository(session, tenant_id=tenant.id).list()) == 1


async def test_a_closed_incident_does_not_block_a_new_one(
    committed_sessions: async_sessionmaker[AsyncSession],
) -> None:
    tenant = await make_tenant(committed_sessions)
    async with tenant_session(committed_sessions, tenant.id) as session:
        await make_incident(
            session,
            tenant,
            "sig-again",
            status=IncidentStatus.RESOLVED,
            resolved_at=datetime.now(UTC),
        )
        await make_incident(session, tenant, "sig-again")
        incidents = IncidentRepository(session, tenant_id=tenant.id)
        assert len(await incidents.list()) == 2


def _group(tenant: TenantRef, count: int) -> FailureGroup:
    now = datetime.now(UTC)
    return FailureGroup(
        signature="sig-upsert",
        workflow_id=tenant.workflow_id,
        operation="payment",
        title="payment: timeout",
        count=count,
        first_seen_at=now,
        last_seen_at=now,
        severity=Severity.ERROR,
        correlation_id=None,
    )


async def test_concurrent_upserts_of_a_new_signature_open_one_incident_with_both_counts(
    committed_sessions: async_sessionmaker[AsyncSession],
) -> None:
    tenant = await make_tenant(committed_sessions)

    async def upsert(count: int) -> None:
        async with tenant_session(committed_sessions, tenant.id) as session:
            await IncidentRepository(session, tenant_id=tenant.id).upsert_failures(
                [_group(tenant, count)]
            )
            await asyncio.sleep(0.05)

    await asyncio.gather(*(upsert(n) for n in (1, 2, 3, 4, 5)))
    async with tenant_session(committed_sessions, tenant.id) as session:
        incidents = await IncidentRepository(session, tenant_id=tenant.id).list()
    assert [i.event_count for i in incidents] == [15]


async def test_event_counts_stay_exact_under_concurrent_overlapping_inserts(
    committed_sessions: async_sessionmaker[AsyncSession],
) -> None:
    """The counts the trigger keeps (migration 0004) equal a scan of the events: overlapping
    keys counted once, a rolled-back insert not at all, every workflow on its own."""
    tenant = await make_tenant(committed_sessions)
    async with tenant_session(committed_sessions, tenant.id) as session:
        other = (await WorkflowRepository(session, tenant_id=tenant.id).add(name="sync")).id

    async def insert(batch: int) -> None:
        async with tenant_session(committed_sessions, tenant.id) as session:
            rows = [
                new_event(tenant, f"k-{n}", workflow_id=other if n % 3 == 0 else None)
                for n in range(batch * 50, batch * 50 + 100)  # half of it overlaps the next
            ]
            await EventRepository(session, tenant_id=tenant.id).insert_new(rows)
            await asyncio.sleep(0.02)

    async def rolled_back() -> None:
        with contextlib.suppress(RuntimeError):
            async with tenant_session(committed_sessions, tenant.id) as session:
                await EventRepository(session, tenant_id=tenant.id).insert_new(
                    [new_event(tenant, f"gone-{n}") for n in range(40)]
                )
                raise RuntimeError("the transaction fails after its insert")

    await asyncio.gather(*(insert(b) for b in range(8)), rolled_back())
    async with tenant_session(committed_sessions, tenant.id) as session:
        events = EventRepository(session, tenant_id=tenant.id)
        scanned = dict(
            (
                await session.execute(
                    select(Event.workflow_id, func.count()).group_by(Event.workflow_id)
                )
            ).all()
        )
        assert sum(scanned.values()) == 450
        assert await events.count_events() == 450
        for workflow_id in (tenant.workflow_id, other):
            assert await events.count_events(workflow_id) == scanned[workflow_id]


async def test_a_failure_racing_a_close_opens_a_regression_instead_of_joining_the_closed_one(
    committed_sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Ingest waits on the incident's row while a close holds it; once the close commits, the
    failure must not be counted onto the RESOLVED incident (its requests would then wait in a
    closed incident for ever): it opens a new one."""
    tenant = await make_tenant(committed_sessions)
    async with tenant_session(committed_sessions, tenant.id) as session:
        [first] = await IncidentRepository(session, tenant_id=tenant.id).upsert_failures(
            [_group(tenant, 1)]
        )
    closing = asyncio.Event()

    async def close() -> None:
        async with tenant_session(committed_sessions, tenant.id) as session:
            closed = await IncidentRepository(session, tenant_id=tenant.id).transition(
                first.id,
                expected=[IncidentStatus.NEW],
                to=IncidentStatus.RESOLVED,
                resolved_at=datetime.now(UTC),
            )
            assert closed is not None
            closing.set()
            await asyncio.sleep(0.5)  # the upsert below now waits for this row

    async def ingest() -> list[IncidentTouch]:
        await closing.wait()
        async with tenant_session(committed_sessions, tenant.id) as session:
            return await IncidentRepository(session, tenant_id=tenant.id).upsert_failures(
                [_group(tenant, 2)]
            )

    _, [touched] = await asyncio.gather(close(), ingest())
    assert touched.id != first.id
    assert touched.opened
    async with tenant_session(committed_sessions, tenant.id) as session:
        closed = await IncidentRepository(session, tenant_id=tenant.id).get(first.id)
    assert closed.status is IncidentStatus.RESOLVED
    assert closed.event_count == 1


@pytest.mark.parametrize("closer", ["verification", "automatic close"])
async def test_a_request_joining_as_the_incident_closes_keeps_it_open(
    committed_sessions: async_sessionmaker[AsyncSession],
    undelivered_queue: str,
    monkeypatch: pytest.MonkeyPatch,
    closer: str,
) -> None:
    """The promise: an incident is never RESOLVED while one of its requests waits unsent.

    A batch has counted a new failure onto the incident and added its request, and has not
    committed; the incident closes meanwhile, by verification or by an automatic close made
    on an earlier count of its requests (every one done). Whichever commits first, the other
    must see it: the close may not go through on a count that missed the request (it once
    did, leaving two requests PENDING in a RESOLVED incident)."""
    tenant = await make_tenant(committed_sessions)
    first = await store_events(
        committed_sessions,
        tenant.id,
        [retryable(tenant, "k-1", "vendor-x")],
        task_queue=undelivered_queue,
    )
    [incident_id] = {c.incident_id for c in first.incidents}
    async with tenant_session(committed_sessions, tenant.id) as session:
        await session.execute(
            update(RemediationRequest)
            .where(RemediationRequest.incident_id == incident_id)
            .values(status=RequestStatus.SUCCEEDED, finished_at=func.now())
        )
        await IncidentRepository(session, tenant_id=tenant.id).transition(
            incident_id, expected=[IncidentStatus.NEW], to=IncidentStatus.ACTIONED
        )
    async with tenant_session(committed_sessions, tenant.id) as session:
        counted = await tally(session, tenant.id, incident_id)
    assert counted.all_done
    round_ended = datetime.now(UTC)

    written, release = asyncio.Event(), asyncio.Event()
    add = OutboxRepository.add

    async def paused_add(self: OutboxRepository, *args: Any, **kwargs: Any) -> Any:
        written.set()  # the incident is counted and the request added, not yet committed
        await release.wait()
        return await add(self, *args, **kwargs)

    monkeypatch.setattr(OutboxRepository, "add", paused_add)

    async def ingest() -> None:
        await store_events(
            committed_sessions,
            tenant.id,
            [retryable(tenant, "k-2", "vendor-x")],
            task_queue=undelivered_queue,
        )

    activities = IncidentActivities(committed_sessions, RulesAnalyzer(), default_gate())
    ref = {"tenant_id": tenant.id, "incident_id": incident_id}

    async def close() -> bool:
        """Whether the closer left the incident open."""
        await written.wait()
        if closer == "verification":
            verified: VerificationResult = await ActivityEnvironment().run(
                activities.conclude_verification,
                VerifyCommand(**ref, since=round_ended, window_seconds=0, final=True),
            )
            assert verified.new_failures == 1
            return verified.still_open
        closed: CloseResult = await ActivityEnvironment().run(
            activities.close,
            CloseIncident(
                **ref, status=IncidentStatus.RESOLVED, resolution="done", only_if=counted
            ),
        )
        assert closed.tally is not None
        assert closed.tally.pending == 1
        return closed.status.is_open and not closed.closed_now

    async def let_go() -> None:
        await written.wait()
        await asyncio.sleep(0.5)  # the closer reads, or waits for the row, meanwhile
        release.set()

    _, left_open, _ = await asyncio.gather(ingest(), close(), let_go())
    async with tenant_session(committed_sessions, tenant.id) as session:
        incident = await IncidentRepository(session, tenant_id=tenant.id).get(incident_id)
        statuses = sorted(
            r.status
            for r in await RequestRepository(session, tenant_id=tenant.id).list_for_incident(
                incident_id
            )
        )
    assert statuses == [RequestStatus.PENDING, RequestStatus.SUCCEEDED]
    assert incident.status is IncidentStatus.ACTIONED, incident.resolution
    assert left_open
