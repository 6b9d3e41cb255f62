"""Any Temporal client can ingest: the README's `temporal workflow start` command, verbatim."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from datetime import UTC, datetime

from temporalio.testing import WorkflowEnvironment

from awfdrs.devstack.binaries import temporal_cli
from awfdrs.enums import IncidentStatus
from tests.support.pipeline import Stack


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
