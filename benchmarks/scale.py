"""Benchmark 4: the hot queries and ingest with millions of events already stored.

The history is loaded in SQL on the server (generate_series), as the owner, in the shape ingest
writes: events over 30 days, 30% failures, incidents mostly closed with some open. Then each hot
query runs through its repository as the application role (row-level security on), its
latency is timed and its plan is checked with EXPLAIN for the index it must use.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncSession

from awfdrs.db.repositories import EventRepository, IncidentRepository
from awfdrs.db.session import tenant_session
from awfdrs.enums import IncidentStatus
from benchmarks.harness import Bench, Tenant, make_tenants, percentile, workload
from benchmarks.ingest import run_awfdrs, run_floor

LOAD_EVENTS = """
INSERT INTO events (tenant_id, workflow_id, event_type, outcome, payload, idempotency_key,
                    occurred_at, received_at, severity, signature, fingerprint_version,
                    payload_hash, correlation_id)
SELECT t.tenant_id, t.workflow_id,
       CASE WHEN g % 10 < 3 THEN 'payment.failed' ELSE 'payment.captured' END,
       CASE WHEN g % 10 < 3 THEN 'failure' ELSE 'neutral' END,
       jsonb_build_object('order_id', g, 'amount', g % 99999, 'currency', 'EUR'),
       'scale-' || g,
       now() - (g % 2592000) * interval '1 second',
       now() - (g % 2592000) * interval '1 second',
       CASE WHEN g % 10 < 3 THEN 'error' END,
       CASE WHEN g % 10 < 3 THEN md5(t.tenant_id::text || (g % CAST(:signatures AS int))) ||
                                 md5((g % CAST(:signatures AS int))::text) END,
       CASE WHEN g % 10 < 3 THEN 1 END,
       md5(g::text) || md5((g + 1)::text),
       'trace-' || g
FROM generate_series(CAST(:start AS bigint), CAST(:stop AS bigint)) AS g
JOIN scale_tenants t ON t.n = g % CAST(:tenants AS int)
"""

LOAD_INCIDENTS = """
INSERT INTO incidents (tenant_id, workflow_id, signature, operation, title, status, severity,
                       event_count, first_seen_at, last_seen_at, resolved_at, resolution,
                       created_at)
SELECT t.tenant_id, t.workflow_id, md5('incident' || g) || md5(g::text), 'payment',
       'payment failed: gateway_timeout_' || (g % 2000),
       s.status, 'error', 1 + g % 50,
       now() - (g % 2592000) * interval '1 second', now() - (g % 2592000) * interval '1 second',
       CASE WHEN s.status IN ('RESOLVED', 'IGNORED') THEN now() END,
       CASE WHEN s.status IN ('RESOLVED', 'IGNORED') THEN 'loaded' END,
       now() - (g % 2592000) * interval '1 second'
FROM generate_series(1, CAST(:count AS bigint)) AS g
JOIN scale_tenants t ON t.n = g % CAST(:tenants AS int)
CROSS JOIN LATERAL (SELECT CASE WHEN g % 20 = 0 THEN 'NEW' WHEN g % 20 = 1 THEN 'ACTIONED'
                                WHEN g % 20 = 2 THEN 'IGNORED' ELSE 'RESOLVED' END AS status) s
"""

EXPECTED_INDEX = {
    "recent events of a workflow": "ix_events_tenant_workflow",
    "a page of incidents by status": "ix_incidents_tenant_status",
    "incident counts by status": "ix_incidents_tenant_status",
    "event count of a workflow": "pk_workflow_event_counts",
}


async def load(bench: Bench, tenants: list[Tenant], events: int, incidents: int) -> float:
    started = time.perf_counter()
    async with bench.owner_engine.connect() as connection:
        await connection.execute(
            text("CREATE TEMP TABLE scale_tenants (n int, tenant_id uuid, workflow_id uuid)")
        )
        for n, tenant in enumerate(tenants):
            await connection.execute(
                text("INSERT INTO scale_tenants VALUES (:n, :t, :w)"),
                {"n": n, "t": tenant.id, "w": tenant.workflow_id},
            )
        chunk = 500_000
        for start in range(1, events + 1, chunk):
            await connection.execute(
                text(LOAD_EVENTS),
                {"start": start, "stop": min(events, start + chunk - 1), "tenants": len(tenants),
                 "signatures": 4000},
            )  # fmt: skip
            await connection.commit()
        await connection.execute(
            text(LOAD_INCIDENTS), {"count": incidents, "tenants": len(tenants)}
        )
        await connection.commit()
    async with bench.owner_engine.connect() as connection:
        autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
        await autocommit.execute(text("VACUUM (ANALYZE) events"))
        await autocommit.execute(text("VACUUM (ANALYZE) incidents"))
    return time.perf_counter() - started


Query = Callable[[AsyncSession, Tenant], Awaitable[Any]]


def hot_queries() -> dict[str, Query]:
    async def recent(session: AsyncSession, tenant: Tenant) -> Any:
        return await EventRepository(session, tenant_id=tenant.id).get_recent_events(
            tenant.workflow_id, hours=24, limit=100
        )

    async def page(session: AsyncSession, tenant: Tenant) -> Any:
        return await IncidentRepository(session, tenant_id=tenant.id).get_incidents_paginated(
            1, 20, status=IncidentStatus.NEW
        )

    async def counts(session: AsyncSession, tenant: Tenant) -> Any:
        return await IncidentRepository(session, tenant_id=tenant.id).count_by_status()

    async def event_count(session: AsyncSession, tenant: Tenant) -> Any:
        return await EventRepository(session, tenant_id=tenant.id).count_events(tenant.workflow_id)

    return {
        "recent events of a workflow": recent,
        "a page of incidents by status": page,
        "incident counts by status": counts,
        "event count of a workflow": event_count,
    }


async def measure(bench: Bench, tenants: list[Tenant], runs: int) -> dict[str, Any]:
    statements: list[tuple[str, Any]] = []

    def capture(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        statements.append((statement, parameters))

    rng = random.Random(3)
    results: dict[str, Any] = {}
    sync_engine = bench.app_engine.sync_engine
    for name, query in hot_queries().items():
        timings = []
        for _ in range(runs):
            tenant = rng.choice(tenants)
            async with tenant_session(bench.sessions, tenant.id) as session:
                started = time.perf_counter()
                await query(session, tenant)
                timings.append(time.perf_counter() - started)
        tenant = tenants[0]
        statements.clear()
        event.listen(sync_engine, "before_cursor_execute", capture)
        try:
            async with tenant_session(bench.sessions, tenant.id) as session:
                await query(session, tenant)
                statement, parameters = statements[-1]
                explained = await session.connection()
                plan_rows = await explained.exec_driver_sql(
                    f"EXPLAIN (ANALYZE, FORMAT JSON) {statement}", parameters
                )
                plan = plan_rows.scalar_one()
        finally:
            event.remove(sync_engine, "before_cursor_execute", capture)
        indexes = sorted(_indexes(plan[0]["Plan"]))
        timings.sort()
        results[name] = {
            "p50_ms": percentile(timings, 0.5) * 1000,
            "p99_ms": percentile(timings, 0.99) * 1000,
            "plan": _shape(plan[0]["Plan"]),
            "indexes": indexes,
            "uses_expected_index": EXPECTED_INDEX[name] in indexes,
        }
    return results


def _indexes(node: dict[str, Any]) -> set[str]:
    found = {node["Index Name"]} if "Index Name" in node else set()
    for child in node.get("Plans", []):
        found |= _indexes(child)
    return found


def _shape(node: dict[str, Any]) -> str:
    label = str(node["Node Type"])
    if "Index Name" in node:
        label += f" using {node['Index Name']}"
    children = [_shape(c) for c in node.get("Plans", [])]
    return label + (f" ← {', '.join(children)}" if children else "")


async def benchmark(
    bench: Bench, *, events: int, incidents: int, tenants: int, probe_events: int, runs: int
) -> dict[str, Any]:
    slow = {"grouping_window_seconds": 3600, "fuse_max_open_incidents": 100_000}
    group = await make_tenants(bench, tenants, "scale", **slow)

    async def ingest_rates(label: str) -> tuple[float, float]:
        """The same mix before and after loading: new keys, as many new signatures."""
        ours = await run_awfdrs(
            bench, workload(group, probe_events, signatures=200, label=label), 4
        )
        floor = await run_floor(
            bench, workload(group, probe_events, signatures=200, label=f"{label}-floor"), 4
        )
        return ours.rate, floor.rate

    await run_awfdrs(bench, workload(group, 2000, signatures=20, label="warm"), 4)  # warm-up
    empty_awfdrs, empty_floor = await ingest_rates("empty")
    seconds = await load(bench, group, events, incidents)
    loaded_awfdrs, loaded_floor = await ingest_rates("loaded")
    queries = await measure(bench, group, runs)
    async with bench.owner_engine.connect() as connection:
        stored = (await connection.execute(text("SELECT count(*) FROM events"))).scalar_one()
        size = (
            await connection.execute(text("SELECT pg_total_relation_size('events')"))
        ).scalar_one()
    return {
        "parameters": {"events": events, "incidents": incidents, "tenants": tenants,
                       "probe_events": probe_events, "query_runs": runs},
        "events_stored": stored,
        "events_table_bytes": size,
        "load_seconds": seconds,
        "queries": queries,
        "ingest_empty_events_per_s": empty_awfdrs,
        "ingest_loaded_events_per_s": loaded_awfdrs,
        "ingest_ratio_loaded_to_empty": loaded_awfdrs / empty_awfdrs,
        "floor_empty_events_per_s": empty_floor,
        "floor_loaded_events_per_s": loaded_floor,
        "floor_ratio_loaded_to_empty": loaded_floor / empty_floor,
    }  # fmt: skip
