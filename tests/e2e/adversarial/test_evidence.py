"""Recovery evidence that outlives the request's next failure."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from awfdrs.db.session import tenant_session
from awfdrs.devstack.servers import EscalationReceiver, FlakyVendor
from awfdrs.enums import IncidentStatus, Phase, RequestStatus
from tests.e2e.test_remediation_promises import only_incident, requests_of
from tests.support.pipeline import Stack, event, eventually


def declined(tenant, key: str, order: str):  # type: ignore[no-untyped-def]
    body = event(tenant, key, error={"code": "card_declined"}, order_id=order)
    body["correlation_id"] = order
    return body


def succeeded(tenant, key: str, order: str):  # type: ignore[no-untyped-def]
    body = event(tenant, key, "payment.succeeded", order_id=order)
    body["correlation_id"] = order
    return body


async def test_a_request_that_failed_again_after_its_success_is_not_counted_proven(
    stack: Stack, receiver: EscalationReceiver
) -> None:
    tenant = await stack.tenant()
    await stack.client.ingest(
        tenant.id, [declined(tenant, "f-1", "order-1"), declined(tenant, "f-2", "order-2")]
    )
    incident_id = await only_incident(stack, tenant)
    await stack.wait_snapshot(incident_id, lambda s: s.phase is Phase.AWAITING_OPERATOR)

    # order-1 succeeds at its sender, then fails again (a later attempt, a later instant).
    await stack.client.ingest(tenant.id, [succeeded(tenant, "s-1", "order-1")])

    async def recovered() -> bool | None:
        rows = await requests_of(stack, tenant, incident_id)
        return True if any(r.status is RequestStatus.RECOVERED for r in rows) else None

    await eventually(recovered, 10, "order-1 recovered")
    await asyncio.sleep(0.2)
    await stack.client.ingest(tenant.id, [declined(tenant, "f-1-again", "order-1")])
    await asyncio.sleep(1.5)
    # Then order-2 (another request) succeeds: nothing about order-1.
    await stack.client.ingest(tenant.id, [succeeded(tenant, "s-2", "order-2")])
    await asyncio.sleep(2.5)

    rows = {r.correlation_ids[0]: r for r in await requests_of(stack, tenant, incident_id)}
    again = rows["order-1"]
    # its latest word is a failure: the earlier evidence no longer counts
    assert again.evidence_at is None or again.last_failed_at > again.evidence_at
    incident = await stack.incident(tenant, incident_id)
    assert incident.status is IncidentStatus.ACTIONED, (
        f"closed {incident.status.value} ({incident.resolution!r}) although order-1 failed again "
        f"after its success (status {again.status.value}, evidence_at {again.evidence_at}, "
        f"last_failed_at {again.last_failed_at})"
    )


async def test_an_uncorrelated_success_long_after_the_window_does_not_prove_a_late_incident(
    temporal_client: Client,
    committed_sessions: async_sessionmaker[AsyncSession],
    vendor: FlakyVendor,
    receiver: EscalationReceiver,
) -> None:
    """EVIDENCE_SQL takes "inside the grouping window" to mean ``incidents.phase =
    'grouping'``: the column's default until the workflow analyses. While the workflow has
    not started (Temporal down: the outbox waits), every uncorrelated success of the
    operation, however late, is evidence, and the workflow then closes the incident as a
    transient blip."""
    import uuid as _uuid

    from awfdrs.ingest_core import store_events
    from tests.support.factories import make_tenant
    from tests.support.pipeline import FAST_SETTINGS, running_stack

    queue = f"review-late-{_uuid.uuid4()}"
    tenant = await make_tenant(committed_sessions, settings=dict(FAST_SETTINGS))
    failed = event(tenant, "f", error={"code": "card_declined"}, order_id=1)
    result = await store_events(committed_sessions, tenant.id, [failed], task_queue=queue)
    [incident_id] = [c.incident_id for c in result.incidents]

    await asyncio.sleep(3.0)  # six grouping windows: Temporal is unreachable meanwhile
    other = event(tenant, "s", "payment.succeeded", order_id=2)  # another order, no trace id
    await store_events(committed_sessions, tenant.id, [other], task_queue=queue)

    async with running_stack(temporal_client, committed_sessions, queue, vendor, receiver) as s:
        closed = await s.wait_status(
            tenant, incident_id, IncidentStatus.RESOLVED, IncidentStatus.ACTIONED, within=20
        )
        [row] = await requests_of(s, tenant, incident_id)
    assert closed.status is not IncidentStatus.RESOLVED, (
        f"resolved as {closed.resolution!r}: a success of another order 3 s after the failure "
        f"(window 0.5 s) marked the failed request {row.status.value} ({row.note})"
    )


async def test_a_success_applied_over_a_concurrent_later_failure_does_not_mark_it_recovered(
    committed_sessions: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
    undelivered_queue: str,
) -> None:
    """EVIDENCE_SQL picks its rows in a CTE (``s.occurred_at >= r.last_failed_at`` evaluated on
    the statement's snapshot) and updates them ``WHERE r.id = hit.id``. When a concurrent ingest
    holds the row with a later failure, the UPDATE waits, and PostgreSQL re-checks only the
    WHERE clause on the new row version: the success, older than that failure, still marks the
    request RECOVERED."""
    from datetime import UTC, datetime, timedelta

    from awfdrs.db.repositories import RequestRepository
    from awfdrs.ingest_core import store_events
    from tests.support.factories import make_tenant

    queue = undelivered_queue
    tenant = await make_tenant(committed_sessions)
    t1 = datetime.now(UTC) - timedelta(minutes=3)
    first = event(tenant, "f1", error={"code": "card_declined"}, occurred_at=t1)
    first["correlation_id"] = "order-1"
    result = await store_events(committed_sessions, tenant.id, [first], task_queue=queue)
    [incident_id] = [c.incident_id for c in result.incidents]

    success_starting = asyncio.Event()
    original = RequestRepository.apply_evidence

    async def staged(self, successes, **kw):  # type: ignore[no-untyped-def]
        if successes:  # batch A: the success; its UPDATE will wait on B's row lock
            success_starting.set()
        else:  # batch B: the later failure holds the row; commit once A's UPDATE is waiting
            # When both connections share an events-counter stripe (pid % 16, migration 0004),
            # A waits for B's commit before it gets here: B goes on after the timeout, and the
            # interleaving is simply not staged that time.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(success_starting.wait(), 3)
            await asyncio.sleep(0.5)
        return await original(self, successes, **kw)

    monkeypatch.setattr(RequestRepository, "apply_evidence", staged)
    ok = event(tenant, "s1", "payment.succeeded", occurred_at=t1 + timedelta(minutes=1))
    ok["correlation_id"] = "order-1"
    again = event(
        tenant, "f2", error={"code": "card_declined"}, occurred_at=t1 + timedelta(minutes=2)
    )
    again["correlation_id"] = "order-1"

    async def batch_a() -> None:
        await asyncio.sleep(0.3)  # B upserts (and locks the row) first
        await store_events(committed_sessions, tenant.id, [ok], task_queue=queue)

    await asyncio.gather(
        store_events(committed_sessions, tenant.id, [again], task_queue=queue), batch_a()
    )
    async with tenant_session(committed_sessions, tenant.id) as session:
        [row] = await RequestRepository(session, tenant_id=tenant.id).list_for_incident(incident_id)
    assert row.evidence_at is None or row.last_failed_at > row.evidence_at
    assert row.status is not RequestStatus.RECOVERED, (
        f"{row.status.value}: the success of {row.evidence_at} proves a request whose last "
        f"failure is {row.last_failed_at}"
    )
