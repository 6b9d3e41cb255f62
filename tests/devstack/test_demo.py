"""The bundled demo, played against the test stack: it must settle the way the README says."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from rich.console import Console
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from temporalio.client import Client

from awfdrs.client import AwfdrsClient
from awfdrs.config import asyncpg_dsn
from awfdrs.db.session import make_sessionmaker
from awfdrs.devstack.demo import Demo
from awfdrs.devstack.servers import EscalationReceiver, FlakyVendor
from tests.support.database import ScratchDatabase
from tests.support.pipeline import running_stack


@pytest.fixture
async def demo_client(
    temporal_client: Client,
    committed_sessions: async_sessionmaker[AsyncSession],
    task_queue: str,
    database: ScratchDatabase,
) -> AsyncIterator[AwfdrsClient]:
    with FlakyVendor() as vendor, EscalationReceiver() as receiver:
        assert isinstance(vendor, FlakyVendor)
        assert isinstance(receiver, EscalationReceiver)
        async with running_stack(
            temporal_client,
            committed_sessions,
            task_queue,
            vendor,
            receiver,
            listen_dsn=asyncpg_dsn(database.app_url),
        ) as stack:
            yield stack.client


async def test_the_demo_settles_every_incident(
    demo_client: AwfdrsClient,
    committed_sessions: async_sessionmaker[AsyncSession],
    owner_engine: AsyncEngine,
) -> None:
    console = Console(record=True, width=400)
    demo = Demo(demo_client, committed_sessions, make_sessionmaker(owner_engine), None, console)
    try:
        assert await demo.play()
    finally:
        demo.close()
    text = console.export_text()
    assert "2 duplicate" in text
    assert "escalation received by the webhook: [demo/invoicing]" in text
    assert "within the grouping window" in text
    # Three payments, three requests, three keys, each executed once at the vendor.
    executed = demo.vendor.executions()
    assert len(executed) == 3
    assert set(executed.values()) == {1}
    bodies = sorted(r.body["order_id"] for r in demo.vendor.requests if r.status == 200)
    assert bodies == [1000, 1001, 1002]
    assert text.count("SUCCEEDED after 2 attempt(s), Idempotency-Key awfdrs-") == 3
    assert "3 payment request(s) retried under 3 key(s), all succeeded (6 attempts in all)" in text
    assert "2 invoice.sync failure(s) escalated to on-call" in text
    assert "the inventory.sync failure recovered by itself" in text
