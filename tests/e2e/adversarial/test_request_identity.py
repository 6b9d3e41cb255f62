"""``request_hash`` leaves the retry headers out ("how it travels, not what it is"). Headers can
be what the request is: ``Stripe-Account`` picks the connected account a charge is made on,
a tenant header picks the customer. Two such failed requests become one row: one is retried,
the other is counted onto it and never sent, and the incident resolves."""

from __future__ import annotations

from awfdrs.devstack.servers import FlakyVendor
from awfdrs.enums import IncidentStatus
from tests.e2e.test_remediation_promises import payment
from tests.support.pipeline import Stack


def payout(tenant, key: str, vendor: str, account: str):  # type: ignore[no-untyped-def]
    body = payment(tenant, key, vendor, "payout-500", path="/v1/payouts")
    body["payload"]["retry"]["headers"] = {"Stripe-Account": account}
    return body


async def test_two_requests_that_differ_by_account_header_are_both_retried(
    stack: Stack, vendor: FlakyVendor
) -> None:
    tenant = await stack.tenant(verification_window_seconds=0.3)
    name = await stack.vendor()
    summary = await stack.client.ingest(
        tenant.id,
        [
            payout(tenant, "acct-1-fail", name, "acct_1"),
            payout(tenant, "acct-2-fail", name, "acct_2"),
        ],
    )
    [incident_id] = {c.incident_id for c in summary.incidents}
    resolved = await stack.wait_status(tenant, incident_id, IncidentStatus.RESOLVED, within=30)
    accounts = sorted(r.headers.get("stripe-account", "") for r in vendor.requests)
    rows = await stack.requests(tenant)
    assert accounts == ["acct_1", "acct_2"], (
        f"vendor received payouts for {accounts}; {len(rows)} request row(s) "
        f"(event_count {[r.event_count for r in rows]}); incident resolved: "
        f"{resolved.resolution!r}"
    )
