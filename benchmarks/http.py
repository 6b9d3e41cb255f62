"""Benchmark 6: ingest over HTTP (``awfdrs api`` as its own process), beside the floor.

- throughput: the ingest benchmark's mix (same batches: 256 KiB or 1,000 events) posted to
  ``/v1/events`` with one ingest key per tenant, several requests in flight, against the floor
  (the same rows by raw asyncpg, set-based) in the same run;
- steady load: 1,000 events/s in 100-event requests, a few new failures in each: request
  latency, and detection from the 2xx to the incident workflow running (its first completed
  workflow task, from the server's history): the outbox and the worker's dispatcher;
- the API process's peak RSS, and CPU per 1,000 events by component.

The load generator (httpx, in this process) shares the machine's cores with everything else;
its CPU is reported so that what is the server's and what is the client's can be told apart.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
from temporalio.api.enums.v1 import EventType

from awfdrs.api.keys import Role, create_key
from awfdrs.client import batches
from awfdrs.constants import incident_workflow_id
from awfdrs.dispatcher import outbox_stats
from benchmarks.harness import Bench, CpuMeter, Tenant, make_tenants, percentile, workload
from benchmarks.ingest import Measured, run_floor


async def _keys(bench: Bench, tenants: list[Tenant]) -> dict[uuid.UUID, str]:
    return {t.id: (await create_key(bench.sessions, t.id, Role.INGEST))[0] for t in tenants}


async def run_http(
    url: str, keys: dict[uuid.UUID, str], events: dict[uuid.UUID, list[dict[str, Any]]],
    concurrency: int,
) -> tuple[Measured, list[float]]:  # fmt: skip
    """Post every batch (bodies serialised beforehand); returns the measure and the latencies."""
    jobs: list[tuple[uuid.UUID, bytes, int]] = []
    per_tenant = [
        [(tenant, json.dumps({"events": b}).encode(), len(b)) for b in batches(chunk)]
        for tenant, chunk in events.items()
    ]
    while any(per_tenant):  # interleaved across tenants, as concurrent senders arrive
        for queue in per_tenant:
            if queue:
                jobs.append(queue.pop(0))
    limit = asyncio.Semaphore(concurrency)
    accepted = 0
    latencies: list[float] = []
    total = sum(n for _, _, n in jobs)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:

        async def send(tenant: uuid.UUID, body: bytes) -> None:
            nonlocal accepted
            headers = {"Authorization": f"Bearer {keys[tenant]}",
                       "Content-Type": "application/json"}  # fmt: skip
            async with limit:
                called = time.perf_counter()
                response = await http.post("/v1/events", content=body, headers=headers)
                latencies.append(time.perf_counter() - called)
            response.raise_for_status()
            accepted += response.json()["accepted"]

        started = time.perf_counter()
        await asyncio.gather(*(send(t, b) for t, b, _ in jobs))
        elapsed = time.perf_counter() - started
    return Measured(total, elapsed, accepted), latencies


async def steady(
    bench: Bench, url: str, *, rate: int, seconds: float, tenants: int
) -> dict[str, Any]:
    group = await make_tenants(bench, tenants, "http-latency", grouping_window_seconds=3600,
                               fuse_max_open_incidents=100_000)  # fmt: skip
    keys = await _keys(bench, group)
    batch_size = 100
    per_second = max(1, rate // batch_size)
    interval = 1.0 / per_second
    opened: dict[uuid.UUID, float] = {}
    latencies: list[float] = []
    sent = 0
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:

        async def one(n: int) -> None:
            nonlocal sent
            tenant = group[n % len(group)]
            now = datetime.now(UTC).isoformat()
            events = []
            for k in range(batch_size):
                failure = k < 3  # three new signatures a request: something to detect
                events.append({
                    "workflow_id": str(tenant.workflow_id),
                    "event_type": "payment.failed" if failure else "payment.captured",
                    "idempotency_key": f"http-lat-{n}-{k}", "occurred_at": now,
                    "payload": {"error": {"code": f"timeout_{n}_{k}"}} if failure else {"n": k},
                })  # fmt: skip
            body = json.dumps({"events": events}).encode()
            headers = {"Authorization": f"Bearer {keys[tenant.id]}",
                       "Content-Type": "application/json"}  # fmt: skip
            called = time.perf_counter()
            response = await http.post("/v1/events", content=body, headers=headers)
            returned_wall = time.time()
            latencies.append(time.perf_counter() - called)
            response.raise_for_status()
            sent += batch_size
            for change in response.json()["incidents"]:
                if change["opened"]:
                    opened[uuid.UUID(change["incident_id"])] = returned_wall

        started = time.perf_counter()
        tasks = []
        for n in range(int(seconds * per_second)):
            tasks.append(asyncio.create_task(one(n)))
            await asyncio.sleep(max(0.0, started + (n + 1) * interval - time.perf_counter()))
        await asyncio.gather(*tasks)
        achieved = sent / (time.perf_counter() - started)
    detection: list[float] = []
    for incident_id, returned in opened.items():
        handle = bench.temporal.client.get_workflow_handle(incident_workflow_id(incident_id))
        completed = []
        for _ in range(100):
            try:
                history = await handle.fetch_history()
            except Exception:  # not started yet: the dispatcher has not reached it
                await asyncio.sleep(0.1)
                continue
            done = EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
            completed = [e for e in history.events if e.event_type == done]
            if completed:
                break
            await asyncio.sleep(0.1)
        if not completed:
            raise AssertionError(f"incident {incident_id} has no running workflow after 10 s")
        running = completed[0].event_time.ToDatetime(tzinfo=UTC).timestamp()
        detection.append(max(0.0, running - returned))
    latencies.sort()
    detection.sort()
    return {
        "parameters": {"target_events_per_s": rate, "seconds": seconds, "tenants": tenants,
                       "events_per_request": batch_size, "new_incidents_per_request": 3},
        "achieved_events_per_s": achieved,
        "requests": len(latencies),
        "incidents": len(opened),
        "request_p50_s": percentile(latencies, 0.5),
        "request_p99_s": percentile(latencies, 0.99),
        "detection_p50_s": percentile(detection, 0.5),
        "detection_p99_s": percentile(detection, 0.99),
    }  # fmt: skip


async def _drain(bench: Bench, limit: float = 120.0) -> float:
    """Seconds until the outbox is empty (the throughput run's incidents all started)."""
    started = time.perf_counter()
    while time.perf_counter() - started < limit:
        depth, _ = await outbox_stats(bench.sessions)
        if depth == 0:
            break
        await asyncio.sleep(0.5)
    return time.perf_counter() - started


async def benchmark(
    bench: Bench, *, events: int, tenants: int, concurrency: int, rate: int, seconds: float
) -> dict[str, Any]:
    api = bench.apis[0] if bench.apis else await bench.start_api()
    slow = {"grouping_window_seconds": 3600, "fuse_max_open_incidents": 100_000}
    ours_group = await make_tenants(bench, tenants, "http", **slow)
    floor_group = await make_tenants(bench, tenants, "http-floor", **slow)
    signatures = max(10, events // 100)
    ours_mix = workload(ours_group, events, signatures=signatures, label="http")
    floor_mix = workload(floor_group, events, signatures=signatures, label="httpfloor")
    keys = await _keys(bench, ours_group)
    api.reset_peak()
    meter = CpuMeter(
        [w.process.pid for w in bench.workers if w.process is not None],
        [a.process.pid for a in bench.apis if a.process is not None],
    )
    meter.start()
    ours, latencies = await run_http(api.url, keys, ours_mix.events, concurrency)
    cpu = meter.stop()
    peak = api.peak_rss
    floor = await run_floor(bench, floor_mix, concurrency)
    for name, measured, mix in (("http", ours, ours_mix), ("floor", floor, floor_mix)):
        if measured.stored != mix.unique:
            raise AssertionError(f"{name} stored {measured.stored} of {mix.unique} events")
    # The steady phase measures 1,000 events/s on its own, not on top of the throughput run's
    # backlog: first wait until the dispatchers delivered every notice that run left.
    drained = await _drain(bench)
    steady_state = await steady(
        bench, api.url, rate=rate, seconds=seconds, tenants=min(10, tenants)
    )
    steady_state["backlog_drained_after_s"] = drained
    latencies.sort()
    return {
        "parameters": {
            "events": events, "tenants": tenants, "failure_share": 0.3, "signatures": signatures,
            "redelivery_share": 0.1, "conflict_share": 0.001, "batch_limits": "256 KiB / 1000",
            "concurrency": concurrency,
        },
        "http_events_per_s": ours.rate,
        "floor_events_per_s": floor.rate,
        "ratio_to_floor": ours.rate / floor.rate,
        "throughput_request_p50_s": percentile(latencies, 0.5),
        "throughput_request_p99_s": percentile(latencies, 0.99),
        "api_peak_rss_mb": peak / 2**20,
        "cpu_seconds_per_1k_events": {k: v * 1000 / ours_mix.total
                                      for k, v in sorted(cpu.items())},
        "cpu_cores_busy": sum(cpu.values()) / ours.seconds,
        "steady": steady_state,
        "seconds": {"http": ours.seconds, "floor": floor.seconds},
    }  # fmt: skip


__all__ = ["benchmark"]
