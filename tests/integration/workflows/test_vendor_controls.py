"""Circuit breaker, forced stop, maximum deferral and Retry-After, proven by the vendor's log."""

from __future__ import annotations

import asyncio
import itertools
from datetime import timedelta

from awfdrs.db.models import VendorConnection
from awfdrs.db.repositories import VendorConnectionRepository, VendorRepository
from awfdrs.db.session import tenant_session
from awfdrs.devstack.servers import EscalationReceiver, FlakyVendor, Script
from awfdrs.enums import (
    ActionStatus,
    ActionType,
    CircuitState,
    IncidentStatus,
    Phase,
    RequestStatus,
)
from awfdrs.vendor_connections import force_vendor_open, release_vendor
from tests.support.factories import TenantRef, admin_sessions
from tests.support.pipeline import Stack, eventually, retryable

PATIENT = {
    "grouping_window_seconds": 0.2,
    "verification_window_seconds": 0.3,
    "action_retry_initial_seconds": 0.2,
    "action_max_attempts": 30,
    "max_deferral_seconds": 120,
}


async def _connection(stack: Stack, tenant: TenantRef, name: str) -> VendorConnection:
    """The tenant's connection to ``name``: where its breaker lives."""
    async with tenant_session(stack.sessions, tenant.id) as session:
        vendor = await VendorRepository(session).find_by_name(name)
        assert vendor is not None
        connections = VendorConnectionRepository(session, tenant_id=tenant.id)
        return await connections.get_for_vendor(vendor.id)


def _bursts(times: list[float], gap: float) -> list[list[float]]:
    bursts: list[list[float]] = []
    for at in sorted(times):
        if bursts and at - bursts[-1][-1] < gap:
            bursts[-1].append(at)
        else:
            bursts.append([at])
    return bursts


async def test_the_breaker_opens_blocks_probes_and_closes(
    stack: Stack, vendor: FlakyVendor
) -> None:
    vendor.script = Script(default=503)
    tenant = await stack.tenant(**PATIENT)
    name = await stack.vendor(failure_threshold=3, open_seconds=2, half_open_max_calls=2)
    await stack.client.ingest(
        tenant.id, [retryable(tenant, f"k-{n}", name, f"gateway_timeout_{n}") for n in range(4)]
    )

    async def opened() -> VendorConnection | None:
        row = await _connection(stack, tenant, name)
        return row if row.circuit_breaker_state is CircuitState.OPEN else None

    await eventually(opened, 20, "the breaker to open")
    await asyncio.sleep(5.5)  # two and a half open periods from the opening, every probe failing
    # Judged on the vendor's own clock, not on when this test saw the breaker open: the
    # breaker opened at the third failure; only a call claimed before that may follow it
    # within the open period, and after it come the probes.
    arrivals = sorted(r.at for r in vendor.requests)
    opening = arrivals[2]
    late_claims = [t for t in arrivals[3:] if t - opening < 1.9]
    assert len(late_claims) <= 1, arrivals
    bursts = _bursts([t for t in arrivals[3:] if t - opening >= 1.9], gap=1.0)
    # At most half_open_max_calls probes per half-open period; one is also right, since a probe
    # that fails re-opens the breaker before a second is claimed.
    assert all(1 <= len(b) <= 2 for b in bursts), [len(b) for b in bursts]
    assert 1 <= len(bursts) <= 3
    starts = [opening] + [b[0] for b in bursts]
    assert all(later - earlier >= 1.9 for earlier, later in itertools.pairwise(starts))

    vendor.script = Script(default=200)
    incidents = await stack.incidents(tenant)
    for incident in incidents:
        await stack.wait_status(tenant, incident.id, IncidentStatus.RESOLVED, within=30)
    assert (await _connection(stack, tenant, name)).circuit_breaker_state is CircuitState.CLOSED
    executions = vendor.executions()
    requests = await stack.requests(tenant)
    assert len(requests) == 4
    assert {executions[r.idempotency_key] for r in requests} == {1}
    assert all(r.status is RequestStatus.SUCCEEDED for r in requests)
    assert all(a.status is ActionStatus.SUCCEEDED for a in await stack.actions(tenant))


async def test_a_forced_open_vendor_receives_nothing_until_released(
    stack: Stack, vendor: FlakyVendor
) -> None:
    tenant = await stack.tenant(**PATIENT)
    name = await stack.vendor()
    await force_vendor_open(admin_sessions(), name, by="alice", reason="vendor incident INC-9")
    summary = await stack.client.ingest(tenant.id, [retryable(tenant, "k-1", name)])
    [incident_id] = {c.incident_id for c in summary.incidents}

    async def deferred() -> bool | None:
        requests = await stack.requests(tenant)
        return True if requests and requests[0].deferred_since is not None else None

    await eventually(deferred, 20, "the request to be deferred")
    await asyncio.sleep(2)
    assert vendor.requests == []
    [request] = await stack.requests(tenant)
    assert request.status is RequestStatus.PENDING
    assert request.attempts == 0
    await release_vendor(admin_sessions(), name)
    await stack.wait_status(tenant, incident_id, IncidentStatus.RESOLVED, within=30)
    assert len(vendor.executions()) == 1


async def test_a_deferral_past_the_maximum_escalates(
    stack: Stack, vendor: FlakyVendor, receiver: EscalationReceiver
) -> None:
    tenant = await stack.tenant(**{**PATIENT, "max_deferral_seconds": 1})
    name = await stack.vendor()
    await force_vendor_open(admin_sessions(), name, by="bob", reason="down for everyone")
    summary = await stack.client.ingest(tenant.id, [retryable(tenant, "k-1", name)])
    [incident_id] = {c.incident_id for c in summary.incidents}
    await stack.wait_snapshot(incident_id, lambda s: s.phase is Phase.AWAITING_OPERATOR)
    decisions = await stack.decisions(tenant, incident_id)
    assert [d.decision_type for d in decisions] == [ActionType.RETRY, ActionType.ESCALATE]
    assert "vendor stayed unavailable" in decisions[-1].reasoning
    assert "forced open by bob" in decisions[-1].reasoning
    retry, escalation = sorted(await stack.actions(tenant), key=lambda a: a.created_at)
    assert (retry.status, retry.attempts) == (ActionStatus.FAILED, 0)
    assert escalation.status is ActionStatus.SUCCEEDED
    assert vendor.requests == []
    assert len(receiver.events()) == 1
    [request] = await stack.requests(tenant)
    assert (request.status, request.attempts) == (RequestStatus.HANDED_OVER, 0)


async def test_a_429_retry_after_delays_the_next_attempt(stack: Stack, vendor: FlakyVendor) -> None:
    vendor.script = Script(statuses=[429], retry_after=2)
    tenant = await stack.tenant(**PATIENT)
    name = await stack.vendor()
    summary = await stack.client.ingest(tenant.id, [retryable(tenant, "k-1", name)])
    [incident_id] = {c.incident_id for c in summary.incidents}
    await stack.wait_status(tenant, incident_id, IncidentStatus.RESOLVED, within=30)
    first, second = vendor.requests
    assert (first.status, second.status) == (429, 200)
    assert second.at - first.at >= 2.0
    row = await _connection(stack, tenant, name)
    assert row.blocked_until is not None
    assert row.circuit_breaker_failure_count == 0  # pacing is not a failure
    assert timedelta(0) < row.blocked_until - row.created_at
