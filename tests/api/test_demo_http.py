"""The bundled demo with its events sent over HTTP (what `make run` does): it settles the same."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from rich.console import Console
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from temporalio.client import Client

from awfdrs.api.server import serving
from awfdrs.client import AwfdrsClient
from awfdrs.config import Settings, asyncpg_dsn
from awfdrs.db.session import make_sessionmaker
from awfdrs.devstack.demo import Demo
from awfdrs.devstack.servers import EscalationReceiver, FlakyVendor
from tests.support.database import ScratchDatabase
from tests.support.pipeline import running_stack


@pytest.fixture
async def demo_stack(
    temporal_client: Client,
    committed_sessions: async_sessionmaker[AsyncSession],
    task_queue: str,
    database: ScratchDatabase,
) -> AsyncIterator[tuple[AwfdrsClient, str]]:
    settings = Settings(
        database_url=database.app_url,
        task_queue=task_queue,
        temporal_address=temporal_client.service_client.config.target_host,
    )
    with FlakyVendor() as vendor, EscalationReceiver() as receiver:
        assert isinstance(vendor, FlakyVendor)
        assert isinstance(receiver, EscalationReceiver)
        async with (
            running_stack(
                temporal_client,
                committed_sessions,
                task_queue,
                vendor,
                receiver,
                listen_dsn=asyncpg_dsn(database.app_url),
            ) as stack,
            serving(settings, "127.0.0.1", 0) as url,
        ):
            yield stack.client, url


async def test_the_demo_over_http_settles_every_incident(
    demo_stack: tuple[AwfdrsClient, str],
    committed_sessions: async_sessionmaker[AsyncSession],
    owner_engine: AsyncEngine,
) -> None:
    client, url = demo_stack
    console = Console(record=True, width=400)
    demo = Demo(
        client, committed_sessions, make_sessionmaker(owner_engine), None, console, api_url=url
    )
    try:
        assert await demo.play()
    finally:
        demo.close()
    text = console.export_text()
    assert f"API {url}" in text
    assert "ingest key" in text
    assert "2 duplicate" in text
    executed = demo.vendor.executions()
    assert len(executed) == 3
    assert set(executed.values()) == {1}
