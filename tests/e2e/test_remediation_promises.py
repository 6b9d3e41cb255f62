"""The promises remediation makes, checked from the outside with the vendor's own request log.

One test per defect of issue 10, each written to fail on the code before it:

1. every failed request an incident groups is retried, and the incident resolves only then;
   a regression incident remediates its own requests;
2. a request goes out under one Idempotency-Key, whatever re-analysis or approval happens, and
   two attempts of one request are never in flight at the vendor at once;
3. an approval sends exactly the plan the operator reviewed, and the controls still apply;
4. resolve answers at once while a request waits for its vendor, and nothing is sent after it;
5. only a success that concerns a failed request is evidence for it;
6. humans are never silenced, and an undeliverable escalation never fails a workflow;
7. no loops, no wedges: bounded history while held, operator text validated;
8. one hostile event is rejected alone (tests/e2e/test_hostile_batch.py).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowUpdateFailedError

from awfdrs.constants import incident_workflow_id
from awfdrs.contracts import IncidentSnapshot
from awfdrs.db.models import RemediationRequest
from awfdrs.db.repositories import RequestRepository
from awfdrs.db.session import tenant_session
from awfdrs.devstack.servers import EscalationReceiver, FlakyVendor, Script
from awfdrs.enums import IncidentStatus, Phase, RequestStatus
from awfdrs.vendor_connections import force_vendor_open, release_vendor
from tests.support.factories import TenantRef, admin_sessions
from tests.support.pipeline import Stack, event, eventually

SLOW_VERIFY = {"verification_window_seconds": 1.0}


def payment(
    tenant: TenantRef,
    key: str,
    vendor: str,
    order: int | str,
    *,
    path: str | None = None,
    correlation_id: str | None = None,
    code: str = "gateway_timeout",
) -> dict[str, Any]:
    body = event(
        tenant,
        key,
        error={"code": code, "message": f"Gateway timeout for order {order}", "vendor": vendor},
        retry={
            "method": "POST",
            "path": path or "/v1/charges/capture",
            "body": {"order_id": order},
            "reversible": True,
        },
        order_id=order,
    )
    if correlation_id is not None:
        body["correlation_id"] = correlation_id
    return body


async def requests_of(stack: Stack, tenant: TenantRef, incident_id: uuid.UUID) -> list[Any]:
    async with tenant_session(stack.sessions, tenant.id) as session:
        rows = await RequestRepository(session, tenant_id=tenant.id).list_for_incident(incident_id)
        return list(rows)


async def only_incident(stack: Stack, tenant: TenantRef) -> uuid.UUID:
    async def one() -> uuid.UUID | None:
        found = await stack.incidents(tenant)
        return found[0].id if len(found) == 1 else None

    return await eventually(one, 10, "exactly one incident")


def sent_bodies(vendor: FlakyVendor) -> list[Any]:
    return [r.body for r in vendor.requests if not r.replayed]


# --- 1. every affected request, and only its own ---------------------------------------------


async def test_every_grouped_request_is_retried_under_its_own_key_before_resolving(
    stack: Stack, vendor: FlakyVendor
) -> None:
    vendor.script = Script(statuses=[503, 503, 503])  # each request's first try fails
    tenant = await stack.tenant(**SLOW_VERIFY)
    name = await stack.vendor()
    failures = [payment(tenant, f"pay-{n}", name, 1000 + n) for n in range(3)]
    summary = await stack.client.ingest(tenant.id, failures)
    [incident_id] = {c.incident_id for c in summary.incidents}

    resolved = await stack.wait_status(tenant, incident_id, IncidentStatus.RESOLVED)
    succeeded = [r for r in vendor.requests if 200 <= r.status < 300]
    assert sorted(r.body["order_id"] for r in succeeded) == [1000, 1001, 1002]
    keys = {r.body["order_id"]: r.idempotency_key for r in vendor.requests}
    assert len(set(keys.values())) == 3  # three requests, three keys
    for request in vendor.requests:  # every attempt of a request carried that request's key
        assert request.idempotency_key == keys[request.body["order_id"]]
    rows = await requests_of(stack, tenant, incident_id)
    assert {r.status for r in rows} == {RequestStatus.SUCCEEDED}
    assert resolved.resolution is not None
    assert "3 requests" in resolved.resolution


async def test_a_regression_incident_remediates_its_own_request_only(
    stack: Stack, vendor: FlakyVendor
) -> None:
    tenant = await stack.tenant(verification_window_seconds=0.3)
    name = await stack.vendor()
    first = await stack.client.ingest(tenant.id, [payment(tenant, "a", name, 1)])
    [first_id] = {c.incident_id for c in first.incidents}
    await stack.wait_status(tenant, first_id, IncidentStatus.RESOLVED)
    assert [r.body["order_id"] for r in vendor.requests] == [1]

    later = await stack.client.ingest(tenant.id, [payment(tenant, "b", name, 2)])
    [second] = later.incidents
    assert second.regression_of == first_id
    await stack.wait_status(tenant, second.incident_id, IncidentStatus.RESOLVED)
    assert [r.body["order_id"] for r in vendor.requests] == [1, 2]


# --- 2. one key per request, never two attempts at once ---------------------------------------


async def test_a_request_keeps_its_key_across_approvals_and_attempts_never_overlap(
    stack: Stack, vendor: FlakyVendor
) -> None:
    # The vendor answers after 6 s; an attempt may take 3 s. The old code's 10 s HTTP timeout
    # kept the first call open while Temporal started the second.
    vendor.script = Script(latency=6.0)
    tenant = await stack.tenant(
        confidence_threshold=0.95,
        action_timeout_seconds=3,
        action_max_attempts=3,
        action_retry_initial_seconds=0.5,
    )
    name = await stack.vendor()
    await stack.client.ingest(tenant.id, [payment(tenant, "k", name, 7)])
    incident_id = await only_incident(stack, tenant)
    waiting = await stack.wait_snapshot(incident_id, lambda s: s.plan is not None and
                                        s.phase is Phase.AWAITING_APPROVAL)  # fmt: skip
    assert waiting.plan is not None
    await stack.client.approve(
        incident_id, plan_id=waiting.plan.plan_id, actor="alice", reason="go"
    )

    async def three_attempts() -> bool | None:
        return True if len(vendor.requests) >= 3 else None

    await eventually(three_attempts, 60, "three attempts at the vendor")
    assert {r.idempotency_key for r in vendor.requests} == {
        (await requests_of(stack, tenant, incident_id))[0].idempotency_key
    }
    assert vendor.overlapping() == []


# --- 3. approvals bound to the plan -------------------------------------------------------


async def test_an_approval_sends_the_reviewed_plan_and_nothing_that_joined_since(
    stack: Stack, vendor: FlakyVendor
) -> None:
    tenant = await stack.tenant(confidence_threshold=0.95)
    name = await stack.vendor()
    reviewed = payment(tenant, "r", name, "REVIEWED", path="/v1/charges/ch_REVIEWED/capture")
    await stack.client.ingest(tenant.id, [reviewed])
    incident_id = await only_incident(stack, tenant)
    seen = await stack.wait_snapshot(incident_id, lambda s: s.phase is Phase.AWAITING_APPROVAL)
    assert seen.plan is not None
    assert seen.plan.request_count == 1

    newer = payment(tenant, "n", name, "NEWER", path="/v1/charges/ch_NEWER/capture")
    await stack.client.ingest(tenant.id, [newer])
    await asyncio.sleep(0.5)
    reviewed_plan = seen.plan.plan_id
    await stack.client.approve(incident_id, plan_id=reviewed_plan, actor="alice")
    # The reviewed request goes out; the newer one needs its own approval.
    then = await stack.wait_snapshot(
        incident_id,
        lambda s: (
            s.phase is Phase.AWAITING_APPROVAL
            and s.plan is not None
            and s.plan.plan_id != reviewed_plan
        ),
    )
    assert [r.path for r in vendor.requests] == ["/v1/charges/ch_REVIEWED/capture"]
    assert then.plan is not None
    assert [r.path for r in then.plan.requests] == ["/v1/charges/ch_NEWER/capture"]
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await stack.client.approve(incident_id, plan_id=reviewed_plan, actor="alice")
    assert then.plan.plan_id in str(refused.value.cause)


async def test_an_approval_waits_on_the_controls_as_they_are_when_it_lands(
    stack: Stack, vendor: FlakyVendor
) -> None:
    tenant = await stack.tenant(confidence_threshold=0.95)
    name = await stack.vendor()
    await stack.client.ingest(tenant.id, [payment(tenant, "k", name, 1)])
    incident_id = await only_incident(stack, tenant)
    seen = await stack.wait_snapshot(incident_id, lambda s: s.phase is Phase.AWAITING_APPROVAL)
    assert seen.plan is not None
    await stack.set_settings(tenant, remediation_mode="off")
    await stack.client.approve(incident_id, plan_id=seen.plan.plan_id, actor="alice")
    after = await stack.wait_snapshot(incident_id, lambda s: s.phase is Phase.AWAITING_OPERATOR)
    assert "off" in after.details
    await asyncio.sleep(0.5)
    assert vendor.requests == []
    [row] = await requests_of(stack, tenant, incident_id)
    assert row.status is RequestStatus.PENDING
    assert row.attempts == 0


# --- 4. operators can always stop --------------------------------------------------------------


async def test_resolve_answers_while_a_request_waits_for_its_vendor_and_nothing_goes_out(
    stack: Stack, vendor: FlakyVendor
) -> None:
    tenant = await stack.tenant(max_deferral_seconds=600, action_retry_initial_seconds=0.2)
    name = await stack.vendor()
    await force_vendor_open(admin_sessions(), name, by="bob", reason="maintenance")
    await stack.client.ingest(tenant.id, [payment(tenant, "k", name, 1)])
    incident_id = await only_incident(stack, tenant)
    await stack.wait_snapshot(incident_id, lambda s: s.phase is Phase.ACTING)
    await asyncio.sleep(1.0)  # deferred by the forced-open breaker

    started = time.monotonic()
    closed = await stack.client.resolve(incident_id, actor="alice", reason="replayed by hand")
    assert time.monotonic() - started < 2.0
    assert closed.status is IncidentStatus.RESOLVED
    await release_vendor(admin_sessions(), name)
    await asyncio.sleep(3.0)  # longer than the deferral's re-check (5 s max for a forced stop)
    assert vendor.requests == []
    [row] = await requests_of(stack, tenant, incident_id)
    assert row.status is RequestStatus.CANCELLED
    incident = await stack.incident(tenant, incident_id)
    assert incident.resolution == "resolved by alice: replayed by hand"


# --- 5. recovery that proves something ---------------------------------------------------------


async def test_an_unrelated_success_does_not_close_an_escalated_failure(
    stack: Stack, receiver: EscalationReceiver
) -> None:
    tenant = await stack.tenant()
    declined = event(tenant, "d-1", error={"code": "card_declined"}, order_id=1)
    declined["correlation_id"] = "order-1"
    await stack.client.ingest(tenant.id, [declined])
    incident_id = await only_incident(stack, tenant)
    await stack.wait_snapshot(incident_id, lambda s: s.phase is Phase.AWAITING_OPERATOR)

    other = event(tenant, "s-2", "payment.succeeded", order_id=2)
    other["correlation_id"] = "order-2"
    await stack.client.ingest(tenant.id, [other])
    await asyncio.sleep(1.5)
    assert (await stack.incident(tenant, incident_id)).status is IncidentStatus.ACTIONED

    own = event(tenant, "s-1", "payment.succeeded", order_id=1)
    own["correlation_id"] = "order-1"
    await stack.client.ingest(tenant.id, [own])
    recovered = await stack.wait_status(tenant, incident_id, IncidentStatus.RESOLVED, within=10)
    assert recovered.resolution is not None
    assert "succeeded again" in recovered.resolution


# --- 6. humans are never silenced -------------------------------------------------------------


async def test_a_kill_switch_stops_retries_but_not_the_escalation(
    stack: Stack, receiver: EscalationReceiver
) -> None:
    tenant = await stack.tenant()
    await stack.client.activate_kill_switch(tenant.id, reason="incident review", activated_by="a")
    await stack.client.ingest(tenant.id, [event(tenant, "d", error={"code": "card_declined"})])
    incident_id = await only_incident(stack, tenant)
    await stack.wait_snapshot(incident_id, lambda s: s.phase is Phase.AWAITING_OPERATOR)
    [page] = receiver.events()
    assert page["dedup_key"] == str(incident_id)


async def test_shadow_mode_delivers_the_escalation_marked_shadow(
    stack: Stack, receiver: EscalationReceiver
) -> None:
    tenant = await stack.tenant(remediation_mode="shadow")
    await stack.client.ingest(tenant.id, [event(tenant, "d", error={"code": "card_declined"})])
    incident_id = await only_incident(stack, tenant)
    await stack.wait_snapshot(incident_id, lambda s: s.phase is Phase.AWAITING_OPERATOR)
    [page] = receiver.events()
    assert page["payload"]["custom_details"]["shadow"] is True
    assert page["payload"]["summary"].startswith("[shadow]")


async def test_an_undeliverable_escalation_leaves_the_incident_waiting_not_failed(
    stack: Stack,
) -> None:
    tenant = await stack.tenant(escalation_webhook_url=None)
    await stack.client.ingest(tenant.id, [event(tenant, "d", error={"code": "card_declined"})])
    incident_id = await only_incident(stack, tenant)
    waiting = await stack.wait_snapshot(incident_id, lambda s: s.phase is Phase.AWAITING_OPERATOR)
    assert "not delivered" in waiting.details
    assert "escalation_webhook_url" in waiting.details
    handle = stack.client.temporal.get_workflow_handle(incident_workflow_id(incident_id))
    assert (await handle.describe()).status is WorkflowExecutionStatus.RUNNING
    incident = await stack.incident(tenant, incident_id)
    assert incident.phase is Phase.AWAITING_OPERATOR
    [row] = await requests_of(stack, tenant, incident_id)
    assert row.status is RequestStatus.HANDED_OVER


async def test_a_fuse_episode_is_escalated_once_and_no_workflow_fails_without_a_webhook(
    stack: Stack, receiver: EscalationReceiver, vendor: FlakyVendor
) -> None:
    tenant = await stack.tenant(fuse_max_open_incidents=2)
    name = await stack.vendor()
    failures = [payment(tenant, f"k-{n}", name, n, code=f"timeout_{n}") for n in range(5)]
    await stack.client.ingest(tenant.id, failures)

    async def held() -> list[Any] | None:
        found = [i for i in await stack.incidents(tenant) if i.phase is Phase.HELD]
        return found if len(found) >= 3 else None

    await eventually(held, 20, "the fuse to hold the incidents")
    await asyncio.sleep(1.0)
    pages = [e for e in receiver.events() if e["dedup_key"].startswith("awfdrs-fuse-")]
    assert len(pages) == 1

    bare = await stack.tenant(fuse_max_open_incidents=1, escalation_webhook_url=None)
    await stack.client.ingest(
        bare.id, [payment(bare, f"b-{n}", name, n, code=f"timeout_{n}") for n in range(3)]
    )
    incidents = await eventually(
        lambda: _phases(stack, bare, Phase.HELD, at_least=2), 20, "held without a webhook"
    )
    for incident in incidents:
        handle = stack.client.temporal.get_workflow_handle(incident_workflow_id(incident.id))
        assert (await handle.describe()).status is WorkflowExecutionStatus.RUNNING


async def _phases(stack: Stack, tenant: TenantRef, phase: Phase, at_least: int) -> list[Any] | None:
    found = [i for i in await stack.incidents(tenant) if i.phase is phase]
    return found if len(found) >= at_least else None


# --- 7. no loops, no wedges ------------------------------------------------------------------


async def test_a_held_incident_hearing_successes_keeps_a_small_history(
    stack: Stack, vendor: FlakyVendor
) -> None:
    tenant = await stack.tenant(held_recheck_seconds=1)
    name = await stack.vendor()
    await stack.client.activate_kill_switch(tenant.id, reason="hold", activated_by="a")
    await stack.client.ingest(tenant.id, [payment(tenant, "k", name, 1, correlation_id="o-1")])
    incident_id = await only_incident(stack, tenant)
    await stack.wait_snapshot(incident_id, lambda s: s.phase is Phase.HELD)
    handle = stack.client.temporal.get_workflow_handle(incident_workflow_id(incident_id))
    seconds = 60 if stack.soak else 15
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline:  # successes of the same operation, other orders
        ok = event(tenant, f"ok-{n}", "payment.succeeded", order_id=n + 100)
        ok["correlation_id"] = f"o-{n + 100}"
        await stack.client.ingest(tenant.id, [ok])
        n += 1
        await asyncio.sleep(0.2)
    history = await handle.fetch_history()
    assert len(history.events) < 100, len(history.events)
    assert vendor.requests == []


async def test_operator_text_with_a_nul_is_refused_and_the_incident_goes_on(
    stack: Stack,
) -> None:
    tenant = await stack.tenant()
    await stack.client.ingest(tenant.id, [event(tenant, "d", error={"code": "card_declined"})])
    incident_id = await only_incident(stack, tenant)
    await stack.wait_snapshot(incident_id, lambda s: s.phase is Phase.AWAITING_OPERATOR)
    handle = stack.client.temporal.get_workflow_handle(incident_workflow_id(incident_id))
    started = time.monotonic()
    with pytest.raises(WorkflowUpdateFailedError):
        await handle.execute_update(
            "resolve", {"actor": "alice", "reason": "bad\x00byte"}, result_type=IncidentSnapshot
        )
    assert time.monotonic() - started < 2.0
    closed = await stack.client.resolve(incident_id, actor="alice", reason="clean text")
    assert closed.status is IncidentStatus.RESOLVED


async def test_a_retry_header_http_cannot_carry_is_refused_at_ingest(stack: Stack) -> None:
    tenant = await stack.tenant()
    bad = payment(tenant, "k", "v", 1)
    bad["payload"]["retry"]["headers"] = {"X-Note": "caf\u00e9"}
    summary = await stack.client.ingest(tenant.id, [bad, payment(tenant, "ok", "v", 2)])
    [rejected, accepted] = summary.outcomes
    assert rejected.outcome.value == "rejected"
    assert rejected.reason is not None
    assert "X-Note" in rejected.reason
    assert accepted.outcome.value == "accepted"


async def test_requests_rows_name_their_keys(stack: Stack, vendor: FlakyVendor) -> None:
    """The key a request is sent with is derived from the tenant and its first failed event,
    never from an action: the same failure in two tenants gets two keys."""
    name = await stack.vendor()
    keys = []
    for _ in range(2):
        tenant = await stack.tenant()
        await stack.client.ingest(tenant.id, [payment(tenant, "same-key", name, 1)])
        incident_id = await only_incident(stack, tenant)
        await stack.wait_status(tenant, incident_id, IncidentStatus.RESOLVED)
        [row] = await requests_of(stack, tenant, incident_id)
        assert isinstance(row, RemediationRequest)
        keys.append(row.idempotency_key)
    assert len(set(keys)) == 2
    assert {r.idempotency_key for r in vendor.requests} == set(keys)
