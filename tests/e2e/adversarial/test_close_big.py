"""The close runs as a local activity (LOCAL_TIMEOUT 2 s, LOCAL_BUDGET 3 s) from the update
handler, and in the same transaction cancels every unsent request of the incident (an UPDATE
with RETURNING of whole rows, materialised as ORM objects). Requests accumulate without bound
(each batch adds up to 1,000): an hour's outage of a vendor at ~10 failed requests a second is
one incident of 36,000. Past ~25,000 on this machine the close cannot finish inside its budget,
and resolve / ignore fail every time: the operator cannot close the incident at all."""

from __future__ import annotations

import time

from sqlalchemy import text
from temporalio.client import WorkflowUpdateFailedError

from awfdrs.db.session import tenant_session
from awfdrs.enums import IncidentStatus, Phase
from awfdrs.ingest_core import store_events
from tests.e2e.test_remediation_promises import payment
from tests.support.pipeline import Stack

# An hour's outage at soak size; in CI enough for the close's batched cancel to take several
# batches (5,000 each).
SOAK_N, CI_N = 50_000, 12_000


async def test_an_operator_can_ignore_an_incident_of_an_hours_outage(
    stack: Stack, task_queue: str
) -> None:
    tenant = await stack.tenant()
    name = await stack.vendor()
    # Held, so nothing is sent while the failures pile up (it is the close that is measured).
    await stack.client.activate_kill_switch(tenant.id, reason="outage", activated_by="ops")
    incident_id = None
    n = SOAK_N if stack.soak else CI_N
    for chunk in range(n // 1000):
        batch = [payment(tenant, f"k-{chunk}-{n}", name, chunk * 1000 + n) for n in range(1000)]
        result = await store_events(stack.sessions, tenant.id, batch, task_queue=task_queue)
        incident_id = result.incidents[0].incident_id
    assert incident_id is not None
    await stack.wait_snapshot(incident_id, lambda s: s.phase is Phase.HELD, within=30)

    started = time.monotonic()
    try:
        closed = await stack.client.ignore(incident_id, actor="alice", reason="vendor outage")
    except WorkflowUpdateFailedError as error:
        took = time.monotonic() - started
        raise AssertionError(
            f"ignore refused after {took:.1f}s: {error.cause}; the incident stays "
            f"{(await stack.incident(tenant, incident_id)).status.value}"
        ) from None
    took = time.monotonic() - started
    assert closed.status is IncidentStatus.IGNORED
    assert took < 2.0, f"ignore answered in {took:.1f}s"
    async with tenant_session(stack.sessions, tenant.id) as session:
        left = (
            await session.execute(
                text(
                    "SELECT status, count(*) FROM remediation_requests "
                    "WHERE incident_id = :i GROUP BY status"
                ),
                {"i": incident_id},
            )
        ).all()
    assert dict(left) == {"CANCELLED": n}
