"""The demo's stack as `make run` has it: a worker, the demo's vendor and page receiver, and
the HTTP API the demo sends its events to (shared by the tests that play the demo over HTTP)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from temporalio.client import Client

from awfdrs.api.server import serving
from awfdrs.client import AwfdrsClient
from awfdrs.config import Settings
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
