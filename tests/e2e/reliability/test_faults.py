"""Faults injected under load; afterwards every affected request settled, nothing lost, nothing
sent twice or after a close, no workflow failed (see support.py for how each is computed)."""

from __future__ import annotations

import asyncio
import random
import socket
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from awfdrs import intake
from awfdrs.client import AwfdrsClient
from awfdrs.contracts import IncidentInput, IncidentSnapshot, TenantSettings, incident_params
from awfdrs.db.models import Incident
from awfdrs.db.repositories import (
    EventRepository,
    IncidentRepository,
    Notice,
    OutboxRepository,
    RequestRepository,
)
from awfdrs.db.session import tenant_session
from awfdrs.devstack.servers import EscalationReceiver, FlakyVendor, Script
from awfdrs.devstack.temporal import DevServer
from awfdrs.enums import IncidentStatus, Phase, RequestStatus
from awfdrs.temporal_admin import ensure_search_attributes
from tests.e2e.reliability.conftest import FAST_VENDOR, RELIABLE
from tests.e2e.reliability.invariants import State, assert_invariants, figures, load_state, settle
from tests.e2e.reliability.support import Load, make_load, now, record, send, size
from tests.support.database import ScratchDatabase
from tests.support.factories import TenantRef
from tests.support.pipeline import Stack, eventually
from tests.support.principals import SIGNER
from tests.support.processes import WorkerFactory, WorkerProcess

# The many-request runs: each incident groups this many distinct requests at least, on average.
MANY = 20


@pytest.mark.timeout(size(600, 3600))
async def test_duplicate_storm(
    process_stack: tuple[Stack, WorkerProcess], vendor: FlakyVendor
) -> None:
    stack, _ = process_stack
    tenant = await stack.tenant(**RELIABLE)
    name = await stack.vendor(**FAST_VENDOR)
    events = size(12_000, 100_000)
    unique = int(events / 1.3)
    # A few requests per signature, each failing many times: the storm is about events.
    load = make_load(tenant, unique, vendor=name, signatures=20, failure_share=0.3,
                     redelivery_share=0.3, bodies_per_signature=3)  # fmt: skip
    clients = 8
    shares = [load.deliveries[n::clients] for n in range(clients)]
    await asyncio.gather(*(send(stack.client, load, share) for share in shares))
    state = await settle(stack.sessions, load, within=size(120, 600))
    found = await figures(stack.sessions, stack.client.temporal, load, vendor, state)
    assert found.events_in == len(load.deliveries) >= events * 0.99
    assert_invariants(found)
    described = (
        f"{found.events_in:,} deliveries ({found.distinct:,} distinct, 30% redelivered) "
        f"from {clients} concurrent clients; {found.requests:,} affected requests"
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
    signatures = size(25, 40)
    load = make_load(tenant, size(2_000, 20_000), vendor=name, signatures=signatures)
    kills = size(4, 15)
    rng = random.Random(5)
    sending = asyncio.create_task(_trickle(stack.client, load, seconds=size(10, 60)))
    killed = 0
    while killed < kills:
        await asyncio.sleep(rng.uniform(0.5, 2.5))
        worker.kill()
        killed += 1
        await worker.start()
    await sending
    state = await settle(stack.sessions, load, within=size(180, 600))
    found = await figures(stack.sessions, stack.client.temporal, load, vendor, state)
    assert_invariants(found)
    assert found.requests_per_incident >= MANY, found.requests_per_incident
    assert found.request_statuses.get(RequestStatus.SUCCEEDED.value, 0) > 0
    record(
        "worker killed repeatedly",
        f"{found.distinct:,} events over {signatures} signatures, {found.requests:,} affected "
        f"requests "
        f"({found.requests_per_incident:g} per incident), retried at a vendor answering in 200 ms",
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
            AwfdrsClient(client, task_queue, signer=SIGNER),
            sessions,
            vendor.url,
            f"{receiver.url}/v2/enqueue",
        )
        tenant = await stack.tenant(**RELIABLE)
        name = await stack.vendor(**FAST_VENDOR)
        signatures = size(15, 30)
        load = make_load(
            tenant, size(1_200, 10_000), vendor=name, signatures=signatures, permanent_share=0
        )
        sending = asyncio.create_task(_trickle(stack.client, load, seconds=size(8, 30)))
        await asyncio.sleep(size(3, 10))
        server.stop()
        await asyncio.sleep(2)
        await server.start()
        await sending
        state = await settle(sessions, load, within=size(180, 600))
        found = await figures(sessions, client, load, vendor, state)
        assert_invariants(found)
        injected = "the dev server (file-backed) stopped mid-load, restarted 2 s later"
        record(
            "Temporal restarted",
            f"{found.distinct:,} events over {signatures} signatures, {found.requests:,} affected "
            f"requests ({found.requests_per_incident:g} per incident)",
            injected,
            found,
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
    vendor.script = Script(latency=0.1)
    tenant = await stack.tenant(**RELIABLE)
    name = await stack.vendor(**FAST_VENDOR)
    signatures = size(15, 30)
    load = make_load(tenant, size(1_200, 10_000), vendor=name, signatures=signatures)
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
    state = await settle(stack.sessions, load, within=size(240, 600))
    found = await figures(stack.sessions, stack.client.temporal, load, vendor, state)
    assert_invariants(found)
    assert found.requests_per_incident >= MANY, found.requests_per_incident
    injected = (
        f"the application role refused by PostgreSQL and its connections cut for {outage} s "
        "mid-load"
    )
    record(
        "database unreachable",
        f"{found.distinct:,} events over {signatures} signatures, {found.requests:,} affected "
        f"requests "
        f"({found.requests_per_incident:g} per incident)",
        injected,
        found,
    )


@pytest.mark.timeout(size(300, 1800))
async def test_operators_close_incidents_while_their_requests_wait(
    process_stack: tuple[Stack, WorkerProcess], vendor: FlakyVendor
) -> None:
    """Half the incidents are resolved or ignored while their requests are still going out,
    paced by a small rate limit at a slow vendor: what was claimed lands, the rest is cancelled
    and never reaches the vendor; the other incidents finish their requests."""
    stack, _ = process_stack
    vendor.script = Script(latency=0.5)
    tenant = await stack.tenant(**RELIABLE)
    # At most 6 calls per 1.25 s across every incident: most requests wait for a slot.
    name = await stack.vendor(rate_limit_per_minute=6, rate_limit_window_seconds=1)
    signatures = size(6, 12)
    load = make_load(tenant, signatures * size(12, 25), vendor=name, signatures=signatures,
                     failure_share=1.0, permanent_share=0, repeat_share=0)  # fmt: skip
    await send(stack.client, load, load.deliveries)

    async def all_sending() -> State | None:
        state = await load_state(stack.sessions, tenant.id)
        requests = state.requests_of()
        sending = [
            incident_id
            for incident_id, rows in requests.items()
            if any(r.attempts for r in rows)
            and any(r.status is RequestStatus.PENDING for r in rows)
        ]
        return state if len(sending) >= signatures // 2 else None

    state = await eventually(all_sending, 60, "half the incidents to be sending")
    requests = state.requests_of()
    chosen = sorted(
        (i for i, rows in requests.items() if any(r.attempts for r in rows)),
        key=lambda i: sum(r.status is RequestStatus.PENDING for r in requests[i]),
        reverse=True,
    )[: signatures // 2]
    closes: list[Callable[..., Awaitable[IncidentSnapshot]]] = [
        stack.client.ignore if n % 3 == 2 else stack.client.resolve for n in range(len(chosen))
    ]

    async def close(
        incident_id: uuid.UUID, verb: Callable[..., Awaitable[IncidentSnapshot]]
    ) -> None:
        # One call, answered: the operator's close is never answered with an error while it
        # was in fact recorded (a workflow completing in the task that answers the update).
        snapshot = await verb(incident_id, actor="alice", reason="replayed by hand")
        load.closed[incident_id] = now()  # acknowledged: nothing new may start from here
        assert snapshot.status in (IncidentStatus.RESOLVED, IncidentStatus.IGNORED)

    await asyncio.gather(*(close(i, verb) for i, verb in zip(chosen, closes, strict=True)))
    state = await settle(stack.sessions, load, within=size(120, 600))
    found = await figures(stack.sessions, stack.client.temporal, load, vendor, state)
    assert_invariants(found)
    # The close had something to stop, and stopped it: requests cancelled, never sent.
    assert found.cancelled >= 1, found.request_statuses
    closed_rows = [r for r in state.requests if r.incident_id in load.closed]
    cancelled_keys = {r.key for r in closed_rows if r.status is RequestStatus.CANCELLED}
    assert not [c for c in vendor.requests if c.idempotency_key in cancelled_keys]
    # Each request was sent once (the vendor answers 200): "claimed before the close" is exact.
    assert all(r.attempts <= 1 for r in closed_rows)
    # The other incidents still got every request through.
    others = [r for r in state.requests if r.incident_id not in load.closed]
    assert others
    assert all(r.status is RequestStatus.SUCCEEDED for r in others)
    in_flight = sum(
        1
        for c in vendor.requests
        for r in closed_rows
        if c.idempotency_key == r.key
        and c.arrived <= load.closed[r.incident_id] < c.connected_until
    )
    record(
        "operators close mid-send",
        f"{found.requests:,} requests over {signatures} incidents at a vendor answering in "
        "500 ms, at most 6 calls per 1.25 s",
        f"{len(chosen)} incidents resolved or ignored while their requests went out "
        f"({in_flight} in flight at the close, {found.cancelled} cancelled)",
        found.as_dict(),
    )


@pytest.mark.timeout(60)
async def test_a_request_failing_in_flight_at_a_close_is_settled(
    process_stack: tuple[Stack, WorkerProcess], vendor: FlakyVendor
) -> None:
    """Resolve while the one request's attempt waits on a slow vendor that then answers 503:
    the close lets the attempt land; the request must end settled (not PENDING, not in flight)
    and never be sent again."""
    stack, _ = process_stack
    vendor.script = Script(statuses=[503], latency=2.0)
    tenant = await stack.tenant(**RELIABLE)
    name = await stack.vendor(**FAST_VENDOR)
    load = make_load(tenant, 1, vendor=name, signatures=1, failure_share=1.0, permanent_share=0)
    await send(stack.client, load, load.deliveries)

    async def in_flight() -> bool | None:
        return True if vendor.arrivals >= 1 and not vendor.requests else None

    await eventually(in_flight, 20, "the request to be in flight at the vendor")
    [incident] = await stack.incidents(tenant)
    await stack.client.resolve(incident.id, actor="alice", reason="replayed by hand")
    load.closed[incident.id] = now()
    await asyncio.sleep(3)  # the vendor answers 503 within 2 s; a retry would follow
    state = await settle(stack.sessions, load, within=5)
    found = await figures(stack.sessions, stack.client.temporal, load, vendor, state)
    assert [c.status for c in vendor.requests] == [503]  # never sent again
    assert_invariants(found)


@pytest.mark.timeout(60)
async def test_a_request_joining_as_a_round_ends_is_sent(
    process_stack: tuple[Stack, WorkerProcess], vendor: FlakyVendor
) -> None:
    """An ingest transaction inserts a second failed request of the incident while the first
    one's round is still running, and commits just after the round ended (a slow batch, or a
    busy database; here its incident row is updated last, so the round is not held up by its
    lock). The incident must not resolve before that request, too, was sent."""
    stack, _ = process_stack
    vendor.script = Script(latency=1.0)
    tenant = await stack.tenant(**{**RELIABLE, "verification_window_seconds": 2})
    name = await stack.vendor(**FAST_VENDOR)
    load = make_load(tenant, 2, vendor=name, signatures=1, failure_share=1.0, permanent_share=0,
                     repeat_share=0)  # fmt: skip
    first, second = load.unique
    await send(stack.client, load, [first])

    async def in_flight() -> bool | None:
        return True if vendor.arrivals >= 1 else None

    await eventually(in_flight, 20, "the first request to be in flight at the vendor")
    [incident] = await stack.incidents(tenant)
    async with tenant_session(stack.sessions, tenant.id) as session:
        prepared = intake.prepare(tenant.id, [second], datetime.now(UTC))
        events = EventRepository(session, tenant_id=tenant.id)
        inserted = await events.insert_new([a.row for a in prepared.accepted])
        prepared.settle(inserted, {})
        [failed] = intake.failed_requests(tenant.id, prepared.new)
        requests = RequestRepository(session, tenant_id=tenant.id)
        assert await requests.upsert_failed([(incident.id, inserted[failed.event_key], failed)])
        await stack.wait_status(tenant, incident.id, IncidentStatus.ACTIONED, within=20)
        await stack.wait_snapshot(incident.id, lambda s: s.phase is Phase.VERIFYING, within=20)
        await IncidentRepository(session, tenant_id=tenant.id).upsert_failures(
            intake.group_failures(prepared.new)
        )
        start = incident_input(incident, tenant)
        await OutboxRepository(session, tenant_id=tenant.id).add(
            [Notice(incident_id=incident.id, start=start, joined=True)],
            task_queue=stack.client.task_queue,
        )
    state = await settle(stack.sessions, load, within=20)
    found = await figures(stack.sessions, stack.client.temporal, load, vendor, state)
    assert sorted(c.body["order"] for c in vendor.requests) == sorted(
        e["payload"]["retry"]["body"]["order"] for e in load.unique
    )
    assert_invariants(found)


def incident_input(incident: Incident, tenant: TenantRef) -> dict[str, object]:
    """The start input ingest writes with a notice (unused: the workflow is running)."""
    return IncidentInput(
        tenant_id=tenant.id,
        incident_id=incident.id,
        signature=incident.signature,
        workflow_id=incident.workflow_id,
        workflow_name="payments",
        title=incident.title,
        severity=incident.severity,
        params=incident_params(TenantSettings.model_validate(RELIABLE)),
    ).model_dump(mode="json")
