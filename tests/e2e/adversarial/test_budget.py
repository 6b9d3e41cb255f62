"""The budget counts requests first sent in the window (``sent_at``); the claim-time check
then refuses the second attempt of a request that is already counted."""

from __future__ import annotations

from awfdrs.devstack.servers import FlakyVendor, Script
from awfdrs.enums import IncidentStatus, Phase, RequestStatus
from tests.e2e.test_remediation_promises import payment, requests_of
from tests.support.pipeline import Stack


async def test_a_retry_of_a_request_already_counted_is_not_refused_by_the_budget(
    stack: Stack, vendor: FlakyVendor
) -> None:
    vendor.script = Script(statuses=[503])  # the first attempt fails, the second would work
    tenant = await stack.tenant(budget_actions_per_hour=1, verification_window_seconds=0.3)
    name = await stack.vendor()
    summary = await stack.client.ingest(tenant.id, [payment(tenant, "k", name, 1)])
    [incident_id] = {c.incident_id for c in summary.incidents}
    snapshot = await stack.wait_snapshot(
        incident_id,
        lambda s: s.phase in (Phase.CLOSED, Phase.AWAITING_OPERATOR),
        within=30,
    )
    [row] = await requests_of(stack, tenant, incident_id)
    # One request sent in the window: within a budget of one. Its own retry adds nothing
    # to what the budget counts (sent_at is the first send), yet it is refused.
    assert [r.status for r in vendor.requests] == [503, 200], (
        f"vendor saw {[r.status for r in vendor.requests]}; request {row.status.value} "
        f"after {row.attempts} attempt(s) ({row.note}); incident: {snapshot.details}"
    )
    assert row.status is RequestStatus.SUCCEEDED
    assert snapshot.status is IncidentStatus.RESOLVED
