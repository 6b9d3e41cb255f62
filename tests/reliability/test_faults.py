"""Faults injected under load; afterwards, nothing lost, nothing doubled (see support.py)."""

from __future__ import annotations

import asyncio
import random
import socket
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from awfdrs.client import AwfdrsClient
from awfdrs.devstack.servers import EscalationReceiver, FlakyVendor, Script
from awfdrs.devstack.temporal import DevServer
from awfdrs.temporal_admin import ensure_search_attributes
from tests.reliability.conftest import FAST_VENDOR, RELIABLE
from tests.reliability.support import (
    Load,
    assert_invariants,
    figures,
    make_load,
    record,
    send,
    settle,
    size,
)
from tests.support.database import ScratchDatabase
from tests.support.pipeline import Stack
from tests.support.processes import WorkerFactory, WorkerProcess


@pytest.mark.timeout(size(600, 3600))
async def test_duplicate_storm(
    process_stack: tuple[Stack, WorkerProcess], vendor: FlakyVendor
) -> None:
    stack, _ = process_stack
    tenant = await stack.tenant(**RELIABLE)
    name = await stack.vendor(**FAST_VENDOR)
    events = size(20_000, 100_000)
    unique = int(events / 1.3)
    load = make_load(tenant, unique, vendor=name, signatures=20, failure_share=0.3,
                     redelivery_share=0.3)  # fmt: skip
    clients = 8
    shares = [load.deliveries[n::clients] for n in range(clients)]
    await asyncio.gather(*(send(stack.client, load, share) for share in shares))
    await settle(stack.sessions, load, within=size(120, 600))
    found = await figures(stack.sessions, load, vendor)
    assert found.events_in == len(load.deliveries) >= events * 0.99
    assert_invariants(found)
    described = (
        f"{found.events_in:,} deliveries ({found.distinct:,} distinct, 30% redelivered) "
        f"from {clients} concurrent clients"
    )
    record("duplicate storm", described, "concurrent redeliveries of the same keys", found)


@pytest.mark.timeout(size(600, 3600))
async def test_worker_killed_repeatedly(
    process_stack: tuple[Stack, WorkerProcess], vendor: FlakyVendor
) -> None:
    stack, worker = process_stack
    vendor.script = Script(latency=0.2)
    tenant = await stack.tenant(**RELIABLE)
    name = await stack.vendor(**FAST_VENDOR)
    load = make_load(tenant, size(3_000, 20_000), vendor=name, signatures=40)
    kills = size(6, 15)
    rng = random.Random(5)
    sending = asyncio.create_task(_trickle(stack.client, load, seconds=size(15, 60)))
    killed = 0
    while killed < kills:
        await asyncio.sleep(rng.uniform(0.5, 2.5))
        worker.kill()
        killed += 1
        await worker.start()
    await sending
    await settle(stack.sessions, load, within=size(180, 600))
    found = await figures(stack.sessions, load, vendor)
    assert_invariants(found)
    assert len(vendor.executions()) > 0
    record(
        "worker killed repeatedly",
        f"{found.distinct:,} events over 40 signatures, retried at a vendor answering in 200 ms",
        f"SIGKILL of the worker {killed} times at random moments, restarted each time",
        found,
    )


async def _trickle(client: AwfdrsClient, load: Load, seconds: float) -> None:
    """Send the load spread over ``seconds``, so faults land in the middle of it."""
    batches = [load.deliveries[i : i + 100] for i in range(0, len(load.deliveries), 100)]
    pause = seconds / max(1, len(batches))
    for batch in batches:
        await send(client, load, batch, batch=100)
        await asyncio.sleep(pause)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.mark.timeout(size(600, 3600))
async def test_temporal_restarted_mid_load(
    database: ScratchDatabase,
    committed_sessions: async_sessionmaker[AsyncSession],
    task_queue: str,
    vendor: FlakyVendor,
    receiver: EscalationReceiver,
    workers: tuple[list[WorkerProcess], WorkerFactory],
    tmp_path: Path,
) -> None:
    sessions = committed_sessions
    server = DevServer(port=_free_port(), ui_port=_free_port(), db_file=tmp_path / "temporal.db",
                       log_file=tmp_path / "temporal.log")  # fmt: skip
    await server.start()
    started, factory = workers
    try:
        client = await Client.connect(server.address, data_converter=pydantic_data_converter)
        await ensure_search_attributes(client)
        worker = factory(server.address)
        await worker.start()
        stack = Stack(
            AwfdrsClient(client, task_queue), sessions, vendor.url, f"{receiver.url}/v2/enqueue"
        )
        tenant = await stack.tenant(**RELIABLE)
        name = await stack.vendor(**FAST_VENDOR)
        load = make_load(tenant, size(2_000, 10_000), vendor=name, signatures=30, permanent_share=0)
        sending = asyncio.create_task(_trickle(stack.client, load, seconds=size(8, 30)))
        await asyncio.sleep(size(3, 10))
        server.stop()
        await asyncio.sleep(2)
        await server.start()
        await sending
        await settle(sessions, load, within=size(180, 600))
        found = await figures(sessions, load, vendor)
        assert_invariants(found)
        injected = "the dev server (file-backed) stopped mid-load, restarted 2 s later"
        record(
            "Temporal restarted", f"{found.distinct:,} events over 30 signatures", injected, found
        )
    finally:
        for process in started:  # before the server, so they shut down while it answers
            process.stop()
        server.stop()


@pytest.mark.timeout(size(600, 3600))
async def test_database_unreachable_mid_load(
    process_stack: tuple[Stack, WorkerProcess],
    vendor: FlakyVendor,
    owner_engine: AsyncEngine,
    database: ScratchDatabase,
) -> None:
    stack, _ = process_stack
    tenant = await stack.tenant(**RELIABLE)
    name = await stack.vendor(**FAST_VENDOR)
    load = make_load(tenant, size(2_000, 10_000), vendor=name, signatures=30)
    sending = asyncio.create_task(_trickle(stack.client, load, seconds=size(8, 30)))
    await asyncio.sleep(size(2, 8))
    outage = size(5, 20)
    async with owner_engine.connect() as connection:
        autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
        # New connections of the application role are refused; existing ones are cut.
        await autocommit.execute(text(f'ALTER DATABASE "{database.name}" CONNECTION LIMIT 0'))
        try:
            for _ in range(outage * 4):
                await autocommit.execute(
                    text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE usename = 'awfdrs_app' AND datname = current_database()")
                )  # fmt: skip
                await asyncio.sleep(0.25)
        finally:
            await autocommit.execute(text(f'ALTER DATABASE "{database.name}" CONNECTION LIMIT -1'))
    await sending
    await settle(stack.sessions, load, within=size(240, 600))
    found = await figures(stack.sessions, load, vendor)
    assert_invariants(found)
    injected = (
        f"the application role refused by PostgreSQL and its connections cut for {outage} s "
        "mid-load"
    )
    record("database unreachable", f"{found.distinct:,} events over 30 signatures", injected, found)
