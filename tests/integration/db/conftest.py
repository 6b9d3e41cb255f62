"""A tenant of the test's own and one transaction as that tenant, rolled back with the test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from awfdrs.db.session import tenant_session
from tests.support.factories import TenantRef, make_tenant


@pytest.fixture
async def tenant(sessions: async_sessionmaker[AsyncSession]) -> TenantRef:
    return await make_tenant(sessions)


@pytest.fixture
async def session(
    sessions: async_sessionmaker[AsyncSession], tenant: TenantRef
) -> AsyncIterator[AsyncSession]:
    async with tenant_session(sessions, tenant.id) as session:
        yield session
