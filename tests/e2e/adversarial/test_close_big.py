"""The close runs as a local activity (LOCAL_TIMEOUT 2 s, LOCAL_BUDGET 3 s) from the update
handler, and in the same transaction cancels every unsent request of the incident (an UPDATE
with RETURNING of whole rows, materialised as ORM objects). Requests accumulate without bound
(each batch adds up to 1,000): an hour's outage of a vendor at ~10 failed requests a second is
one incident of 36,000. Past ~25,000 on this machine the close cannot finish inside its budget,
and resolve / ignore fail every time: the operator cannot close the incident at all."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from sqlalchemy import text
from temporalio.client import WorkflowUpdateFailedError

from awfdrs.activities import incidents as incident_activities
from awfdrs.db.repositories.requests import RequestRepository
from awfdrs.db.session import tenant_session
from awfdrs.enums import IncidentStatus, Phase
from awfdrs.ingest_core import store_events
from tests.e2e.test_remediation_promises import payment
from tests.support.factories import TenantRef, admin_sessions
from tests.support.pipeline import Stack, eventually

# An hour's outage at soak size; in CI enough for the close's batched cancel to take several
# batches (5,000 each).
SOAK_N, CI_N = 50_000, 12_000


# Its phases are bounded below this, each with what the database was doing when it ran out: in
# CI's runs ingest here went quadratic (5 to 16 s a batch), planned on statistics that predated
# the tenant (migration 0011 and test_stale_statistics.py).
@pytest.mark.timeout(200)
async def test_an_operator_can_ignore_an_incident_of_an_hours_outage(
    stack: Stack, task_queue: str
) -> None:
    tenant = await stack.tenant()
    name = await stack.vendor()
    # Held, so nothing is sent while the failures pile up (it is the close that is measured).
    await stack.client.activate_kill_switch(tenant.id, reason="outage", activated_by="ops")
    incident_id = None
    n = SOAK_N if stack.soak else CI_N
    batches: list[float] = []

    async def ingest() -> uuid.UUID | None:
        nonlocal incident_id
        for chunk in range(n // 1000):
            batch = [payment(tenant, f"k-{chunk}-{n}", name, chunk * 1000 + n) for n in range(1000)]
            began = time.monotonic()
            result = await store_events(stack.sessions, tenant.id, batch, task_queue=task_queue)
            batches.append(time.monotonic() - began)
            incident_id = result.incidents[0].incident_id
        return incident_id

    ingesting = asyncio.create_task(ingest())
    done, _ = await asyncio.wait([ingesting], timeout=60)
    if not done:
        # Looked at before the cancel: cancelling the batch ends its statement.
        now = await activity()
        ingesting.cancel()
        raise AssertionError(
            f"ingest unfinished after 60 s: batches took {[round(t, 1) for t in batches]}; "
            f"the database: {now}"
        )
    ingesting.result()
    assert incident_id is not None
    try:
        await asyncio.wait_for(
            stack.wait_snapshot(incident_id, lambda s: s.phase is Phase.HELD, within=30), 35
        )
    except TimeoutError:
        raise AssertionError(
            f"not HELD after 35 s (batches took {[round(t, 1) for t in batches]}); "
            f"the database: {await activity()}"
        ) from None

    started = time.monotonic()
    try:
        # Bounded below pytest's timeout: a CI run (two busy workers) once hung here past
        # 120 s with ingest done, and pytest's dump named no frame of the test.
        closed = await asyncio.wait_for(
            stack.client.ignore(incident_id, actor="alice", reason="vendor outage"), 60
        )
    except TimeoutError:
        described = (await stack.client.incident(incident_id).describe()).raw_description
        raise AssertionError(
            f"ignore unanswered after 60 s; the incident is "
            f"{(await stack.incident(tenant, incident_id)).status.value}; its workflow: "
            f"{described.workflow_execution_info.history_length} history events, "
            f"pending workflow task {described.pending_workflow_task}"
        ) from None
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


async def test_a_close_with_no_time_to_cancel_everything_sweeps_on_until_nothing_is_pending(
    stack: Stack, task_queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The promise: no request of a closed incident is left PENDING. A close cancels a batch in
    its own transaction and sweeps on for a second; on a loaded machine, or at soak size, that
    second runs out with requests left, and the workflow must close again until none is."""
    tenant, incident_id = await held_with_one_batch_per_close(stack, task_queue, monkeypatch)

    closed = await stack.client.ignore(incident_id, actor="alice", reason="vendor outage")
    assert closed.status is IncidentStatus.IGNORED

    await eventually(lambda: all_cancelled(stack, tenant.id, incident_id, 1000), 30,
                     "every unsent request to be cancelled")  # fmt: skip


async def test_a_sweep_the_database_fails_for_a_while_is_waited_out_not_given_up(
    stack: Stack, task_queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The close is recorded and says more is left; then the database fails the sweep for
    longer than a local activity's budget. The workflow waits it out on a timer and sweeps on:
    it does not complete with the rest PENDING under a closed incident."""
    tenant, incident_id = await held_with_one_batch_per_close(stack, task_queue, monkeypatch)

    cancel_pending = RequestRepository.cancel_pending
    calls: list[float] = []

    async def failing_for_a_while(
        self: RequestRepository, of: uuid.UUID, note: str, *, limit: int
    ) -> int:
        if of == incident_id:
            calls.append(time.monotonic())
            # The close's own batch and its sweep's first pass land; then 5 s of failures.
            if len(calls) > 2 and calls[-1] - calls[2] < 5:
                raise TimeoutError("the database is not answering")
        return await cancel_pending(self, of, note, limit=limit)

    monkeypatch.setattr(RequestRepository, "cancel_pending", failing_for_a_while)
    closed = await stack.client.ignore(incident_id, actor="alice", reason="vendor outage")
    assert closed.status is IncidentStatus.IGNORED
    await eventually(lambda: all_cancelled(stack, tenant.id, incident_id, 1000), 60,
                     "every unsent request to be cancelled")  # fmt: skip
    assert calls[-1] - calls[2] > 5  # the failures outlasted a local activity's budget


async def activity() -> list[tuple[object, ...]]:
    """What this test's database is doing: each backend's state, wait and transaction age (on
    the owner's pool: the application's may be what is exhausted)."""
    async with admin_sessions()() as session:
        rows = await session.execute(
            text(
                "SELECT pid, state, wait_event_type, wait_event, pg_blocking_pids(pid), "
                "round(extract(epoch FROM now() - xact_start)), left(query, 120) "
                "FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND state <> 'idle'"
            )
        )
        return [tuple(row) for row in rows]


async def all_cancelled(
    stack: Stack, tenant_id: uuid.UUID, incident_id: uuid.UUID, n: int
) -> dict[str, int] | None:
    async with tenant_session(stack.sessions, tenant_id) as session:
        rows = await session.execute(
            text(
                "SELECT status, count(*) FROM remediation_requests "
                "WHERE incident_id = :i GROUP BY status"
            ),
            {"i": incident_id},
        )
        left: dict[str, int] = {row[0]: row[1] for row in rows.all()}
    return left if left == {"CANCELLED": n} else None


async def held_with_one_batch_per_close(
    stack: Stack, task_queue: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[TenantRef, uuid.UUID]:
    """An incident of 1,000 unsent requests held by a kill switch, whose closes cancel one
    batch of 100 each (so a close always leaves more for the sweep)."""
    monkeypatch.setattr(incident_activities, "CANCEL_BATCH", 100)
    monkeypatch.setattr(incident_activities, "CANCEL_SWEEP", 0.0)
    tenant = await stack.tenant()
    name = await stack.vendor()
    await stack.client.activate_kill_switch(tenant.id, reason="outage", activated_by="ops")
    batch = [payment(tenant, f"k-{n}", name, n) for n in range(1000)]
    result = await store_events(stack.sessions, tenant.id, batch, task_queue=task_queue)
    incident_id = result.incidents[0].incident_id
    await stack.wait_snapshot(incident_id, lambda s: s.phase is Phase.HELD, within=30)
    return tenant, incident_id
