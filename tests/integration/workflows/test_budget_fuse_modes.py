"""Remediation budget, the systemic-failure fuse and the three modes, by the vendor's log."""

from __future__ import annotations

import re

from awfdrs.devstack.servers import EscalationReceiver, FlakyVendor
from awfdrs.enums import (
    ActionStatus,
    ActionType,
    GateControl,
    IncidentStatus,
    Phase,
    RequestStatus,
)
from tests.e2e.test_remediation_promises import requests_of
from tests.support.pipeline import Stack, eventually, retryable

FAST = {"grouping_window_seconds": 0.2, "verification_window_seconds": 0.3}


async def test_beyond_the_budget_incidents_escalate_instead_of_acting(
    stack: Stack, vendor: FlakyVendor, receiver: EscalationReceiver
) -> None:
    tenant = await stack.tenant(**FAST, budget_actions_per_hour=2)
    name = await stack.vendor()
    await stack.client.ingest(
        tenant.id, [retryable(tenant, f"k-{n}", name, f"gateway_timeout_{n}") for n in range(4)]
    )
    incidents = await stack.incidents(tenant)
    for incident in incidents:
        await stack.wait_snapshot(
            incident.id,
            lambda s: s.status is IncidentStatus.RESOLVED or s.phase is Phase.AWAITING_OPERATOR,
        )
    assert len(vendor.executions()) == 2
    # The budget is checked when the plan is made and again as each request is claimed: past
    # it, whichever check saw it first, the incident escalates and the request is not sent.
    stopped = []
    for incident in incidents:
        decisions = await stack.decisions(tenant, incident.id)
        if decisions[-1].decision_type is ActionType.ESCALATE:
            stopped.append(decisions[-1])
    assert len(stopped) == 2
    for decision in stopped:
        text = f"{decision.gate_reason or ''} {decision.reasoning}"
        assert "remediation budget spent: 2 requests sent" in text
        # The window as people read durations (1h, 15m), never timedelta's 1:00:00.
        assert re.search(r"sent within \d+[dhms]\b", text), text
    assert len(receiver.events()) == 2


async def test_the_fuse_stops_automation_escalates_once_and_re_arms(
    stack: Stack, vendor: FlakyVendor, receiver: EscalationReceiver
) -> None:
    tenant = await stack.tenant(
        **FAST, fuse_max_open_incidents=3, fuse_window_seconds=600, held_recheck_seconds=0.5
    )
    name = await stack.vendor()
    failures = [retryable(tenant, f"k-{n}", name, f"gateway_timeout_{n}") for n in range(5)]
    await stack.client.ingest(tenant.id, failures)
    incidents = await stack.incidents(tenant)
    for incident in incidents:
        await stack.wait_snapshot(incident.id, lambda s: s.waiting_for == "fuse")

    async def one_page() -> list[dict[str, object]] | None:
        pages = receiver.events()
        return pages if pages else None

    [page] = await eventually(one_page, 10, "the episode's escalation")
    assert str(page["dedup_key"]).startswith("awfdrs-fuse-")
    details = page["payload"]["custom_details"]  # type: ignore[index]
    assert details["incident_count"] == 5
    assert "systemic failure" in page["payload"]["summary"]  # type: ignore[index]
    for incident in incidents:
        [decision] = await stack.decisions(tenant, incident.id)
        assert decision.gate is GateControl.FUSE
    assert vendor.requests == []

    # Operators close three: two remain open, under the threshold, and the fuse re-arms: the
    # held plans go out and their incidents resolve.
    for incident in incidents[:3]:
        await stack.client.resolve(incident.id, actor="alice", reason="vendor outage over")
    for incident in incidents[3:]:
        await stack.wait_status(tenant, incident.id, IncidentStatus.RESOLVED, within=20)
    assert len(receiver.events()) == 1  # the episode's one page, nothing per incident
    assert len(vendor.executions()) == 2  # the two held plans, once each


async def test_shadow_mode_records_what_would_run_and_calls_nothing(
    stack: Stack, vendor: FlakyVendor
) -> None:
    tenant = await stack.tenant(**FAST, remediation_mode="shadow")
    name = await stack.vendor()
    summary = await stack.client.ingest(tenant.id, [retryable(tenant, "k-1", name)])
    [incident_id] = {c.incident_id for c in summary.incidents}
    snapshot = await stack.wait_snapshot(incident_id, lambda s: s.phase is Phase.AWAITING_OPERATOR)
    assert "shadow" in snapshot.details
    [action] = await stack.actions(tenant)
    assert (action.status, action.attempts, action.action_type) == (
        ActionStatus.SHADOWED,
        0,
        ActionType.RETRY,
    )
    assert action.parameters["request_count"] == 1
    [request] = await requests_of(stack, tenant, incident_id)
    assert request.status is RequestStatus.SHADOWED
    assert request.path == "/v1/charges"
    [decision] = await stack.decisions(tenant, incident_id)
    assert decision.gate is GateControl.MODE
    assert vendor.requests == []


async def test_off_mode_records_the_decision_only(stack: Stack, vendor: FlakyVendor) -> None:
    tenant = await stack.tenant(**FAST, remediation_mode="off")
    name = await stack.vendor()
    summary = await stack.client.ingest(tenant.id, [retryable(tenant, "k-1", name)])
    [incident_id] = {c.incident_id for c in summary.incidents}
    await stack.wait_snapshot(incident_id, lambda s: s.phase is Phase.AWAITING_OPERATOR)
    [decision] = await stack.decisions(tenant, incident_id)
    assert (decision.decision_type, decision.gate) == (ActionType.RETRY, GateControl.MODE)
    assert "mode of the tenant is off" in (decision.gate_reason or "")
    assert await stack.actions(tenant) == []
    assert vendor.requests == []


async def test_a_workflow_mode_overrides_the_tenants(stack: Stack, vendor: FlakyVendor) -> None:
    tenant = await stack.tenant(**FAST)  # live
    name = await stack.vendor()
    watched = await stack.workflow(tenant, "refunds", remediation_mode="shadow")
    await stack.client.ingest(
        tenant.id,
        [
            retryable(tenant, "live-1", name, path="/v1/live"),
            retryable(tenant, "shadow-1", name, workflow_id=watched, path="/v1/shadow"),
        ],
    )
    incidents = {i.workflow_id: i for i in await stack.incidents(tenant)}
    await stack.wait_status(tenant, incidents[tenant.workflow_id].id, IncidentStatus.RESOLVED)
    await stack.wait_snapshot(incidents[watched].id, lambda s: s.phase is Phase.AWAITING_OPERATOR)
    assert [r.path for r in vendor.requests] == ["/v1/live"]
    [decision] = await stack.decisions(tenant, incidents[watched].id)
    assert "mode of workflow refunds is shadow" in (decision.gate_reason or "")
