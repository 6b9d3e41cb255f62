"""The vendor rate limit holds across worker processes: two workers, one limit."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import WorkflowEnvironment

from awfdrs.client import AwfdrsClient
from awfdrs.devstack.servers import EscalationReceiver, FlakyVendor
from awfdrs.enums import ActionStatus, IncidentStatus
from tests.support.database import ScratchDatabase
from tests.support.pipeline import Stack, retryable
from tests.support.principals import SIGNER
from tests.support.processes import WorkerProcess, worker_env

LIMIT = 3
WINDOW = 2.0


async def test_two_worker_processes_share_one_rate_limit(
    temporal_env: WorkflowEnvironment,
    database: ScratchDatabase,
    committed_sessions: async_sessionmaker[AsyncSession],
    task_queue: str,
    vendor: FlakyVendor,
    receiver: EscalationReceiver,
    tmp_path: Path,
) -> None:
    address = temporal_env.client.service_client.config.target_host
    workers = [
        WorkerProcess(worker_env(database.app_url, address, task_queue), tmp_path / f"w{n}.log")
        for n in range(2)
    ]
    await asyncio.gather(*(w.start() for w in workers))
    try:
        stack = Stack(
            client=AwfdrsClient(temporal_env.client, task_queue, signer=SIGNER),
            sessions=committed_sessions,
            vendor_url=vendor.url,
            webhook_url=f"{receiver.url}/v2/enqueue",
        )
        tenant = await stack.tenant(
            grouping_window_seconds=0.2,
            verification_window_seconds=0.2,
            action_retry_initial_seconds=0.1,
            max_deferral_seconds=120,
        )
        name = await stack.vendor(rate_limit_per_minute=LIMIT, rate_limit_window_seconds=WINDOW)
        await stack.client.ingest(
            tenant.id, [retryable(tenant, f"k-{n}", name, f"gateway_timeout_{n}") for n in range(9)]
        )
        for incident in await stack.incidents(tenant):
            await stack.wait_status(tenant, incident.id, IncidentStatus.RESOLVED, within=60)
    finally:
        for worker in workers:
            worker.stop()
    times = sorted(r.at for r in vendor.requests)
    assert len(times) == 9
    for start in times:
        inside = [t for t in times if start <= t < start + WINDOW]
        assert len(inside) <= LIMIT, f"{len(inside)} calls within {WINDOW}s from {start}"
    actions = await stack.actions(tenant)
    assert all(a.status is ActionStatus.SUCCEEDED for a in actions)
    # The waits were deferrals (no vendor call), not failed attempts.
    assert {a.attempts for a in actions} == {1}
    logs = [w.tail(2000) for w in workers]
    assert all("worker polling" in log for log in logs)
