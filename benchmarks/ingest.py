"""Benchmark 1: ingest throughput end to end, beside the floor and the naive path, one run.

- awfdrs: client → ``IngestEvents`` → events stored, incidents upserted and their workflows
  started, through a worker process (its peak RSS is benchmark 5);
- the floor: the same rows (validated and fingerprinted beforehand) written by raw asyncpg with
  the set-based statements, no SQLAlchemy, no Temporal: the persistence stage's limit here;
- naive: the seed document's style, per event get_by_idempotency_key, create, incident
  create-or-count, commit, through the same models.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from awfdrs.client import batches
from awfdrs.config import asyncpg_dsn
from awfdrs.contracts import IngestBatch, Outcome
from awfdrs.db.repositories import EventRepository, IncidentRepository
from awfdrs.db.repositories.events import INSERT_MANY_SQL
from awfdrs.db.repositories.incidents import UPSERT_SQL
from awfdrs.db.session import tenant_session
from awfdrs.enums import SEVERITY_ORDER
from awfdrs.intake import group_failures, prepare
from benchmarks.harness import Bench, CpuMeter, Tenant, Workload, make_tenants, workload


@dataclass
class Measured:
    events: int
    seconds: float
    stored: int

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def _jobs(work: Workload) -> list[tuple[uuid.UUID, list[dict[str, Any]]]]:
    """Batches per tenant, interleaved across tenants the way concurrent senders arrive."""
    per_tenant = [[(tenant, b) for b in batches(events)] for tenant, events in work.events.items()]
    jobs = []
    while any(per_tenant):
        for queue in per_tenant:
            if queue:
                jobs.append(queue.pop(0))
    return jobs


async def run_awfdrs(bench: Bench, work: Workload, concurrency: int) -> Measured:
    client = bench.client()
    limit = asyncio.Semaphore(concurrency)
    accepted = 0

    async def send(tenant: uuid.UUID, chunk: list[dict[str, Any]]) -> None:
        nonlocal accepted
        async with limit:
            result = await client.ingest_batch(IngestBatch(tenant_id=tenant, events=chunk))
        accepted += result.count(Outcome.ACCEPTED)

    jobs = _jobs(work)
    started = time.perf_counter()
    await asyncio.gather(*(send(t, c) for t, c in jobs))
    return Measured(work.total, time.perf_counter() - started, accepted)


async def run_floor(bench: Bench, work: Workload, concurrency: int) -> Measured:
    now = datetime.now(UTC)
    prepared = [(tenant, prepare(tenant, chunk, now)) for tenant, chunk in _jobs(work)]
    pool = await asyncpg.create_pool(
        asyncpg_dsn(bench.app_url), min_size=concurrency, max_size=concurrency
    )
    assert pool is not None
    stored = 0

    async def write(tenant: uuid.UUID, batch: Any) -> None:
        nonlocal stored
        rows = sorted((a.row for a in batch.accepted), key=lambda r: r.idempotency_key)
        async with pool.acquire() as connection, connection.transaction():
            await connection.execute("SELECT set_config('app.tenant_id', $1, true)", str(tenant))
            inserted = {
                r[0]
                for r in await connection.fetch(
                    INSERT_MANY_SQL, str(tenant), [r.workflow_id for r in rows],
                    [r.event_type for r in rows], [r.outcome.value for r in rows],
                    [r.payload_json for r in rows], [r.idempotency_key for r in rows],
                    [r.occurred_at for r in rows],
                    [r.severity.value if r.severity else None for r in rows],
                    [r.signature for r in rows], [r.fingerprint_version for r in rows],
                    [r.payload_hash for r in rows], [r.correlation_id for r in rows],
                )
            }  # fmt: skip
            groups = sorted(
                group_failures(a for a in batch.accepted if a.row.idempotency_key in inserted),
                key=lambda g: g.signature,
            )
            if groups:
                await connection.fetch(
                    UPSERT_SQL, str(tenant), [g.signature for g in groups],
                    [g.workflow_id for g in groups], [g.operation for g in groups],
                    [g.title for g in groups], [g.count for g in groups],
                    [g.first_seen_at for g in groups], [g.last_seen_at for g in groups],
                    [g.severity.value for g in groups], [g.correlation_id for g in groups],
                    [s.value for s in SEVERITY_ORDER],
                )  # fmt: skip
        stored += len(inserted)

    limit = asyncio.Semaphore(concurrency)

    async def bounded(tenant: uuid.UUID, batch: Any) -> None:
        async with limit:
            await write(tenant, batch)

    started = time.perf_counter()
    try:
        await asyncio.gather(*(bounded(t, b) for t, b in prepared))
    finally:
        elapsed = time.perf_counter() - started
        await pool.close()
    return Measured(work.total, elapsed, stored)


async def run_naive(bench: Bench, work: Workload) -> Measured:
    """One event at a time, each its own transaction, as the seed document's example."""
    now = datetime.now(UTC)
    stored = 0
    started = time.perf_counter()
    for tenant, events in work.events.items():
        for accepted in prepare(tenant, events, now).accepted:
            row = accepted.row
            async with tenant_session(bench.sessions, tenant) as session:
                repository = EventRepository(session, tenant_id=tenant)
                if await repository.get_by_idempotency_key(row.idempotency_key) is not None:
                    continue
                await repository.add(
                    workflow_id=row.workflow_id, event_type=row.event_type, outcome=row.outcome,
                    payload=accepted.event.payload.model_dump(mode="json"),
                    idempotency_key=row.idempotency_key, occurred_at=row.occurred_at,
                    severity=row.severity, signature=row.signature,
                    fingerprint_version=row.fingerprint_version, payload_hash=row.payload_hash,
                    correlation_id=row.correlation_id,
                )  # fmt: skip
                stored += 1
                if row.signature is not None:
                    incidents = IncidentRepository(session, tenant_id=tenant)
                    open_one = await incidents.find_open_by_signature(row.signature)
                    if open_one is None:
                        await incidents.add(
                            workflow_id=row.workflow_id, signature=row.signature,
                            operation=accepted.operation, title=accepted.title,
                            severity=row.severity, event_count=1,
                            first_seen_at=row.occurred_at, last_seen_at=row.occurred_at,
                        )  # fmt: skip
                    else:
                        await incidents.update(open_one, event_count=open_one.event_count + 1)
    return Measured(work.total, time.perf_counter() - started, stored)


async def _incidents_of(bench: Bench, tenants: list[Tenant]) -> int:
    """Incidents opened, hence incident workflows started, for these tenants."""
    async with bench.owner_engine.connect() as connection:
        found = await connection.exec_driver_sql(
            "SELECT count(*) FROM incidents WHERE tenant_id = ANY($1::uuid[])",
            ([t.id for t in tenants],),
        )
        return int(found.scalar_one())


async def profile(bench: Bench, events: int, concurrency: int) -> list[dict[str, Any]]:
    """Where awfdrs's ingest time goes: the same mix at more concurrency, and with every
    payload 1.5 KB larger (batches are cut at 256 KiB, so more batches per 1,000 events)."""
    rows = []
    variants = [("the benchmark's mix", 0, concurrency),
                ("twice the batches in flight", 0, concurrency * 2),
                ("payloads 1.5 KB larger", 1500, concurrency)]  # fmt: skip
    for label, pad, in_flight in variants:
        slow = {"grouping_window_seconds": 3600, "fuse_max_open_incidents": 100_000}
        group = await make_tenants(bench, 10, f"profile-{pad}-{in_flight}", **slow)
        work = workload(
            group, events, signatures=max(10, events // 100), label=f"p{pad}x{in_flight}"
        )
        for chunk in work.events.values():
            for event in chunk:
                if pad:
                    event["payload"] = {**event.get("payload", {}), "pad": "x" * pad}
        jobs = _jobs(work)
        size = sum(len(json.dumps(e)) for _, chunk in jobs for e in chunk) / work.total
        meter = CpuMeter([w.process.pid for w in bench.workers if w.process is not None])
        meter.start()
        measured = await run_awfdrs(bench, work, in_flight)
        cpu = meter.stop()
        rows.append({
            "variant": label, "bytes_per_event": size, "batches_per_1k_events":
            len(jobs) * 1000 / work.total, "concurrency": in_flight,
            "events_per_s": measured.rate,
            "cpu_seconds_per_1k_events": {k: v * 1000 / work.total for k, v in sorted(cpu.items())},
        })  # fmt: skip
    return rows


async def benchmark(
    bench: Bench, *, events: int, tenants: int, naive_events: int, concurrency: int
) -> dict[str, Any]:
    """All three paths on the same database, each on tenants of its own with the same mix."""
    slow = {"grouping_window_seconds": 3600, "fuse_max_open_incidents": 100_000}
    worker = bench.workers[0]
    sets = {
        name: await make_tenants(bench, tenants, name, **slow)
        for name in ("awfdrs", "floor", "naive")
    }
    # About one signature per hundred events, as in the mix (2k over 200k).
    signatures = max(10, events // 100)
    mixes = {
        name: workload(group, naive_events if name == "naive" else events, signatures=signatures)
        for name, group in sets.items()
    }
    worker.reset_peak()
    meter = CpuMeter([w.process.pid for w in bench.workers if w.process is not None])
    meter.start()
    ours = await run_awfdrs(bench, mixes["awfdrs"], concurrency)
    cpu = meter.stop()
    peak = worker.peak_rss
    opened = await _incidents_of(bench, sets["awfdrs"])
    floor = await run_floor(bench, mixes["floor"], concurrency)
    naive = await run_naive(bench, mixes["naive"])
    profiled = await profile(bench, max(2000, events // 10), concurrency)
    for name, measured in (("awfdrs", ours), ("floor", floor), ("naive", naive)):
        if measured.stored != mixes[name].unique:
            raise AssertionError(f"{name} stored {measured.stored} of {mixes[name].unique} events")
    return {
        "parameters": {
            "events": events, "tenants": tenants, "failure_share": 0.3, "signatures": signatures,
            "redelivery_share": 0.1, "conflict_share": 0.001, "batch_limits": "256 KiB / 1000",
            "concurrency": concurrency, "naive_events": naive_events,
        },
        "awfdrs_events_per_s": ours.rate,
        "floor_events_per_s": floor.rate,
        "naive_events_per_s": naive.rate,
        "ratio_to_floor": ours.rate / floor.rate,
        "ratio_to_naive": ours.rate / naive.rate,
        "worker_peak_rss_mb": peak / 2**20,
        # Where the awfdrs run's time went: CPU seconds per 1,000 events, by component.
        "cpu_seconds_per_1k_events": {k: v * 1000 / mixes["awfdrs"].total
                                      for k, v in sorted(cpu.items())},
        "cpu_cores_busy": sum(cpu.values()) / ours.seconds,
        "incident_workflows_started": opened,
        "profile": profiled,
        "seconds": {"awfdrs": ours.seconds, "floor": floor.seconds, "naive": naive.seconds},
    }  # fmt: skip


__all__ = ["Tenant", "benchmark"]
