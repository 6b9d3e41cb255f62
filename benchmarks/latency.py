"""Benchmark 2: detection latency under a steady event rate.

A batch goes out every ``1 / batches_per_second`` seconds whatever the previous one is doing, a
few of its failures of new signatures. For every incident opened, the time from the ingest call
returning to its workflow's first completed workflow task (it is running), from the server's
history. Dispatch happens before ``IngestEvents`` returns, so that time is often zero or less:
both that and the full time from the call being made are reported.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from temporalio.api.enums.v1 import EventType

from awfdrs.constants import incident_workflow_id
from awfdrs.contracts import IngestBatch
from benchmarks.harness import Bench, make_tenants, percentile


async def benchmark(bench: Bench, *, rate: int, seconds: float, tenants: int) -> dict[str, Any]:
    group = await make_tenants(bench, tenants, "latency", grouping_window_seconds=3600,
                               fuse_max_open_incidents=100_000)  # fmt: skip
    client = bench.client()
    batch_size = 100
    per_second = max(1, rate // batch_size)
    interval = 1.0 / per_second
    opened: dict[uuid.UUID, tuple[float, float]] = {}
    sent = 0

    async def one(n: int) -> None:
        nonlocal sent
        tenant = group[n % len(group)]
        now = datetime.now(UTC).isoformat()
        events = []
        for k in range(batch_size):
            failure = k < 3  # three new signatures a batch: something to detect
            events.append({
                "tenant_id": str(tenant.id), "workflow_id": str(tenant.workflow_id),
                "event_type": "payment.failed" if failure else "payment.captured",
                "idempotency_key": f"lat-{n}-{k}", "occurred_at": now,
                "payload": {"error": {"code": f"timeout_{n}_{k}"}} if failure else {"n": k},
            })  # fmt: skip
        called = time.time()
        result = await client.ingest_batch(IngestBatch(tenant_id=tenant.id, events=events))
        returned = time.time()
        sent += len(events)
        for change in result.incidents:
            if change.opened:
                opened[change.incident_id] = (called, returned)

    started = time.perf_counter()
    tasks = []
    for n in range(int(seconds * per_second)):
        tasks.append(asyncio.create_task(one(n)))
        await asyncio.sleep(max(0.0, started + (n + 1) * interval - time.perf_counter()))
    await asyncio.gather(*tasks)
    achieved = sent / (time.perf_counter() - started)
    after_return, from_call = [], []
    running_at_return = 0
    for incident_id, (called, returned) in opened.items():
        handle = bench.temporal.client.get_workflow_handle(incident_workflow_id(incident_id))
        for _ in range(50):
            history = await handle.fetch_history()
            done = EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
            completed = [e for e in history.events if e.event_type == done]
            if completed:
                break
            await asyncio.sleep(0.1)
        running = completed[0].event_time.ToDatetime(tzinfo=UTC).timestamp()
        after_return.append(max(0.0, running - returned))
        from_call.append(running - called)
        running_at_return += running <= returned
    return {
        "parameters": {"target_events_per_s": rate, "seconds": seconds, "tenants": tenants,
                       "batch_size": batch_size, "new_incidents_per_batch": 3},
        "achieved_events_per_s": achieved,
        "incidents": len(opened),
        "after_return_p50_s": percentile(sorted(after_return), 0.5),
        "after_return_p99_s": percentile(sorted(after_return), 0.99),
        "from_call_p50_s": percentile(sorted(from_call), 0.5),
        "from_call_p99_s": percentile(sorted(from_call), 0.99),
        "running_before_return_share": running_at_return / len(opened) if opened else 0.0,
    }  # fmt: skip
