"""The same request content in two incidents at once (two signatures: the sender saw it fail
with two different errors). ``request_hash`` has no signature in it, so it is one request to
the tenant and must go out once, under one key, never overlapping."""

from __future__ import annotations

from collections import Counter
from typing import Any

from awfdrs.devstack.servers import FlakyVendor, Script
from awfdrs.enums import IncidentStatus
from tests.e2e.test_remediation_promises import payment
from tests.support.pipeline import Stack


def same_capture(stack_tenant: Any, key: str, vendor: str, code: str) -> dict[str, Any]:
    # One charge (same vendor, method, path, body); the sender reports it failing twice,
    # once as a gateway timeout and once as a 503: two error codes, two signatures.
    return payment(stack_tenant, key, vendor, 4242, code=code)


async def test_one_request_in_two_incidents_of_one_batch_is_executed_once(
    stack: Stack, vendor: FlakyVendor
) -> None:
    tenant = await stack.tenant(verification_window_seconds=0.3)
    name = await stack.vendor()
    batch = [
        same_capture(tenant, "first-report", name, "gateway_timeout"),
        same_capture(tenant, "second-report", name, "service_unavailable"),
    ]
    summary = await stack.client.ingest(tenant.id, batch)
    incidents = {c.incident_id for c in summary.incidents}
    assert len(incidents) == 2  # two signatures
    for incident_id in incidents:
        await stack.wait_status(tenant, incident_id, IncidentStatus.RESOLVED, within=30)

    rows = await stack.requests(tenant)
    assert len({r.request_hash for r in rows}) == 1, "one request to the tenant"
    executed = [r for r in vendor.requests if 200 <= r.status < 300 and not r.replayed]
    # The evidence: the vendor applied the same charge once per incident, under two keys.
    assert [r.body for r in executed] == [{"order_id": 4242}], (
        f"the same charge was executed {len(executed)} times at the vendor, under keys "
        f"{sorted({r.idempotency_key or '' for r in executed})}; rows' keys: "
        f"{sorted(r.idempotency_key for r in rows)}"
    )


async def test_one_request_in_two_open_incidents_is_sent_once_and_never_overlaps(
    stack: Stack, vendor: FlakyVendor
) -> None:
    vendor.script = Script(latency=1.5)
    tenant = await stack.tenant(verification_window_seconds=0.3)
    name = await stack.vendor()
    first = await stack.client.ingest(
        tenant.id, [same_capture(tenant, "first-report", name, "gateway_timeout")]
    )
    second = await stack.client.ingest(
        tenant.id, [same_capture(tenant, "second-report", name, "service_unavailable")]
    )
    ids = {c.incident_id for c in first.incidents} | {c.incident_id for c in second.incidents}
    assert len(ids) == 2
    for incident_id in ids:
        await stack.wait_status(tenant, incident_id, IncidentStatus.RESOLVED, within=30)

    rows = await stack.requests(tenant)
    assert len({r.idempotency_key for r in rows}) == 1  # the key is shared ...
    sends = Counter(r.idempotency_key for r in vendor.requests)
    overlaps = vendor.overlapping()
    # ... but both incidents send it: a request that succeeded is sent again, and the two
    # incidents' attempts of the one request were in flight at the vendor at the same time.
    assert sends == Counter({rows[0].idempotency_key: 1}), (
        f"vendor received the one request {sum(sends.values())} times "
        f"(replayed: {[r.replayed for r in vendor.requests]})"
    )
    assert overlaps == []
