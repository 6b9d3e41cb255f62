"""Tenant isolation, enforced by row-level security whatever code connects as awfdrs_app."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from awfdrs.db.repositories import (
    EventRepository,
    IncidentRepository,
    TenantRepository,
    WorkflowRepository,
)
from awfdrs.db.session import tenant_session
from awfdrs.errors import ConflictError, NotFoundError
from tests.support.factories import TenantRef, make_incident, make_tenant, new_event

TENANT_TABLES = (
    "tenants",
    "workflows",
    "events",
    "incidents",
    "decisions",
    "actions",
    "kill_switches",
    "fuse_episodes",
    "workflow_event_counts",
)


@pytest.fixture
async def two_tenants(sessions: async_sessionmaker[AsyncSession]) -> tuple[TenantRef, TenantRef]:
    a = await make_tenant(sessions)
    b = await make_tenant(sessions)
    async with tenant_session(sessions, a.id) as session:
        await make_incident(session, a)
        await EventRepository(session, tenant_id=a.id).insert_new([new_event(a, "k-1")])
    return a, b


async def test_repositories_do_not_see_another_tenants_rows(
    sessions: async_sessionmaker[AsyncSession], two_tenants: tuple[TenantRef, TenantRef]
) -> None:
    a, b = two_tenants
    async with tenant_session(sessions, a.id) as session:
        incident_id = (await IncidentRepository(session, tenant_id=a.id).list())[0].id
    async with tenant_session(sessions, b.id) as session:
        incidents = IncidentRepository(session, tenant_id=b.id)
        assert await incidents.find(incident_id) is None
        with pytest.raises(NotFoundError):
            await incidents.get(incident_id)
        assert await incidents.list() == []
        assert await EventRepository(session, tenant_id=b.id).get_by_idempotency_key("k-1") is None
        assert await WorkflowRepository(session, tenant_id=b.id).find(a.workflow_id) is None
        assert await TenantRepository(session, tenant_id=b.id).find(a.id) is None


async def test_a_repository_built_for_the_wrong_tenant_sees_nothing(
    sessions: async_sessionmaker[AsyncSession], two_tenants: tuple[TenantRef, TenantRef]
) -> None:
    # The code asks for tenant A's rows while the transaction is set to B: RLS still hides them.
    a, b = two_tenants
    async with tenant_session(sessions, b.id) as session:
        assert await IncidentRepository(session, tenant_id=a.id).list() == []
        assert await EventRepository(session, tenant_id=a.id).count_events() == 0


@pytest.mark.parametrize("table", TENANT_TABLES)
async def test_raw_sql_as_the_app_role_sees_only_the_current_tenant(
    sessions: async_sessionmaker[AsyncSession],
    two_tenants: tuple[TenantRef, TenantRef],
    table: str,
) -> None:
    a, b = two_tenants
    column = "id" if table == "tenants" else "tenant_id"
    count = text(f"SELECT count(*) FROM {table} WHERE {column} = :tenant")  # noqa: S608
    async with tenant_session(sessions, b.id) as session:
        assert (await session.execute(count, {"tenant": a.id})).scalar_one() == 0
        # Reset to empty, as a pooled connection looks after a transaction-local setting ends.
        await session.execute(text("SELECT set_config('app.tenant_id', '', true)"))
        everything = text(f"SELECT count(*) FROM {table}")  # noqa: S608
        assert (await session.execute(everything)).scalar_one() == 0


async def test_with_no_tenant_set_nothing_is_visible(
    app_engine: AsyncEngine, committed_sessions: async_sessionmaker[AsyncSession]
) -> None:
    tenant = await make_tenant(committed_sessions)
    async with tenant_session(committed_sessions, tenant.id) as session:
        await make_incident(session, tenant)
    async with app_engine.connect() as connection:
        setting = await connection.execute(text("SELECT current_setting('app.tenant_id', true)"))
        assert setting.scalar_one() in (None, "")
        for table in TENANT_TABLES:
            rows = await connection.execute(text(f"SELECT count(*) FROM {table}"))  # noqa: S608
            assert rows.scalar_one() == 0, table


async def test_inserting_a_row_for_another_tenant_is_refused(
    sessions: async_sessionmaker[AsyncSession], two_tenants: tuple[TenantRef, TenantRef]
) -> None:
    a, b = two_tenants
    with pytest.raises(DBAPIError, match="row-level security"):
        async with tenant_session(sessions, b.id) as session:
            await session.execute(
                text("INSERT INTO workflows (tenant_id, name) VALUES (:tenant, 'smuggled')"),
                {"tenant": a.id},
            )


async def test_updating_a_row_into_another_tenant_is_refused(
    sessions: async_sessionmaker[AsyncSession], two_tenants: tuple[TenantRef, TenantRef]
) -> None:
    a, b = two_tenants
    with pytest.raises(DBAPIError, match="row-level security"):
        async with tenant_session(sessions, b.id) as session:
            await session.execute(
                text("UPDATE workflows SET tenant_id = :other WHERE tenant_id = :tenant"),
                {"other": a.id, "tenant": b.id},
            )


async def test_repository_refuses_to_stamp_another_tenant(
    sessions: async_sessionmaker[AsyncSession], two_tenants: tuple[TenantRef, TenantRef]
) -> None:
    a, b = two_tenants
    async with tenant_session(sessions, b.id) as session:
        with pytest.raises(ConflictError) as caught:
            await WorkflowRepository(session, tenant_id=b.id).add(tenant_id=a.id, name="x")
    assert caught.value.constraint == "tenant_scope"


async def test_an_event_cannot_reference_another_tenants_workflow(
    sessions: async_sessionmaker[AsyncSession], two_tenants: tuple[TenantRef, TenantRef]
) -> None:
    # Foreign-key checks do not apply RLS; the composite key (tenant_id, workflow_id) does.
    a, b = two_tenants
    with pytest.raises(ConflictError) as caught:
        async with tenant_session(sessions, b.id) as session:
            await EventRepository(session, tenant_id=b.id).insert_new(
                [new_event(b, "k-x", workflow_id=a.workflow_id)]
            )
    assert caught.value.constraint == "fk_events_tenant_id_workflow_id_workflows"
