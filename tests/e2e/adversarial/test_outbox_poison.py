"""One outbox row the dispatcher cannot read wedges its whole queue: ``merge`` validates each
row's ``start`` (IncidentInput, extra="forbid") outside the per-delivery error handling, the
exception rolls the claim back, and the same row comes first again on every pass. A row written
by another release of awfdrs (a field added or retired: a rolling deploy) is such a row."""

from __future__ import annotations

import json

import asyncpg

from awfdrs.config import asyncpg_dsn
from awfdrs.constants import incident_workflow_id
from awfdrs.ingest_core import store_events
from tests.support.database import ScratchDatabase
from tests.support.pipeline import Stack, eventually, retryable


async def test_one_unreadable_notice_does_not_stop_the_other_incidents_from_starting(
    stack: Stack, database: ScratchDatabase, task_queue: str, undelivered_queue: str
) -> None:
    old = await stack.tenant()
    parked = undelivered_queue  # nobody dispatches this queue
    written = await store_events(
        stack.sessions, old.id, [retryable(old, "old", "v")], task_queue=parked
    )
    [old_incident] = [c.incident_id for c in written.incidents]
    admin = await asyncpg.connect(asyncpg_dsn(database.owner_url))
    try:
        start = json.loads(
            await admin.fetchval("SELECT start::text FROM outbox WHERE task_queue = $1", parked)
        )
        start["params"]["retired_setting"] = 1  # written by another release
        await admin.execute(
            "INSERT INTO outbox (tenant_id, incident_id, task_queue, start, opened) "
            "VALUES ($1, $2, $3, $4::jsonb, true)",
            old.id,
            old_incident,
            task_queue,
            json.dumps(start),
        )
    finally:
        await admin.close()

    tenant = await stack.tenant()
    summary = await stack.client.ingest(tenant.id, [retryable(tenant, "new", "v")])
    [incident_id] = [c.incident_id for c in summary.incidents]
    handle = stack.client.temporal.get_workflow_handle(incident_workflow_id(incident_id))

    async def started() -> bool | None:
        try:
            await handle.describe()
        except Exception:
            return None
        return True

    started_in_time = True
    try:
        await eventually(started, 8, "the new incident's workflow")
    except AssertionError:
        started_in_time = False
    assert started_in_time, (
        f"incident {incident_id} of another tenant never got a workflow: the dispatcher "
        "keeps failing on the one unreadable row ahead of it"
    )
    # The unreadable row is parked with its reason, not deleted and not retried in a loop.
    admin = await asyncpg.connect(asyncpg_dsn(database.owner_url))
    try:
        row = await admin.fetchrow(
            "SELECT attempts, last_error, available_at > now() AS later FROM outbox "
            "WHERE task_queue = $1 AND incident_id = $2",
            task_queue,
            old_incident,
        )
        await admin.execute("DELETE FROM outbox WHERE task_queue = $1", task_queue)
    finally:
        await admin.close()
    assert row is not None
    assert row["attempts"] == 1
    assert "start invalid" in row["last_error"]
    assert row["later"]
