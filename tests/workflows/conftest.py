from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from awfdrs.analysis.rules import RulesAnalyzer
from awfdrs.client import AwfdrsClient
from awfdrs.devstack.servers import EscalationReceiver, FlakyVendor
from awfdrs.worker import build_worker
from tests.support.pipeline import Stack


@pytest.fixture
def vendor() -> Iterator[FlakyVendor]:
    with FlakyVendor() as server:
        assert isinstance(server, FlakyVendor)
        yield server


@pytest.fixture
def receiver() -> Iterator[EscalationReceiver]:
    with EscalationReceiver() as server:
        assert isinstance(server, EscalationReceiver)
        yield server


@asynccontextmanager
async def running_stack(
    client: Client,
    sessions: async_sessionmaker[AsyncSession],
    task_queue: str,
    vendor: FlakyVendor,
    receiver: EscalationReceiver,
) -> AsyncIterator[Stack]:
    """An in-process worker on ``task_queue`` and the helpers to drive it."""
    async with httpx.AsyncClient() as http:
        worker = build_worker(
            client, sessions, http, task_queue=task_queue, analyzer=RulesAnalyzer()
        )
        async with worker:
            yield Stack(
                client=AwfdrsClient(client, task_queue),
                sessions=sessions,
                vendor_url=vendor.url,
                webhook_url=f"{receiver.url}/v2/enqueue",
            )


@pytest.fixture
async def stack(
    temporal_client: Client,
    committed_sessions: async_sessionmaker[AsyncSession],
    task_queue: str,
    vendor: FlakyVendor,
    receiver: EscalationReceiver,
) -> AsyncIterator[Stack]:
    async with running_stack(
        temporal_client, committed_sessions, task_queue, vendor, receiver
    ) as running:
        yield running
