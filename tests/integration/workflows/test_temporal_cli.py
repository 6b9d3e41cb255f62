"""Any Temporal client can ingest: docs/ARCHITECTURE.md's `temporal workflow start` command."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from datetime import UTC, datetime

from temporalio.testing import WorkflowEnvironment

from awfdrs.devstack.binaries import temporal_cli
from awfdrs.enums import IncidentStatus
from tests.support.pipeline import Stack, eventually


def _temporal(*args: str) -> str:
    done = subprocess.run(
        [temporal_cli(), *args], capture_output=True, text=True, check=True, timeout=60
    )
    return done.stdout


async def test_ingest_with_the_temporal_cli_and_plain_json(
    stack: Stack, temporal_env: WorkflowEnvironment
) -> None:
    tenant = await stack.tenant(grouping_window_seconds=60)
    address = temporal_env.client.service_client.config.target_host
    workflow_id = f"ingest-cli-{uuid.uuid4()}"
    batch = {
        "tenant_id": str(tenant.id),
        "events": [
            {
                "tenant_id": str(tenant.id),
                "workflow_id": str(tenant.workflow_id),
                "event_type": "payment.failed",
                "idempotency_key": "cli-1",
                "occurred_at": datetime.now(UTC).isoformat(),
                "payload": {"error": {"code": "card_declined"}},
            }
        ],
    }
    start = [
        "workflow", "start",
        "--address", address,
        "--task-queue", stack.client.task_queue,
        "--type", "IngestEvents",
        "--workflow-id", workflow_id,
        "--input", json.dumps(batch),
    ]  # fmt: skip
    await asyncio.to_thread(_temporal, *start)
    out = await asyncio.to_thread(
        _temporal, "workflow", "result", "--address", address,
        "--workflow-id", workflow_id, "--output", "json",
    )  # fmt: skip
    result = json.loads(out)["result"]
    assert [o["outcome"] for o in result["outcomes"]] == ["accepted"]
    [incident] = result["incidents"]
    assert incident["opened"] is True
    assert incident["status"] == IncidentStatus.NEW.value
    assert [i.id for i in await stack.incidents(tenant)] == [uuid.UUID(incident["incident_id"])]


async def test_operators_can_use_the_temporal_cli_for_updates_and_queries(
    stack: Stack, temporal_env: WorkflowEnvironment
) -> None:
    tenant = await stack.tenant(grouping_window_seconds=60)
    summary = await stack.client.ingest(
        tenant.id,
        [
            {
                "tenant_id": str(tenant.id),
                "workflow_id": str(tenant.workflow_id),
                "event_type": "payment.failed",
                "idempotency_key": "cli-2",
                "occurred_at": datetime.now(UTC).isoformat(),
                "payload": {"error": {"code": "card_declined"}},
            }
        ],
    )
    [change] = summary.incidents
    address = temporal_env.client.service_client.config.target_host
    workflow_id = f"incident-{change.incident_id}"
    # The outbox's dispatcher starts the workflow after ingest answers: wait for it to exist.
    await stack.wait_snapshot(change.incident_id, lambda snapshot: True, within=30)
    query = await asyncio.to_thread(
        _temporal, "workflow", "query", "--address", address,
        "--workflow-id", workflow_id, "--type", "snapshot", "--output", "json",
    )  # fmt: skip
    assert json.loads(query)["queryResult"][0]["phase"] == "grouping"
    refused = await asyncio.to_thread(
        subprocess.run,
        [temporal_cli(), "workflow", "update", "execute", "--address", address,
         "--workflow-id", workflow_id, "--name", "approve",
         "--input", '{"plan_id": "plan-0", "actor": "cli"}'],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert refused.returncode != 0
    assert "not waiting for approval" in refused.stderr + refused.stdout
    await asyncio.to_thread(
        _temporal, "workflow", "update", "execute", "--address", address,
        "--workflow-id", workflow_id, "--name", "ignore",
        "--input", '{"actor": "cli-operator", "reason": "known test card"}',
    )  # fmt: skip
    incident = await stack.incident(tenant, change.incident_id)
    assert incident.status is IncidentStatus.IGNORED
    # Anyone with the namespace may stop; the name is recorded as typed at the Temporal door.
    assert incident.resolution == "ignored by temporal:cli-operator: known test card"


async def test_the_kill_switch_by_temporal_cli_signal_with_start(
    stack: Stack, temporal_env: WorkflowEnvironment
) -> None:
    tenant = await stack.tenant()
    address = temporal_env.client.service_client.config.target_host
    activation = {
        "reason": "vendor incident",
        "activated_by": "cli-operator",
        "duration_seconds": 600,
    }
    start = json.dumps({"tenant_id": str(tenant.id)})
    await asyncio.to_thread(
        _temporal, "workflow", "signal-with-start", "--address", address,
        "--workflow-id", f"kill-switch-{tenant.id}", "--type", "KillSwitchWorkflow",
        "--task-queue", stack.client.task_queue, "--input", start,
        "--signal-name", "activate", "--signal-input", json.dumps(activation),
    )  # fmt: skip

    async def active() -> list[str] | None:
        try:
            status = await stack.client.kill_switches(tenant.id)
        except Exception:
            return None
        return [s.activated_by for s in status.active] or None

    switched = await eventually(active, 10, "the switch to be in force")
    assert switched == ["temporal:cli-operator"]
    # Releasing resumes automation: from the Temporal side, without a credential, refused.
    request_id = "cli-release-1"
    release = {"released_by": "cli-operator", "reason": "over", "request_id": request_id}
    await asyncio.to_thread(
        _temporal, "workflow", "signal", "--address", address,
        "--workflow-id", f"kill-switch-{tenant.id}", "--name", "release",
        "--input", json.dumps(release),
    )  # fmt: skip

    async def answered() -> str | None:
        for request in (await stack.client.kill_switches(tenant.id)).requests:
            if request.request_id == request_id and request.outcome != "pending":
                return request.outcome
        return None

    assert await eventually(answered, 10, "the release to be answered") == "refused"
    assert len((await stack.client.kill_switches(tenant.id)).active) == 1
    await stack.client.release_kill_switch(tenant.id, released_by="ops-lead", reason="over")

    async def released() -> bool | None:
        return True if not (await stack.client.kill_switches(tenant.id)).active else None

    assert await eventually(released, 10, "the switch to be released")
