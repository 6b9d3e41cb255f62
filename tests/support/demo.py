"""The demo's stack as `make run` has it: a worker, the demo's vendor and page receiver, and
the HTTP API the demo sends its events to (shared by the tests that play the demo over HTTP)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from rich.console import Console
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from temporalio.client import Client

from awfdrs.api.server import serving
from awfdrs.client import AwfdrsClient
from awfdrs.config import Settings
from awfdrs.db.session import make_sessionmaker
from awfdrs.devstack.demo import Demo
from tests.support.database import ScratchDatabase
from tests.support.pipeline import Stack


@pytest.fixture
async def demo_stack(
    stack: Stack,
    temporal_client: Client,
    task_queue: str,
    database: ScratchDatabase,
) -> AsyncIterator[tuple[AwfdrsClient, str]]:
    settings = Settings(
        database_url=database.app_url,
        task_queue=task_queue,
        temporal_address=temporal_client.service_client.config.target_host,
    )
    async with serving(settings, "127.0.0.1", 0) as url:
        yield stack.client, url


async def play_demo(
    demo_stack: tuple[AwfdrsClient, str],
    committed_sessions: async_sessionmaker[AsyncSession],
    owner_engine: AsyncEngine,
    ui: str | None,
) -> tuple[Demo, str]:
    """Play the demo over the stack's HTTP API until it settles; the demo (its vendor's and
    receiver's logs stay readable) and what it printed."""
    client, url = demo_stack
    console = Console(record=True, width=400)
    demo = Demo(
        client, committed_sessions, make_sessionmaker(owner_engine), ui, console, api_url=url
    )
    try:
        assert await demo.play()
    finally:
        demo.close()
    return demo, console.export_text()
