"""The API as a real process (``awfdrs api``) on the per-run database and Temporal server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import WorkflowEnvironment

from awfdrs.api.keys import Role, create_key
from awfdrs.db.session import tenant_session
from tests.support.database import ScratchDatabase
from tests.support.factories import TenantRef, make_tenant
from tests.support.processes import ApiProcess, api_env


@dataclass(frozen=True)
class Sender:
    """A tenant with a workflow and an ingest key."""

    tenant: TenantRef
    key: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


async def make_sender(
    sessions: async_sessionmaker[AsyncSession],
    settings: dict[str, Any] | None = None,
    role: Role = Role.INGEST,
) -> Sender:
    tenant = await make_tenant(sessions, settings=settings)
    key, _ = await create_key(sessions, tenant.id, role)
    return Sender(tenant, key)


async def count_events(
    sessions: async_sessionmaker[AsyncSession], tenant_id: uuid.UUID, where: str = "true"
) -> int:
    async with tenant_session(sessions, tenant_id) as session:
        result = await session.execute(text(f"SELECT count(*) FROM events WHERE {where}"))  # noqa: S608
        return int(result.scalar_one())


@pytest.fixture(scope="module")
def api_queue() -> str:
    return f"api-{uuid.uuid4()}"


@pytest.fixture(scope="module")
def api_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("api")


@pytest.fixture(scope="module")
def api_processes() -> Iterator[list[ApiProcess]]:
    started: list[ApiProcess] = []
    yield started
    for process in started:
        process.stop()


@pytest.fixture(scope="module")
async def api_url(
    database: ScratchDatabase,
    temporal_env: WorkflowEnvironment,
    api_queue: str,
    api_logs: Path,
    api_processes: list[ApiProcess],
) -> str:
    """One API process per test module (its task queue has no worker: nothing is dispatched)."""
    process = ApiProcess(
        api_env(database.app_url, temporal_env.client.service_client.config.target_host, api_queue),
        api_logs / "api.log",
    )
    api_processes.append(process)
    return await process.start()


@pytest.fixture
async def http(api_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as client:
        yield client


@pytest.fixture
async def sender(committed_sessions: async_sessionmaker[AsyncSession]) -> Sender:
    return await make_sender(committed_sessions)
