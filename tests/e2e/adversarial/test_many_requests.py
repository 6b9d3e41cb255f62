"""Requests left over after a round (more than a plan holds, or joined while it ran) are planned
by a new analysis; ``ActionRepository.outcome_counts(reanalysed=incident)`` counts the incident's
own earlier actions as "did not work", even the round that just succeeded. The confidence of the
follow-up drops under the tenant's threshold, the rest waits for an approval, and without one
they are escalated unsent.

Seen with the real cap: 450 requests, 200 sent and succeeded, then "0 of 1 earlier retries of
this signature succeeded ... confidence 0.68 is below the tenant's threshold 0.80", and after
the approval timeout "escalated to on-call (250 requests handed over)"."""

from __future__ import annotations

import asyncio

import pytest

from awfdrs.activities import incidents as incident_activities
from awfdrs.devstack.servers import FlakyVendor, Script
from awfdrs.enums import IncidentStatus, Phase
from tests.e2e.test_remediation_promises import only_incident, payment
from tests.support.pipeline import Stack, eventually


async def test_requests_beyond_the_plan_cap_are_sent_too(
    stack: Stack, vendor: FlakyVendor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(incident_activities, "MAX_PLAN_REQUESTS", 5)  # 200 in production
    tenant = await stack.tenant(approval_timeout_seconds=2, verification_window_seconds=0.3)
    name = await stack.vendor(rate_limit_per_minute=100_000)
    summary = await stack.client.ingest(
        tenant.id, [payment(tenant, f"k-{n}", name, n) for n in range(12)]
    )
    [incident_id] = {c.incident_id for c in summary.incidents}
    done = await stack.wait_snapshot(
        incident_id, lambda s: s.phase in (Phase.CLOSED, Phase.AWAITING_OPERATOR), within=40
    )
    sent = sorted(r.body["order_id"] for r in vendor.requests)
    assert sent == list(range(12)), (
        f"sent {len(sent)} of 12: {done.details}; decisions: "
        + " | ".join(
            f"{d.decision_type.value} {d.confidence:.2f} {d.gate_reason or ''}"
            for d in done.decisions
        )
    )
    assert done.status is IncidentStatus.RESOLVED


async def test_a_request_that_joins_during_a_round_is_sent_without_an_approval(
    stack: Stack, vendor: FlakyVendor
) -> None:
    vendor.script = Script(latency=1.0)
    tenant = await stack.tenant(approval_timeout_seconds=2, verification_window_seconds=0.3)
    name = await stack.vendor()
    await stack.client.ingest(tenant.id, [payment(tenant, "first", name, 1)])
    incident_id = await only_incident(stack, tenant)

    async def in_flight() -> bool | None:
        return True if vendor.arrivals >= 1 else None

    await eventually(in_flight, 15, "the first request at the vendor")
    await stack.client.ingest(tenant.id, [payment(tenant, "second", name, 2)])
    done = await stack.wait_snapshot(
        incident_id, lambda s: s.phase in (Phase.CLOSED, Phase.AWAITING_OPERATOR), within=30
    )
    await asyncio.sleep(0.2)
    sent = sorted(r.body["order_id"] for r in vendor.requests)
    assert sent == [1, 2], f"sent {sent}: {done.details}; decisions: " + " | ".join(
        f"{d.decision_type.value} {d.confidence:.2f} {d.gate_reason or ''}" for d in done.decisions
    )
