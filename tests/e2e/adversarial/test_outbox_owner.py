"""The outbox is read only through SECURITY DEFINER functions that run as the owner; row-level
security is FORCE'd on ``outbox`` for the owner too. On a managed PostgreSQL (no superuser, no
BYPASSRLS: RDS, Cloud SQL) the dispatcher claims nothing and no incident workflow ever starts.
Migration 0004 knew this for its own backfill (NO FORCE for the duration); 0005 does not."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from awfdrs.config import asyncpg_dsn
from awfdrs.db import migrate
from awfdrs.db.repositories import OutboxQueue
from awfdrs.db.session import build_engine, make_sessionmaker
from awfdrs.devstack.postgres import as_app_role, with_database
from awfdrs.ingest_core import store_events
from tests.conftest import TEST_SETTINGS
from tests.support.database import ScratchDatabase
from tests.support.factories import make_tenant
from tests.support.pipeline import retryable

OWNER = "awfdrs_review_owner"


@pytest.fixture
async def managed_database(database: ScratchDatabase) -> AsyncIterator[tuple[str, str]]:
    """A database owned by a plain role (as on a managed service), migrated by that role."""
    admin = await asyncpg.connect(asyncpg_dsn(database.admin_url))
    name = f"awfdrs_review_{secrets.token_hex(4)}"
    try:
        exists = await admin.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", OWNER)
        if not exists:
            await admin.execute(
                f"CREATE ROLE {OWNER} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE"
            )
        await admin.execute(f'CREATE DATABASE "{name}" OWNER {OWNER}')
        owner_url = with_database(database.admin_url, name).replace("postgres@", f"{OWNER}@", 1)
        await asyncio.to_thread(migrate.upgrade, owner_url)
        yield owner_url, as_app_role(owner_url)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_the_dispatcher_sees_no_notice_when_the_owner_is_not_a_superuser(
    managed_database: tuple[str, str], database: ScratchDatabase
) -> None:
    owner_url, app_url = managed_database
    engine = build_engine(app_url, TEST_SETTINGS)
    owner = build_engine(owner_url, TEST_SETTINGS)
    try:
        sessions: async_sessionmaker[AsyncSession] = make_sessionmaker(engine)
        tenant = await make_tenant(sessions, admin=make_sessionmaker(owner))
        result = await store_events(
            sessions, tenant.id, [retryable(tenant, "k", "v")], task_queue="awfdrs"
        )
        assert [c.opened for c in result.incidents] == [True]

        admin = await asyncpg.connect(
            asyncpg_dsn(with_database(database.admin_url, owner_url.rsplit("/", 1)[1]))
        )
        try:
            written = await admin.fetchval("SELECT count(*) FROM outbox")
        finally:
            await admin.close()
        async with sessions() as session, session.begin():
            claimed = await OutboxQueue(session).claim("awfdrs", 10, 60)
            depth, _ = await OutboxQueue(session).count_pending()
        assert written == 1  # the notice is there ...
        assert [str(c.incident_id) for c in claimed] == [str(result.incidents[0].incident_id)], (
            f"{written} notice written, {len(claimed)} claimed, stats say depth {depth}: the "
            "incident's workflow is never started"
        )
    finally:
        await engine.dispose()
        await owner.dispose()
