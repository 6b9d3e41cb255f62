"""Benchmark 3: incidents per second through the whole lifecycle, NEW → RESOLVED.

Zero-length grouping and verification windows, a local vendor that answers 200 at once;
incidents of one affected request, and incidents of twenty (each request sent on its own, under
its own key); also what each incident costs in Temporal history events and actions.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

from sqlalchemy import func, select
from temporalio.api.enums.v1 import EventType

from awfdrs.constants import incident_workflow_id
from awfdrs.db.models import Incident
from awfdrs.db.session import tenant_session
from awfdrs.devstack.servers import FlakyVendor
from awfdrs.enums import IncidentStatus
from benchmarks.harness import Bench, CpuMeter, connect_vendor, make_tenants, register_vendor

# What Temporal bills as an action, per history event type.
ACTIONS = {
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED,
    EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
    EventType.EVENT_TYPE_TIMER_STARTED,
    EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES,
    EventType.EVENT_TYPE_MARKER_RECORDED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED,
}


async def _through(bench: Bench, incidents: int, label: str, requests: int = 1) -> dict[str, Any]:
    """``incidents`` incidents of ``requests`` affected requests each, of a fresh tenant, from
    ingest to RESOLVED; rates and CPU."""
    [tenant] = await make_tenants(
        bench, 1, label, grouping_window_seconds=0, verification_window_seconds=0,
        confidence_threshold=0.5, budget_actions_per_hour=100_000,
        fuse_max_open_incidents=100_000, action_retry_initial_seconds=0.1,
    )  # fmt: skip
    await connect_vendor(bench, tenant.id, "lifecycle-vendor")
    events = [
        {"tenant_id": str(tenant.id), "workflow_id": str(tenant.workflow_id),
         "event_type": "payment.failed", "idempotency_key": f"{label}-{n}-{r}",
         "occurred_at": "2026-12-01T00:00:00+00:00",
         "payload": {"error": {"code": f"gateway_timeout_{n}", "vendor": "lifecycle-vendor"},
                     "retry": {"method": "POST", "path": f"/v1/{n}/{r}", "reversible": True}}}
        for n in range(incidents)
        for r in range(requests)
    ]  # fmt: skip
    meter = CpuMeter([w.process.pid for w in bench.workers if w.process is not None])
    meter.start()
    started = time.perf_counter()
    await bench.client().ingest(tenant.id, events, concurrency=4)
    resolved = 0
    while resolved < incidents:
        await asyncio.sleep(0.25)
        async with tenant_session(bench.sessions, tenant.id) as session:
            query = (
                select(func.count())
                .select_from(Incident)
                .where(Incident.status == IncidentStatus.RESOLVED)
            )
            resolved = int((await session.execute(query)).scalar_one())
        if time.perf_counter() - started > 60 + incidents:
            raise TimeoutError(f"only {resolved} of {incidents} incidents resolved")
    elapsed = time.perf_counter() - started
    cpu = meter.stop()
    async with tenant_session(bench.sessions, tenant.id) as session:
        sample = (await session.execute(select(Incident.id).limit(20))).scalars().all()
    return {
        "workers": len(bench.workers),
        "requests_per_incident": requests,
        "incidents_per_s": incidents / elapsed,
        "requests_per_s": incidents * requests / elapsed,
        "seconds": elapsed,
        "cpu_ms_per_incident": {k: v * 1000 / incidents for k, v in sorted(cpu.items())},
        "cpu_cores_busy": sum(cpu.values()) / elapsed,
        "sample": sample,
    }


async def benchmark(
    bench: Bench, *, incidents: int, workers: int = 2, wide: int = 20
) -> dict[str, Any]:
    """With the one worker of the suite: incidents of one request, then incidents of ``wide``
    requests (a quarter as many); then the one-request run with ``workers`` processes."""
    vendor = FlakyVendor().start()
    extra = []
    try:
        await register_vendor(bench, "lifecycle-vendor", vendor.url)
        runs = [await _through(bench, incidents, "lifecycle")]
        wide_run = await _through(bench, max(1, incidents // 4), "lifecycle-wide", wide)
        wide_run.pop("sample")
        while len(bench.workers) < workers:
            extra.append(await bench.start_worker())
        if extra:
            runs.append(await _through(bench, incidents, f"lifecycle-{workers}w"))
        kinds: Counter[EventType.ValueType] = Counter()
        ids = runs[0].pop("sample")
        for run in runs[1:]:
            run.pop("sample")
        for incident_id in ids:
            history = await bench.temporal.client.get_workflow_handle(
                incident_workflow_id(incident_id)
            ).fetch_history()
            kinds.update(e.event_type for e in history.events)
        per = {EventType.Name(k): v / len(ids) for k, v in sorted(kinds.items())}
        actions = sum(v for k, v in kinds.items() if k in ACTIONS) / len(ids)
        best = max(runs, key=lambda run: run["incidents_per_s"])
        return {
            "parameters": {"incidents": incidents, "windows_seconds": 0, "vendor": "local, 200",
                           "path": "NEW → ANALYZING → retry → ACTIONED → RESOLVED",
                           "worker_processes": [run["workers"] for run in runs],
                           "wide_incidents": max(1, incidents // 4), "wide_requests": wide},
            "incidents_per_s": best["incidents_per_s"],
            "one_worker_incidents_per_s": runs[0]["incidents_per_s"],
            "runs": runs,
            "wide": wide_run,
            "vendor_calls": len(vendor.requests),
            "history_events_per_incident": sum(kinds.values()) / len(ids),
            "temporal_actions_per_incident": actions,
            "history_event_types_per_incident": per,
            "cpu_ms_per_incident": runs[0]["cpu_ms_per_incident"],
            "cpu_cores_busy": runs[0]["cpu_cores_busy"],
        }  # fmt: skip
    finally:
        for worker in extra:
            worker.stop()
            bench.workers.remove(worker)
        vendor.stop()
