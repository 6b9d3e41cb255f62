"""The shared state of the safety controls, against the real schema and its locks."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from awfdrs.db.repositories import (
    FuseEpisodeRepository,
    IncidentRepository,
    KillSwitchRepository,
    VendorCallRepository,
    VendorConnectionRepository,
    VendorRepository,
)
from awfdrs.db.session import tenant_session
from awfdrs.enums import GateControl, IncidentStatus, Phase
from awfdrs.errors import ConflictError
from awfdrs.remediation import rate_limit
from awfdrs.remediation.credentials import CredentialCipher
from awfdrs.vendor_connections import connect
from tests.support.factories import admin_sessions, make_incident, make_tenant


async def test_kill_switch_scope_expiry_and_release(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    tenant = await make_tenant(sessions)
    other_workflow = uuid.uuid4()
    async with tenant_session(sessions, tenant.id) as session:
        switches = KillSwitchRepository(session, tenant_id=tenant.id)
        assert await switches.find_covering(tenant.workflow_id) is None
        scoped = await switches.activate(
            switch_id=uuid.uuid4(),
            workflow_id=tenant.workflow_id,
            reason="bad deploy",
            activated_by="alice",
            expires_at=None,
        )
        again = await switches.activate(
            switch_id=scoped.id, workflow_id=None, reason="x", activated_by="y", expires_at=None
        )
        assert again.reason == "bad deploy"  # idempotent by id
        covering = await switches.find_covering(tenant.workflow_id)
        assert covering is not None
        assert covering.id == scoped.id
        assert await switches.find_covering(other_workflow) is None
        expired = await switches.activate(
            switch_id=uuid.uuid4(),
            workflow_id=None,
            reason="short",
            activated_by="bob",
            expires_at=datetime.now(UTC) - timedelta(seconds=1),
        )
        assert [s.id for s in await switches.list_active()] == [scoped.id]
        assert [s.id for s in await switches.expire_due()] == [expired.id]
        assert await switches.find_next_expiry() is None
        released = await switches.release(
            released_by="alice", reason="rolled back", workflow_id=tenant.workflow_id
        )
        assert [(s.id, s.released_by, s.release_reason) for s in released] == [
            (scoped.id, "alice", "rolled back")
        ]
        assert await switches.find_covering(tenant.workflow_id) is None


async def test_activation_waits_for_a_claim_in_flight_and_later_claims_see_it(
    committed_sessions: async_sessionmaker[AsyncSession],
) -> None:
    tenant = await make_tenant(committed_sessions)
    claim_locked = asyncio.Event()
    order: list[str] = []

    async def claim() -> None:
        async with tenant_session(committed_sessions, tenant.id) as session:
            switches = KillSwitchRepository(session, tenant_id=tenant.id)
            await switches.lock_for_enforcement()
            assert await switches.find_covering(tenant.workflow_id) is None
            claim_locked.set()
            await asyncio.sleep(0.3)  # the claim commits with the lock still held until now
            order.append("claim committed")

    async def activate() -> None:
        await claim_locked.wait()
        async with tenant_session(committed_sessions, tenant.id) as session:
            await KillSwitchRepository(session, tenant_id=tenant.id).activate(
                switch_id=uuid.uuid4(),
                workflow_id=None,
                reason="stop",
                activated_by="alice",
                expires_at=None,
            )
            order.append("activation inserted")

    await asyncio.gather(claim(), activate())
    assert order == ["claim committed", "activation inserted"]
    async with tenant_session(committed_sessions, tenant.id) as session:
        switches = KillSwitchRepository(session, tenant_id=tenant.id)
        await switches.lock_for_enforcement()
        assert await switches.find_covering(tenant.workflow_id) is not None


async def test_one_open_fuse_episode_per_tenant(sessions: async_sessionmaker[AsyncSession]) -> None:
    tenant = await make_tenant(sessions)
    now = datetime.now(UTC)
    async with tenant_session(sessions, tenant.id) as session:
        episodes = FuseEpisodeRepository(session, tenant_id=tenant.id)
        first, opened = await episodes.open(
            incident_count=5, threshold=3, window_seconds=60, now=now
        )
        second, opened_again = await episodes.open(
            incident_count=6, threshold=3, window_seconds=60, now=now
        )
        assert (opened, opened_again, second.id) == (True, False, first.id)
        # One incident claims the episode's escalation; another is told it is taken; the
        # claimer may claim again (a retried activity).
        a, b = uuid.uuid4(), uuid.uuid4()
        claimed = await episodes.claim_escalation(first.id, a)
        assert claimed is not None
        assert claimed.escalation_incident_id == a
        assert await episodes.claim_escalation(first.id, b) is None
        assert await episodes.claim_escalation(first.id, a) is not None
        assert await episodes.mark_escalated(first.id)
        assert not await episodes.mark_escalated(first.id)
        await episodes.close(first.id)
        assert await episodes.find_open() is None
        third, opened_third = await episodes.open(
            incident_count=4, threshold=3, window_seconds=60, now=now
        )
        assert opened_third
        assert third.id != first.id


async def test_held_incidents_and_the_fuse_count(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    tenant = await make_tenant(sessions)
    async with tenant_session(sessions, tenant.id) as session:
        held = await make_incident(session, tenant, "held")
        other = await make_incident(session, tenant, "other")
        incidents = IncidentRepository(session, tenant_id=tenant.id)
        assert await incidents.note_phase(held, Phase.HELD, "kill switch", GateControl.KILL_SWITCH)
        assert await incidents.note_phase(other, Phase.VERIFYING, None)
        assert await incidents.list_held() == [held]
        assert await incidents.list_held(tenant.workflow_id) == [held]
        assert await incidents.list_held(uuid.uuid4()) == []
        row = await incidents.get(held)
        assert (row.phase, row.held_by, row.phase_reason) == (
            Phase.HELD,
            GateControl.KILL_SWITCH,
            "kill switch",
        )
        assert await incidents.count_open_since(datetime.now(UTC) - timedelta(minutes=1)) == 2
        await incidents.transition(
            other, expected=[IncidentStatus.NEW], to=IncidentStatus.IGNORED,
            resolved_at=datetime.now(UTC),
        )  # fmt: skip
        assert not await incidents.note_phase(other, Phase.HELD, None)  # closed: unchanged


async def test_rate_limit_slots_are_per_connection_and_the_delay_is_exact(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    name = f"v-{uuid.uuid4().hex[:8]}"
    async with admin_sessions()() as session, session.begin():
        await VendorRepository(session).add(
            name=name,
            base_url="http://127.0.0.1:9",
            rate_limit_per_minute=2,
            rate_limit_window_seconds=10.0,
        )
    busy, quiet = await make_tenant(sessions), await make_tenant(sessions)
    cipher = CredentialCipher(None)
    for tenant in (busy, quiet):
        await connect(sessions, tenant.id, name, cipher=cipher)
    t0 = datetime.now(UTC)

    async def claim(tenant_id: uuid.UUID, at: timedelta) -> timedelta | None:
        async with tenant_session(sessions, tenant_id) as session:
            vendor = await VendorRepository(session).find_by_name(name)
            assert vendor is not None
            connection = await VendorConnectionRepository(
                session, tenant_id=tenant_id
            ).get_for_vendor(vendor.id, lock=True)
            calls = VendorCallRepository(session, tenant_id=tenant_id)
            wait = await rate_limit.claim_slot(calls, connection, t0 + at)
            if at == timedelta(seconds=11):
                rate_limit.note_retry_after(connection, t0 + at, 4)
            return wait

    assert await claim(busy.id, timedelta(0)) is None
    assert await claim(busy.id, timedelta(seconds=1)) is None
    wait = await claim(busy.id, timedelta(seconds=3))
    assert wait == timedelta(seconds=7) + rate_limit.GUARD
    # The busy tenant's full window is its own: the other tenant's first calls go at once.
    assert await claim(quiet.id, timedelta(seconds=3)) is None
    assert await claim(quiet.id, timedelta(seconds=3.5)) is None
    assert await claim(busy.id, timedelta(seconds=11)) is None  # and says Retry-After 4
    assert await claim(busy.id, timedelta(seconds=12)) == timedelta(seconds=3)
    # A vendor's Retry-After to one tenant does not hold back another's.
    assert await claim(quiet.id, timedelta(seconds=14)) is None


async def test_vendor_breaker_checks_are_enforced_by_the_database(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with admin_sessions()() as session:
        with pytest.raises(ConflictError) as caught:
            await VendorRepository(session).add(
                name="bad", base_url="http://x", failure_rate_threshold=1.5
            )
        await session.rollback()
    assert caught.value.constraint == "ck_vendors_failure_rate_threshold_in_unit_range"
