"""Transactions racing for the same rows: the database keeps them exact."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from awfdrs.db.models import Event
from awfdrs.db.repositories import (
    EventRepository,
    IncidentRepository,
    WorkflowRepository,
)
from awfdrs.db.session import tenant_session
from awfdrs.enums import IncidentStatus, Severity
from awfdrs.errors import ConflictError
from awfdrs.intake import FailureGroup
from tests.support.factories import TenantRef, make_incident, make_tenant, new_event


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
