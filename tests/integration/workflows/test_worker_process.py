"""The worker as a process: killed mid-action, a new one finishes with no duplicate action."""

from __future__ import annotations

import json

from awfdrs.db.repositories import ActionRepository, RequestRepository
from awfdrs.db.session import tenant_session
from awfdrs.devstack.servers import FlakyVendor, Script
from awfdrs.enums import ActionStatus, IncidentStatus
from tests.support.pipeline import Stack, event, eventually
from tests.support.processes import WorkerProcess


async def test_killing_the_worker_mid_action_duplicates_nothing(
    process_stack: tuple[Stack, WorkerProcess], vendor: FlakyVendor
) -> None:
    stack, worker = process_stack
    vendor.script = Script(latency=1.5)
    tenant = await stack.tenant(action_timeout_seconds=3, grouping_window_seconds=0.2)
    name = await stack.vendor()
    summary = await stack.client.ingest(
        tenant.id,
        [
            {
                **event(
                    tenant,
                    "k-1",
                    error={"code": "gateway_timeout", "vendor": name},
                    retry={"method": "PUT", "path": "/v1/orders/7", "body": {"state": "paid"}},
                ),
                "correlation_id": "trace-7",
            }
        ],
    )
    [incident_id] = {c.incident_id for c in summary.incidents}

    async def in_flight() -> bool | None:
        return True if vendor.arrivals >= 1 else None

    await eventually(in_flight, 30, "the retry to reach the vendor")
    worker.kill()  # the vendor is still working on the request
    await worker.start()
    incident = await stack.wait_status(tenant, incident_id, IncidentStatus.RESOLVED, within=60)
    assert incident.resolution is not None

    async with tenant_session(stack.sessions, tenant.id) as session:
        [action] = await ActionRepository(session, tenant_id=tenant.id).list_for_incident(
            incident_id
        )
        [request] = await RequestRepository(session, tenant_id=tenant.id).list_for_incident(
            incident_id
        )
    assert action.status is ActionStatus.SUCCEEDED
    assert action.attempts == 2
    assert request.attempts == 2
    # The second attempt re-sent the same request under the same key: the vendor replayed it.
    assert vendor.executions() == {request.idempotency_key: 1}
    assert [r.replayed for r in vendor.requests] == [False, True]

    # Not a terminal: the worker logged JSON lines, one trail from the event to the action.
    lines = [
        json.loads(line) for line in worker.log.read_text().splitlines() if line.startswith("{")
    ]
    trail = [line for line in lines if line.get("incident_id") == str(incident_id)]
    messages = [line["message"] for line in trail]
    assert any(m.startswith("incident opened") for m in messages)
    assert any(m.startswith("decision: retry") for m in messages)
    assert any(m.startswith("action retry SUCCEEDED") for m in messages)
    assert any(m.startswith("incident RESOLVED") for m in messages)
    for line in trail:
        assert line["tenant_id"] == str(tenant.id)
        assert line["workflow_id"] == f"incident-{incident_id}"
        assert line["correlation_id"] == "trace-7"


async def test_sigterm_stops_the_worker_cleanly(
    process_stack: tuple[Stack, WorkerProcess],
) -> None:
    _, worker = process_stack
    assert worker.stop() == 0
    assert "shutting down" in worker.tail()
