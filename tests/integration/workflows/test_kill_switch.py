"""Kill switches: race-free enforcement, held-not-lost incidents, release, expiry, refusals."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from pydantic import ValidationError

from awfdrs.client import KillSwitchRefused
from awfdrs.constants import kill_switch_workflow_id
from awfdrs.contracts import IncidentSnapshot
from awfdrs.devstack.servers import FlakyVendor, Script
from awfdrs.enums import ActionStatus, GateControl, IncidentStatus
from tests.support.pipeline import Stack, eventually, retryable


async def test_activation_is_race_free_held_incidents_resume_on_release(
    stack: Stack, vendor: FlakyVendor
) -> None:
    vendor.script = Script(latency=0.05)
    tenant = await stack.tenant(grouping_window_seconds=0.3, verification_window_seconds=0.5)
    name = await stack.vendor()
    other = await stack.workflow(tenant, "refunds")
    stopped = [retryable(tenant, f"a-{n}", name, f"gateway_timeout_{n}") for n in range(12)]
    running = [
        retryable(tenant, f"b-{n}", name, f"gateway_timeout_{n}", workflow_id=other, path="/v1/r")
        for n in range(4)
    ]
    await stack.client.ingest(tenant.id, stopped + running)
    incidents = await stack.incidents(tenant)
    in_scope = {i.id for i in incidents if i.workflow_id == tenant.workflow_id}
    out_of_scope = {i.id for i in incidents if i.workflow_id == other}
    assert (len(in_scope), len(out_of_scope)) == (12, 4)
    # Activate while the incidents come out of their grouping window and start acting.
    await asyncio.sleep(0.3)
    applied = await stack.client.activate_kill_switch(
        tenant.id,
        reason="vendor double-charging",
        activated_by="alice",
        workflow_id=tenant.workflow_id,
    )
    [switch_id] = applied.switch_ids
    for incident_id in out_of_scope:
        await stack.wait_status(tenant, incident_id, IncidentStatus.RESOLVED)

    [active] = (await stack.client.kill_switches(tenant.id)).active
    assert active.switch_id == switch_id
    activated_at = active.activated_at  # inserted after taking the lock, before the commit

    actions = {a.incident_id: a for a in await stack.actions(tenant)}
    requests = await stack.requests(tenant)
    called = {request.idempotency_key for request in vendor.requests}
    held = []
    for incident_id in in_scope:
        rows = [r for r in requests if r.incident_id == incident_id]
        sent = [r.sent_at for r in rows if r.sent_at is not None]
        # A request is claimed under the switch's shared lock: whatever was claimed was claimed
        # before the activation took its lock (an action may be marked started later, its
        # requests then held one by one).
        assert all(at < activated_at for at in sent), (sent, activated_at)
        if not sent:
            held.append(incident_id)
            assert not {r.idempotency_key for r in rows} & called
    for incident_id in out_of_scope:
        assert actions[incident_id].status is ActionStatus.SUCCEEDED
    assert held, "the switch came too late to hold anything; the race was not exercised"

    def held_by_switch(snapshot: IncidentSnapshot) -> bool:
        return snapshot.phase == "held" and "held by kill switch" in snapshot.details

    for incident_id in held:
        snapshot = await stack.wait_snapshot(incident_id, held_by_switch)
        assert "vendor double-charging" in snapshot.details
    query = f'AwfdrsTenant = "{tenant.id}" AND AwfdrsHeldBy = "kill_switch"'

    async def listed() -> set[str] | None:
        found = {w.id async for w in stack.client.temporal.list_workflows(query)}
        return found if len(found) == len(held) else None

    assert await eventually(listed, 15, "held incidents in visibility") == {
        f"incident-{i}" for i in held
    }
    for incident_id in held:
        # A decision that names the switch names its activation. One analysed while the
        # activation was being committed does not name it (the gate's read does not wait for
        # that commit): its plan is held when it comes to be sent, as asserted above.
        last = (await stack.decisions(tenant, incident_id))[-1]
        if last.gate is GateControl.KILL_SWITCH:
            assert "activated by alice: vendor double-charging" in (last.gate_reason or "")

    released = await stack.client.release_kill_switch(
        tenant.id, released_by="bob", reason="vendor fixed", workflow_id=tenant.workflow_id
    )
    assert released.switch_ids == [switch_id]
    for incident_id in held:
        await stack.wait_status(tenant, incident_id, IncidentStatus.RESOLVED)
    assert (await stack.client.kill_switches(tenant.id)).active == []


async def test_a_switch_that_expires_lets_the_held_incidents_go(
    stack: Stack, vendor: FlakyVendor
) -> None:
    tenant = await stack.tenant(grouping_window_seconds=0.2, verification_window_seconds=0.3)
    name = await stack.vendor()
    await stack.client.activate_kill_switch(
        tenant.id, reason="maintenance window", activated_by="ops", duration_seconds=3
    )
    summary = await stack.client.ingest(tenant.id, [retryable(tenant, "k-1", name)])
    [incident_id] = {c.incident_id for c in summary.incidents}
    held = await stack.wait_snapshot(incident_id, lambda s: s.phase == "held")
    assert "until" in held.details
    assert vendor.requests == []
    await stack.wait_status(tenant, incident_id, IncidentStatus.RESOLVED, within=20)
    assert len(vendor.executions()) == 1
    # The plan decided under the switch is the one that ran once it expired: no second decision.
    decisions = await stack.decisions(tenant, incident_id)
    assert [d.gate for d in decisions] == [GateControl.KILL_SWITCH]
    [action] = await stack.actions(tenant)
    assert action.decision_id == decisions[0].id


async def test_missing_reason_or_actor_is_refused_with_a_clear_message(stack: Stack) -> None:
    tenant = await stack.tenant()
    with pytest.raises(ValidationError, match="reason"):
        await stack.client.activate_kill_switch(tenant.id, reason=" ", activated_by="alice")
    with pytest.raises(ValidationError, match="activated_by"):
        await stack.client.activate_kill_switch(tenant.id, reason="stop", activated_by="")
    # What the Temporal UI or CLI could send: the workflow refuses it and says why.
    await stack.client.activate_kill_switch(tenant.id, reason="ok", activated_by="alice")
    handle = stack.client.temporal.get_workflow_handle(kill_switch_workflow_id(tenant.id))
    await handle.signal("activate", {"request_id": "ui-1", "reason": "from the UI"})
    await handle.signal("release", {"request_id": "ui-2", "released_by": "  "})

    async def refused() -> list[str] | None:
        status = await stack.client.kill_switches(tenant.id)
        found = [r.message for r in status.requests if r.outcome == "refused"]
        return found if len(found) == 2 else None

    messages = await eventually(refused, 10, "both refusals")
    assert messages[0].startswith("activate refused: activated_by")
    assert messages[1].startswith("release refused: released_by")
    with pytest.raises(KillSwitchRefused, match="not a workflow of tenant"):
        await stack.client.activate_kill_switch(
            tenant.id, reason="x", activated_by="y", workflow_id=uuid.uuid4()
        )
    assert len((await stack.client.kill_switches(tenant.id)).active) == 1
