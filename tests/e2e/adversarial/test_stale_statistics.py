"""Ingest's set-based statements must cost what their batch costs, whatever the planner believes.

Found under CI's load (auto_explain): statistics gathered before a tenant existed say the tenant
has one request key, so PostgreSQL ran the request upsert with the tenant's keys outside and the
batch inside: every 1,000-request batch read the batch once per key the tenant ever had (10
million rows at 10,000 keys, 5 to 9 s a batch), and an hour's outage of one vendor could not be
ingested at all. Nothing here runs autovacuum, and production's lags a new tenant's first burst:
statistics must never decide whether ingest is linear.

The measure is work, not time: every batch statement is run once more under ``EXPLAIN ANALYZE``
(in a savepoint rolled back) and the rows its nodes produced and discarded are counted."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from awfdrs.contracts.events import Outcome
from awfdrs.db.repositories import events as events_repository
from awfdrs.db.repositories import incidents as incidents_repository
from awfdrs.db.repositories import requests as requests_repository
from awfdrs.db.repositories.base import fetch_raw
from awfdrs.ingest_core import store_events
from tests.e2e.test_remediation_promises import payment
from tests.support.factories import TenantRef, admin_sessions, make_tenant
from tests.support.pipeline import event

BATCH = 1000
EARLIER = 6  # batches the tenant has sent before the one measured
# A linear plan touches a few rows per row of the batch or of its result; the quadratic one
# touched batch x keys.
WORK_PER_ROW = 30


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


def work(plan: dict[str, Any]) -> int:
    """Rows every node produced or threw away, over all its loops (EXPLAIN shows per loop)."""
    total = 0.0
    for node in nodes(plan):
        loops = node.get("Actual Loops", 1)
        per_loop = node.get("Actual Rows", 0) + node.get("Rows Removed by Filter", 0)
        per_loop += node.get("Rows Removed by Join Filter", 0)
        total += per_loop * loops
    return int(total)


def failures(tenant: TenantRef, batch: int) -> list[dict[str, Any]]:
    return [
        payment(tenant, f"f-{batch}-{n}", "stale-vendor", batch * BATCH + n) for n in range(BATCH)
    ]


@pytest.mark.parametrize("plan_cache_mode", ["force_custom_plan", "force_generic_plan"])
async def test_ingest_stays_linear_when_the_statistics_predate_the_tenant(
    committed_sessions: async_sessionmaker[AsyncSession],
    undelivered_queue: str,
    monkeypatch: pytest.MonkeyPatch,
    plan_cache_mode: str,
) -> None:
    # Statistics taken while another tenant held every row: this one is "one row" to them.
    other = await make_tenant(committed_sessions)
    await store_events(
        committed_sessions, other.id, failures(other, 0)[:50], task_queue=undelivered_queue
    )
    async with admin_sessions()() as session, session.begin():
        for table in ("events", "incidents", "request_keys", "remediation_requests"):
            await session.execute(text(f"ANALYZE {table}"))

    tenant = await make_tenant(committed_sessions)
    for earlier in range(EARLIER):
        await store_events(
            committed_sessions, tenant.id, failures(tenant, earlier), task_queue=undelivered_queue
        )

    measured: list[tuple[str, int, int]] = []

    async def explained(session: AsyncSession, sql: str, *args: Any) -> list[Any]:
        nested = await session.begin_nested()
        try:
            await session.execute(text(f"SET LOCAL plan_cache_mode = {plan_cache_mode}"))
            # The quadratic evidence statement ran for minutes: a clear failure instead.
            await session.execute(text("SET LOCAL statement_timeout = '30s'"))
            rows = await fetch_raw(session, f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", *args)
        finally:
            await nested.rollback()
        document = rows[0][0]  # text, or already decoded where a json codec is registered
        plan = (json.loads(document) if isinstance(document, str) else document)[0]["Plan"]
        found = await fetch_raw(session, sql, *args)
        # A statement may touch every row it returns (evidence marks a whole incident).
        measured.append((" ".join(sql.split())[:70], work(plan), BATCH + len(found)))
        return found

    for module in (events_repository, incidents_repository, requests_repository):
        monkeypatch.setattr(module, "fetch_raw", explained)

    # The measured batch: new failures, a resend of earlier ones, and successes that prove
    # some recovered (the evidence statement), all of one incident.
    at = datetime.now(UTC) + timedelta(seconds=1)
    batch = failures(tenant, EARLIER)[: BATCH - 200]
    batch += [payment(tenant, f"again-{n}", "stale-vendor", n) for n in range(100)]
    for n in range(100):
        body = event(tenant, f"s-{n}", "payment.succeeded", order_id=n, occurred_at=at)
        body["correlation_id"] = str(n)
        batch.append(body)
    result = await store_events(committed_sessions, tenant.id, batch, task_queue=undelivered_queue)
    assert result.count(Outcome.ACCEPTED) == BATCH, result.outcomes

    # Events, incidents, request keys, re-failures, requests, evidence.
    assert len(measured) >= 6, measured
    too_much = [(name, rows) for name, rows, rows_due in measured if rows > WORK_PER_ROW * rows_due]
    assert not too_much, f"statements whose work grows with the tenant, not the batch: {too_much}"
