"""Two transactions racing for the same open incident: the database lets exactly one win."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from awfdrs.db.repositories import FailureGroup, IncidentRepository
from awfdrs.db.session import tenant_session
from awfdrs.enums import IncidentStatus, Severity
from awfdrs.errors import ConflictError
from tests.support.factories import TenantRef, make_incident, make_tenant


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
