"""The HTTP edge under faults: the API process SIGKILLed under load, Temporal gone mid-load.

Senders behave as the issue describes: 8 clients, each resending a request until it gets a 2xx.
Afterwards, from SQL and Temporal: every event that got a 2xx is stored exactly once, every
incident's event_count equals its distinct failures, and every incident has its workflow
within 10 s of the fault's end.
"""

from __future__ import annotations

import asyncio
import random
import socket
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError

from awfdrs.api.keys import Role, create_key
from awfdrs.constants import incident_workflow_id
from awfdrs.db.session import tenant_session
from awfdrs.devstack.servers import EscalationReceiver
from awfdrs.devstack.temporal import DevServer
from awfdrs.temporal_admin import ensure_search_attributes
from tests.e2e.reliability.conftest import RELIABLE
from tests.e2e.reliability.support import record, size
from tests.support.database import ScratchDatabase
from tests.support.factories import TenantRef, make_tenant
from tests.support.processes import ApiProcess, WorkerFactory, WorkerProcess, api_env

CLIENTS = 8
BATCH = 50
DISPATCH_WITHIN = 10.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Sent:
    """What the senders saw: the outcome of every event from its 2xx, and the resends."""

    outcomes: dict[str, str] = field(default_factory=dict)
    errors: int = 0
    requests: int = 0
    latest_2xx: float = 0.0
    latencies: list[float] = field(default_factory=list)

    def p(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def make_events(tenant: TenantRef, count: int, signatures: int, seed: int) -> list[dict[str, Any]]:
    """Failures over ``signatures`` (a third of the events) and successes of another operation."""
    rng = random.Random(seed)
    base = datetime.now(UTC) - timedelta(minutes=1)
    events = []
    for n in range(count):
        failure = n % 3 == 0
        events.append(
            {
                "workflow_id": str(tenant.workflow_id),
                "event_type": "charge.failed" if failure else "order.completed",
                "idempotency_key": f"api-{n}",
                "occurred_at": (base + timedelta(milliseconds=n)).isoformat(),
                "correlation_id": f"order-{n}",
                "payload": {"error": {"code": f"code_{rng.randrange(signatures)}"}}
                if failure
                else {"n": n},
            }
        )
    return events


async def send_all(url: str, key: str, events: list[dict[str, Any]], sent: Sent) -> None:
    """``CLIENTS`` senders, each resending a batch until it gets a 2xx (connection refused,
    reset, 5xx: all mean "again, later")."""
    batches = [events[i : i + BATCH] for i in range(0, len(events), BATCH)]
    shares = [batches[n::CLIENTS] for n in range(CLIENTS)]
    headers = {"Authorization": f"Bearer {key}"}

    async def client(share: list[list[dict[str, Any]]]) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            for batch in share:
                for attempt in range(1_000):
                    sent.requests += 1
                    called = time.monotonic()
                    try:
                        response = await http.post(
                            "/v1/events", json={"events": batch}, headers=headers
                        )
                    except httpx.TransportError:
                        response = None
                    if response is not None and response.status_code == 200:
                        for outcome in response.json()["outcomes"]:
                            sent.outcomes[outcome["idempotency_key"]] = outcome["outcome"]
                        sent.latest_2xx = time.monotonic()
                        sent.latencies.append(sent.latest_2xx - called)
                        break
                    assert response is None or response.status_code >= 500, response.text
                    sent.errors += 1
                    await asyncio.sleep(min(1.0, 0.05 * (attempt + 1)))
                else:
                    raise AssertionError("a batch never got a 2xx")

    await asyncio.gather(*(client(share) for share in shares))


async def stored_keys(sessions: async_sessionmaker[AsyncSession], tenant: TenantRef) -> list[str]:
    async with tenant_session(sessions, tenant.id) as session:
        rows = await session.execute(text("SELECT idempotency_key FROM events"))
        return [r[0] for r in rows]


async def check_counts(sessions: async_sessionmaker[AsyncSession], tenant: TenantRef) -> int:
    """event_count of every incident equals the failures stored under its signature."""
    async with tenant_session(sessions, tenant.id) as session:
        rows = await session.execute(
            text(
                "SELECT i.id, i.event_count, (SELECT count(*) FROM events e "
                "WHERE e.signature = i.signature) FROM incidents i"
            )
        )
        found = list(rows)
    mismatched = [(r[0], r[1], r[2]) for r in found if r[1] != r[2]]
    assert not mismatched, mismatched
    return len(found)


async def incidents_of(
    sessions: async_sessionmaker[AsyncSession], tenant: TenantRef
) -> list[uuid.UUID]:
    async with tenant_session(sessions, tenant.id) as session:
        return [r[0] for r in await session.execute(text("SELECT id FROM incidents"))]


async def all_dispatched(client: Client, incidents: list[uuid.UUID], within: float) -> float:
    """Seconds until every incident's workflow exists in Temporal; fails after ``within``."""
    started = time.monotonic()
    missing = set(incidents)
    while missing:
        for incident_id in list(missing):
            try:
                await client.get_workflow_handle(incident_workflow_id(incident_id)).describe()
                missing.discard(incident_id)
            except RPCError:
                pass
        if missing:
            assert time.monotonic() - started < within, (
                f"{len(missing)} incidents without a workflow"
            )
            await asyncio.sleep(0.2)
    return time.monotonic() - started


@pytest.mark.timeout(size(300, 1800))
async def test_api_killed_repeatedly_under_load(
    database: ScratchDatabase,
    committed_sessions: async_sessionmaker[AsyncSession],
    temporal_client: Client,
    task_queue: str,
    workers: tuple[list[WorkerProcess], WorkerFactory],
    receiver: EscalationReceiver,
    tmp_path: Path,
) -> None:
    address = temporal_client.service_client.config.target_host
    _, factory = workers
    worker = factory(address)
    await worker.start()
    tenant = await make_tenant(
        committed_sessions,
        settings={**RELIABLE, "escalation_webhook_url": f"{receiver.url}/v2/enqueue",
                  "ingest_events_per_second": 1_000_000},
    )  # fmt: skip
    key, _ = await create_key(committed_sessions, tenant.id, Role.INGEST)
    api = ApiProcess(
        api_env(database.app_url, address, task_queue), tmp_path / "api.log", port=free_port()
    )
    url = await api.start()
    events = make_events(tenant, size(6_000, 40_000), signatures=size(30, 100), seed=3)
    sent = Sent()
    sending = asyncio.create_task(send_all(url, key, events, sent))
    rng = random.Random(7)
    kills = 5
    last_restart = time.monotonic()
    try:
        for _ in range(kills):
            await asyncio.sleep(rng.uniform(0.3, 1.5))
            api.kill()
            await asyncio.sleep(rng.uniform(0.0, 0.5))
            await api.start()
            last_restart = time.monotonic()
        await sending
    finally:
        sending.cancel()
        api.stop()
    keys = await stored_keys(committed_sessions, tenant)
    assert len(keys) == len(set(keys)), "an event was stored twice"
    assert set(sent.outcomes) == {e["idempotency_key"] for e in events}
    assert set(keys) == set(sent.outcomes), "an event that got a 2xx is missing"
    assert set(sent.outcomes.values()) <= {"accepted", "duplicate"}
    incidents = await incidents_of(committed_sessions, tenant)
    assert incidents
    await check_counts(committed_sessions, tenant)
    waited = await all_dispatched(temporal_client, incidents, DISPATCH_WITHIN)
    since_restart = time.monotonic() - last_restart
    print(
        f"\nAPI killed {kills}x: {len(events):,} events, {sent.requests:,} requests "
        f"({sent.errors:,} failed and resent; 2xx latency p50 {sent.p(0.5):.2f} s, p99 "
        f"{sent.p(0.99):.2f} s), {len(keys):,} stored once, "
        f"{sum(v == 'duplicate' for v in sent.outcomes.values()):,} answered duplicate; "
        f"{len(incidents)} incidents, all with their workflow {waited:.1f} s after the load "
        f"ended ({since_restart:.1f} s after the last restart)"
    )
    assert worker.process is not None
    assert worker.process.poll() is None
    record(
        "HTTP edge: API killed repeatedly",
        f"{len(events):,} events (a third failures over {size(30, 100)} signatures) in "
        f"{BATCH}-event requests from {CLIENTS} clients that resend until they get a 2xx",
        f"SIGKILL of the API process {kills} times at random moments, restarted each time",
        {
            "requests": sent.requests,
            "requests refused or cut (resent)": sent.errors,
            "2xx latency p50 (s)": round(sent.p(0.5), 2),
            "2xx latency p99 (s)": round(sent.p(0.99), 2),
            "events stored": len(keys),
            "events stored twice": len(keys) - len(set(keys)),
            "events that got a 2xx and are missing": len(set(sent.outcomes) - set(keys)),
            "incidents": len(incidents),
            "seconds until every incident had its workflow (after the load)": round(waited, 1),
        },
    )


@pytest.mark.timeout(size(300, 1800))
async def test_ingest_keeps_answering_while_temporal_is_down(
    database: ScratchDatabase,
    committed_sessions: async_sessionmaker[AsyncSession],
    task_queue: str,
    workers: tuple[list[WorkerProcess], WorkerFactory],
    receiver: EscalationReceiver,
    tmp_path: Path,
) -> None:
    """The Temporal server (a file-backed dev server of this test's own) is stopped while the
    load runs: every request still gets its 2xx, the outbox grows, and once the server is back
    the worker's dispatcher starts every incident's workflow."""
    server = DevServer(port=free_port(), ui_port=free_port(), db_file=tmp_path / "temporal.db",
                       log_file=tmp_path / "temporal.log")  # fmt: skip
    await server.start()
    started, factory = workers
    api = ApiProcess(
        api_env(database.app_url, server.address, task_queue), tmp_path / "api.log", port=0
    )
    try:
        client = await Client.connect(server.address, data_converter=pydantic_data_converter)
        await ensure_search_attributes(client)
        await factory(server.address).start()
        tenant = await make_tenant(
            committed_sessions,
            settings={**RELIABLE, "escalation_webhook_url": f"{receiver.url}/v2/enqueue",
                      "ingest_events_per_second": 1_000_000},
        )  # fmt: skip
        key, _ = await create_key(committed_sessions, tenant.id, Role.INGEST)
        url = await api.start()
        events = make_events(tenant, size(3_000, 20_000), signatures=size(40, 100), seed=5)
        half = len(events) // 3
        sent = Sent()
        await send_all(url, key, events[:half], sent)
        server.stop()
        down = size(10, 30)
        stopped = time.monotonic()
        await send_all(url, key, events[half:], sent)  # Temporal is down: still 2xx
        assert sent.errors == 0, "ingest refused requests while Temporal was down"
        async with httpx.AsyncClient(base_url=url) as http:
            health = (await http.get("/healthz")).json()
        assert health["status"] == "degraded"
        assert health["postgres"]["ok"]
        assert not health["temporal"]["ok"]
        await asyncio.sleep(max(0.0, down - (time.monotonic() - stopped)))
        incidents = await incidents_of(committed_sessions, tenant)
        await server.start()
        back = time.monotonic()
        client = await Client.connect(server.address, data_converter=pydantic_data_converter)
        waited = await all_dispatched(client, incidents, within=60)
        keys = await stored_keys(committed_sessions, tenant)
        assert len(keys) == len(set(keys)) == len(events)
        await check_counts(committed_sessions, tenant)
        record(
            "HTTP edge: Temporal unavailable",
            f"{len(events):,} events (a third failures over {size(40, 100)} signatures) in "
            f"{BATCH}-event requests from {CLIENTS} clients",
            f"the Temporal dev server (file-backed) stopped for {down} s after a third of the "
            "load, then started again",
            {
                "requests": sent.requests,
                "requests refused while Temporal was down": sent.errors,
                "health while down": health["status"],
                "events stored": len(keys),
                "incidents": len(incidents),
                "seconds until every incident had its workflow (after Temporal was back)": round(
                    waited, 1
                ),
            },
        )
        print(
            f"\nTemporal down {time.monotonic() - stopped - waited:.0f} s mid-load: "
            f"{len(events):,} events, every request 2xx ({sent.requests} requests, "
            f"{sent.errors} refused); {len(incidents)} incidents, every workflow started "
            f"{waited:.1f} s after Temporal was back ({time.monotonic() - back:.1f} s)"
        )
    finally:
        api.stop()
        for process in started:
            process.stop()
        server.stop()
