from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from awfdrs import config
from awfdrs.db import session as db_session
from awfdrs.db.repositories import VendorRepository, WorkflowRepository
from awfdrs.db.session import tenant_session
from tests.support.database import ScratchDatabase
from tests.support.factories import make_tenant


class Boom(Exception):
    pass


async def test_tenant_session_commits_on_success_and_rolls_back_on_error(
    committed_sessions: async_sessionmaker[AsyncSession],
) -> None:
    tenant = await make_tenant(committed_sessions)
    with pytest.raises(Boom):
        async with tenant_session(committed_sessions, tenant.id) as session:
            await WorkflowRepository(session, tenant_id=tenant.id).add(name="half-written")
            raise Boom
    async with tenant_session(committed_sessions, tenant.id) as session:
        workflows = WorkflowRepository(session, tenant_id=tenant.id)
        assert await workflows.find_by_name("half-written") is None
        await workflows.add(name="kept")
    async with tenant_session(committed_sessions, tenant.id) as session:
        assert await WorkflowRepository(session, tenant_id=tenant.id).find_by_name("kept")


async def test_the_tenant_does_not_outlive_its_transaction(app_engine: AsyncEngine) -> None:
    sessions = async_sessionmaker(app_engine)
    tenant_id = uuid.uuid4()
    async with sessions() as session:
        async with session.begin():
            await session.execute(
                text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(tenant_id)}
            )
        # Same connection, next transaction: the setting is gone.
        after = await session.execute(text("SELECT current_setting('app.tenant_id', true)"))
        assert after.scalar_one() in ("", None)


async def test_the_tenant_id_is_a_bound_parameter(
    committed_sessions: async_sessionmaker[AsyncSession],
) -> None:
    # A value that would break out of a formatted string is just an invalid uuid here.
    hostile = "00000000-0000-0000-0000-000000000000'); DROP TABLE events; --"
    with pytest.raises(DBAPIError, match="uuid"):
        async with tenant_session(committed_sessions, hostile) as session:  # type: ignore[arg-type]
            await session.execute(text("SELECT count(*) FROM events"))
    async with tenant_session(committed_sessions, uuid.uuid4()) as session:
        assert (await session.execute(text("SELECT count(*) FROM events"))).scalar_one() == 0


async def test_process_default_engine_is_lazy_and_closable(
    monkeypatch: pytest.MonkeyPatch, database: ScratchDatabase
) -> None:
    monkeypatch.setenv("AWFDRS_DATABASE_URL", database.app_url)
    config.get_settings.cache_clear()
    try:
        assert db_session._default_engine is None
        async with db_session.get_session() as session:
            assert await VendorRepository(session).find_by_name("none") is None
        assert db_session.get_engine() is db_session.get_engine()
        await db_session.close_db()
        assert db_session._default_engine is None
    finally:
        await db_session.close_db()
        config.get_settings.cache_clear()
