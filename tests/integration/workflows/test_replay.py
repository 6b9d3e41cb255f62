"""Determinism: histories recorded by real runs replay through the *sandboxed* runner.

Production workers run unsandboxed for speed (AWFDRS_WORKFLOW_SANDBOX); this is the safety net
instead: a workflow that reads the clock, does I/O or branches on anything but its history fails
here, in CI, rather than in a replay at 3 a.m.
"""

from __future__ import annotations

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from awfdrs.devstack.servers import FlakyVendor, Script
from awfdrs.enums import IncidentStatus, Phase
from awfdrs.workflows.incident import IncidentWorkflow
from awfdrs.workflows.ingest import IngestEventsWorkflow
from awfdrs.workflows.kill_switch import KillSwitchWorkflow
from tests.support.pipeline import Stack, event, retryable


async def test_recorded_histories_replay_deterministically(
    stack: Stack, vendor: FlakyVendor
) -> None:
    vendor.script = Script(statuses=[503])
    tenant = await stack.tenant(confidence_threshold=0.95)
    name = await stack.vendor()
    await stack.client.activate_kill_switch(
        tenant.id, reason="replay", activated_by="test", workflow_id=tenant.workflow_id
    )
    await stack.client.release_kill_switch(
        tenant.id, released_by="ops", workflow_id=tenant.workflow_id
    )
    summary = await stack.client.ingest(
        tenant.id,
        [retryable(tenant, "k-1", name), event(tenant, "k-2", error={"code": "card_declined"})],
    )
    ids = {c.incident_id for c in summary.incidents}
    for incident in await stack.incidents(tenant):
        if "gateway" in incident.title:
            held = await stack.wait_snapshot(
                incident.id, lambda s: s.phase is Phase.AWAITING_APPROVAL
            )
            assert held.plan is not None
            await stack.client.approve(incident.id, plan_id=held.plan.plan_id, actor="alice")
            await stack.wait_status(tenant, incident.id, IncidentStatus.RESOLVED)
        else:
            await stack.wait_snapshot(incident.id, lambda s: s.phase is Phase.AWAITING_OPERATOR)
            await stack.client.ignore(incident.id, actor="alice", reason="replay test")
    query = (
        f'WorkflowType IN ("IngestEvents", "KillSwitchWorkflow") OR AwfdrsTenant = "{tenant.id}"'
    )
    histories = []
    async for execution in stack.client.temporal.list_workflows(query):
        handle = stack.client.temporal.get_workflow_handle(execution.id, run_id=execution.run_id)
        history = await handle.fetch_history()
        if (
            any(str(i) in execution.id for i in ids)
            or execution.workflow_type != "IncidentWorkflow"
        ):
            histories.append(history)
    assert {h.workflow_id.split("-")[0] for h in histories} >= {"incident", "kill", "ingest"}
    replayer = Replayer(
        workflows=[IngestEventsWorkflow, IncidentWorkflow, KillSwitchWorkflow],
        data_converter=pydantic_data_converter,
        workflow_runner=SandboxedWorkflowRunner(),
    )
    failures = {}
    for history in histories:
        result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        if result.replay_failure is not None:
            failures[history.workflow_id] = result.replay_failure
    assert not failures, failures
    assert len(histories) >= 4  # two incidents, the kill switch, the ingest
