"""REFAIL_SQL compares the sender's ``occurred_at`` with our own ``finished_at`` (two clocks).
A sender whose clock runs a minute behind ours reports a request failing again after our replay
succeeded; the failure is counted onto the SUCCEEDED row and the incident verifies clean."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from awfdrs.devstack.servers import FlakyVendor
from awfdrs.enums import IncidentStatus, Phase
from tests.e2e.test_remediation_promises import only_incident, payment, requests_of
from tests.support.pipeline import Stack

SKEW = timedelta(seconds=60)  # the sender's clock is a minute behind ours


def skewed(body: dict) -> dict:  # type: ignore[type-arg]
    body["occurred_at"] = (datetime.now(UTC) - SKEW).isoformat()
    return body


async def test_a_failure_after_the_replay_from_a_slow_clock_is_a_failure_again(
    stack: Stack, vendor: FlakyVendor
) -> None:
    tenant = await stack.tenant(verification_window_seconds=4.0)
    name = await stack.vendor()
    await stack.client.ingest(tenant.id, [skewed(payment(tenant, "first", name, 1))])
    incident_id = await only_incident(stack, tenant)
    await stack.wait_snapshot(incident_id, lambda s: s.phase is Phase.VERIFYING, within=20)
    [row] = await requests_of(stack, tenant, incident_id)
    replayed_at = row.finished_at
    assert replayed_at is not None

    await asyncio.sleep(0.5)
    # The same charge fails again at the sender, after our replay succeeded (real time).
    await stack.client.ingest(tenant.id, [skewed(payment(tenant, "again", name, 1))])
    # The verification window ends: the workflow concludes one way or the other.
    await stack.wait_snapshot(incident_id, lambda s: s.phase is not Phase.VERIFYING, within=20)
    incident = await stack.incident(tenant, incident_id)
    [row] = await requests_of(stack, tenant, incident_id)
    assert row.event_count == 2  # the second failure reached the row ...
    assert incident.status is not IncidentStatus.RESOLVED, (
        f"resolved ({incident.resolution!r}) with the request {row.status.value}: its second "
        f"failure (received {row.last_received_at}, after the replay finished {replayed_at}) "
        f"was stamped {row.last_failed_at} by the sender's clock, so REFAIL_SQL skipped it"
    )
