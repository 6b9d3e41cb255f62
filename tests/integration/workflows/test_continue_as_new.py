"""Continue-as-new: on a server that suggests it after a few events, incidents still complete."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from awfdrs.constants import SEARCH_ATTRIBUTES
from awfdrs.devstack.binaries import temporal_cli
from awfdrs.devstack.servers import EscalationReceiver, FlakyVendor
from awfdrs.enums import IncidentStatus, Phase, Severity
from tests.support.pipeline import event, running_stack


@pytest.fixture(scope="module")
async def eager_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(),
        data_converter=pydantic_data_converter,
        search_attributes=SEARCH_ATTRIBUTES,
        dev_server_log_level="error",
        dev_server_extra_args=[
            "--dynamic-config-value",
            "limit.historyCount.suggestContinueAsNew=12",
        ],
    )
    try:
        yield env
    finally:
        await env.shutdown()


async def test_an_incident_survives_continue_as_new(
    eager_env: WorkflowEnvironment,
    committed_sessions: async_sessionmaker[AsyncSession],
    task_queue: str,
    vendor: FlakyVendor,
    receiver: EscalationReceiver,
) -> None:
    async with running_stack(
        eager_env.client, committed_sessions, task_queue, vendor, receiver
    ) as stack:
        tenant = await stack.tenant(confidence_threshold=0.99, grouping_window_seconds=0.2)
        name = await stack.vendor()
        retry = {"path": "/v1/charges", "reversible": True}
        summary = await stack.client.ingest(
            tenant.id,
            [event(tenant, "k-0", error={"code": "gateway_timeout", "vendor": name}, retry=retry)],
        )
        [incident_id] = {c.incident_id for c in summary.incidents}
        waiting = await stack.wait_snapshot(
            incident_id, lambda s: s.phase is Phase.AWAITING_APPROVAL
        )
        assert waiting.plan is not None
        # Each raise is a signal: history grows past the suggestion while the incident waits.
        for n, severity in enumerate(["warning", "error", "critical"]):
            failure = event(tenant, f"k-{n + 1}", error={"code": "gateway_timeout", "vendor": name},
                            retry=retry)  # fmt: skip
            await stack.client.ingest(tenant.id, [{**failure, "severity": severity}])
        raised = await stack.wait_snapshot(incident_id, lambda s: s.severity is Severity.CRITICAL)
        # The plan survived continue-as-new: the approval names the one reviewed before it.
        assert raised.plan == waiting.plan
        await stack.client.approve(
            incident_id, plan_id=waiting.plan.plan_id, actor="alice", reason="after it"
        )
        await stack.wait_status(tenant, incident_id, IncidentStatus.RESOLVED)
        final = await stack.client.incident(incident_id).result()
        runs = [
            w
            async for w in eager_env.client.list_workflows(f'WorkflowId = "incident-{incident_id}"')
        ]
    assert final.status is IncidentStatus.RESOLVED
    assert len(runs) > 1, "the workflow never continued as new"
    assert [d.decided_by for d in final.decisions] == [None, "alice"]
    assert len(vendor.executions()) == 1
