"""Versioning: recorded histories of this release replay on the code of every later one.

``tests/e2e/histories/`` holds histories captured from real runs of this release, one per phase
and outcome of the incident lifecycle (running ones included: they are what a deploy meets),
plus ``IngestEvents`` and ``KillSwitchWorkflow``. CI replays every one of them through the
sandboxed runner, so a change that would break an incident in flight fails here first. The
policy (docs/VERSIONING.md): change workflow code compatibly, behind ``workflow.patched()``, and
record the new histories with ``make histories`` when a release adds behaviour.

Recording is a test too, skipped unless ``AWFDRS_RECORD_HISTORIES=1`` (``make histories``).
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowHandle, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from awfdrs.client import AwfdrsClient
from awfdrs.constants import incident_workflow_id, kill_switch_workflow_id
from awfdrs.devstack.servers import EscalationReceiver, FlakyVendor, Script
from awfdrs.enums import IncidentStatus, Phase
from awfdrs.vendor_connections import force_vendor_open
from awfdrs.workflows.incident import IncidentWorkflow
from awfdrs.workflows.ingest import IngestEventsWorkflow
from awfdrs.workflows.kill_switch import KillSwitchWorkflow
from tests.e2e.test_remediation_promises import only_incident, payment
from tests.support.factories import TenantRef, admin_sessions
from tests.support.pipeline import Stack, event

HISTORIES = Path(__file__).parent / "histories"
# Each release's recordings stay in their own folder while its incidents may still run; a
# recording goes to the current one.
CURRENT = HISTORIES / "0.3"
# One per phase and outcome; a release may add names, never drop them while its incidents
# may still run.
EXPECTED = {
    "incident-resolved-after-retry",
    "incident-transient-blip",
    "incident-approved-then-resolved",
    "incident-rejected-escalated-resolved",
    "incident-held-released-resolved",
    "incident-undeliverable-escalation-ignored",
    "incident-shadow-resolved",
    "incident-failed-for-good-escalated",
    "incident-running-awaiting-approval",
    "incident-running-held",
    "incident-running-verifying",
    "incident-running-deferred",
    "ingest-events",
    "kill-switch",
}
# What 0.3 (issue 12) added: the two-person rule and a stop at the Temporal door.
ADDED = {"incident-two-person-approved", "incident-stopped-at-the-temporal-door"}
RECORDED = sorted(str(p.relative_to(HISTORIES)) for p in HISTORIES.rglob("*.json"))
RECORD = os.environ.get("AWFDRS_RECORD_HISTORIES") == "1"


def _workflows() -> list[type]:
    return [IngestEventsWorkflow, IncidentWorkflow, KillSwitchWorkflow]


async def test_the_corpus_covers_every_phase_and_outcome() -> None:
    older = {p.stem for p in (HISTORIES / "0.2").glob("*.json")}
    assert older >= EXPECTED, f"missing from 0.2: {sorted(EXPECTED - older)}"
    found = {p.stem for p in CURRENT.glob("*.json")}
    assert found >= EXPECTED | ADDED, f"missing: {sorted((EXPECTED | ADDED) - found)}"


@pytest.mark.parametrize("name", RECORDED)
async def test_a_recorded_history_replays(name: str) -> None:
    path = HISTORIES / name
    recorded = json.loads(path.read_text())
    history = WorkflowHistory.from_json(recorded["workflow_id"], recorded["history"])
    replayer = Replayer(
        workflows=_workflows(),
        data_converter=pydantic_data_converter,
        workflow_runner=SandboxedWorkflowRunner(),
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{name}: {result.replay_failure}"


# --- recording (make histories) -----------------------------------------------------------------


async def _save(name: str, handle: WorkflowHandle[Any, Any]) -> None:
    history = await handle.fetch_history()
    CURRENT.mkdir(parents=True, exist_ok=True)
    (CURRENT / f"{name}.json").write_text(
        json.dumps({"workflow_id": handle.id, "history": json.loads(history.to_json())}, indent=1)
        + "\n"
    )


async def _incident(stack: Stack, tenant: TenantRef, events: list[dict[str, Any]]) -> uuid.UUID:
    await stack.client.ingest(tenant.id, events)
    return await only_incident(stack, tenant)


@pytest.mark.skipif(not RECORD, reason="recording only: AWFDRS_RECORD_HISTORIES=1 (make histories)")
async def test_record_the_corpus(
    stack: Stack, vendor: FlakyVendor, receiver: EscalationReceiver
) -> None:
    name = await stack.vendor()
    handle = stack.client.temporal.get_workflow_handle

    async def save_incident(label: str, incident_id: uuid.UUID) -> None:
        await _save(label, handle(incident_workflow_id(incident_id)))

    # Resolved after a retry that met one 503.
    vendor.script = Script(per_key=[503])
    tenant = await stack.tenant()
    i = await _incident(stack, tenant, [payment(tenant, "a", name, 1)])
    await stack.wait_status(tenant, i, IncidentStatus.RESOLVED)
    await save_incident("incident-resolved-after-retry", i)
    vendor.script = Script()

    # A blip recovered inside the grouping window.
    tenant = await stack.tenant(grouping_window_seconds=2)
    i = await _incident(stack, tenant, [event(tenant, "b", error={"code": "timeout"})])
    await stack.client.ingest(tenant.id, [event(tenant, "b-ok", "payment.succeeded")])
    await stack.wait_status(tenant, i, IncidentStatus.RESOLVED)
    await save_incident("incident-transient-blip", i)

    # Approved, then resolved.
    tenant = await stack.tenant(confidence_threshold=0.95)
    i = await _incident(stack, tenant, [payment(tenant, "c", name, 3)])
    held = await stack.wait_snapshot(i, lambda s: s.phase is Phase.AWAITING_APPROVAL)
    assert held.plan is not None
    await stack.client.approve(i, plan_id=held.plan.plan_id, actor="alice", reason="ok")
    await stack.wait_status(tenant, i, IncidentStatus.RESOLVED)
    await save_incident("incident-approved-then-resolved", i)

    # Not reversible: approved by two principals (the two-person rule), then resolved.
    tenant = await stack.tenant()
    refund = event(
        tenant,
        "c2",
        error={"code": "gateway_timeout", "vendor": name},
        retry={"method": "POST", "path": "/v1/refunds", "body": {"n": 2}, "reversible": False},
    )
    i = await _incident(stack, tenant, [refund])
    held = await stack.wait_snapshot(i, lambda s: s.phase is Phase.AWAITING_APPROVAL)
    assert held.plan is not None
    await stack.client.approve(i, plan_id=held.plan.plan_id, actor="alice", reason="owed")
    await stack.client.approve(i, plan_id=held.plan.plan_id, actor="bob", reason="checked")
    await stack.wait_status(tenant, i, IncidentStatus.RESOLVED)
    await save_incident("incident-two-person-approved", i)

    # Stopped at the Temporal door: resolved with no credential (temporal:<name>).
    tenant = await stack.tenant()
    i = await _incident(stack, tenant, [event(tenant, "c3", error={"code": "card_declined"})])
    await stack.wait_snapshot(i, lambda s: s.phase is Phase.AWAITING_OPERATOR)
    bare = AwfdrsClient(stack.client.temporal, stack.client.task_queue)
    await bare.resolve(i, actor="erin", reason="fixed at the source")
    await save_incident("incident-stopped-at-the-temporal-door", i)

    # Rejected, escalated, resolved by an operator.
    tenant = await stack.tenant(confidence_threshold=0.95)
    i = await _incident(stack, tenant, [payment(tenant, "d", name, 4)])
    held = await stack.wait_snapshot(i, lambda s: s.phase is Phase.AWAITING_APPROVAL)
    assert held.plan is not None
    await stack.client.reject(i, plan_id=held.plan.plan_id, actor="bob", reason="no")
    await stack.wait_snapshot(i, lambda s: s.phase is Phase.AWAITING_OPERATOR)
    await stack.client.resolve(i, actor="bob", reason="done by hand")
    await save_incident("incident-rejected-escalated-resolved", i)

    # Held by a kill switch, released, resolved.
    tenant = await stack.tenant()
    await stack.client.activate_kill_switch(tenant.id, reason="hold", activated_by="ops")
    i = await _incident(stack, tenant, [payment(tenant, "e", name, 5)])
    await stack.wait_snapshot(i, lambda s: s.phase is Phase.HELD)
    await stack.client.release_kill_switch(tenant.id, released_by="ops-2")
    await stack.wait_status(tenant, i, IncidentStatus.RESOLVED)
    await save_incident("incident-held-released-resolved", i)
    await _save("kill-switch", handle(kill_switch_workflow_id(tenant.id)))

    # An escalation nobody can receive, then ignored.
    tenant = await stack.tenant(escalation_webhook_url=None)
    i = await _incident(stack, tenant, [event(tenant, "f", error={"code": "card_declined"})])
    await stack.wait_snapshot(i, lambda s: s.phase is Phase.AWAITING_OPERATOR)
    await stack.client.ignore(i, actor="carol", reason="test card")
    await save_incident("incident-undeliverable-escalation-ignored", i)

    # Shadow mode, resolved by an operator.
    tenant = await stack.tenant(remediation_mode="shadow")
    i = await _incident(stack, tenant, [payment(tenant, "g", name, 7)])
    await stack.wait_snapshot(i, lambda s: s.phase is Phase.AWAITING_OPERATOR)
    await stack.client.resolve(i, actor="dave", reason="replayed by hand")
    await save_incident("incident-shadow-resolved", i)

    # A request the vendor refuses for good: escalated with it.
    vendor.script = Script(per_key=[422])
    tenant = await stack.tenant()
    i = await _incident(stack, tenant, [payment(tenant, "h", name, 8)])
    await stack.wait_snapshot(i, lambda s: s.phase is Phase.AWAITING_OPERATOR)
    await save_incident("incident-failed-for-good-escalated", i)
    vendor.script = Script()

    # Running: waiting for approval, held, verifying, deferred by a forced-open vendor.
    tenant = await stack.tenant(confidence_threshold=0.95)
    i = await _incident(stack, tenant, [payment(tenant, "i", name, 9)])
    await stack.wait_snapshot(i, lambda s: s.phase is Phase.AWAITING_APPROVAL)
    await save_incident("incident-running-awaiting-approval", i)

    tenant = await stack.tenant()
    await stack.client.activate_kill_switch(tenant.id, reason="hold", activated_by="ops")
    i = await _incident(stack, tenant, [payment(tenant, "j", name, 10)])
    await stack.wait_snapshot(i, lambda s: s.phase is Phase.HELD)
    await save_incident("incident-running-held", i)

    tenant = await stack.tenant(verification_window_seconds=3600)
    i = await _incident(stack, tenant, [payment(tenant, "k", name, 11)])
    await stack.wait_snapshot(i, lambda s: s.phase is Phase.VERIFYING)
    await save_incident("incident-running-verifying", i)

    blocked = await stack.vendor()
    await force_vendor_open(admin_sessions(), blocked, by="ops", reason="maintenance")
    tenant = await stack.tenant(max_deferral_seconds=3600)
    i = await _incident(stack, tenant, [payment(tenant, "l", blocked, 12)])
    await stack.wait_snapshot(i, lambda s: s.phase is Phase.ACTING)
    await asyncio.sleep(2)
    await save_incident("incident-running-deferred", i)

    # An IngestEvents run.
    ingest = [
        w async for w in stack.client.temporal.list_workflows('WorkflowType = "IngestEvents"')
    ]
    await _save("ingest-events", handle(ingest[0].id, run_id=ingest[0].run_id))
