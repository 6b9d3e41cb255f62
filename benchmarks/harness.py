"""The stack a benchmark runs on: a fresh database, a Temporal dev server, worker processes."""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from awfdrs import logs
from awfdrs.admin import create_tenant, ensure_vendor, ensure_workflow
from awfdrs.client import AwfdrsClient
from awfdrs.config import Settings
from awfdrs.constants import SEARCH_ATTRIBUTES
from awfdrs.contracts import TenantSettings
from awfdrs.db.session import build_engine, make_sessionmaker
from awfdrs.devstack.binaries import temporal_cli
from awfdrs.devstack.postgres import LOCAL_ADMIN_URL, scratch_database
from awfdrs.remediation.credentials import CredentialCipher
from awfdrs.signing import CommandSigner, new_signing_key
from awfdrs.vendor_connections import connect

# The benchmark's workers verify what its client signs.
SIGNING_KEY = new_signing_key()
SIGNER = CommandSigner(SIGNING_KEY)


class CpuMeter:
    """CPU seconds spent by each part of the stack between ``start`` and ``stop``: the load
    generator (this process, the client included), the worker processes, the Temporal dev
    server and PostgreSQL (its backends included). A process that started in between counts
    whole; one that exited in between is missed (the pools keep their connections open)."""

    def __init__(self, worker_pids: Sequence[int], api_pids: Sequence[int] = ()) -> None:
        self._worker_pids = set(worker_pids)
        self._api_pids = set(api_pids)
        self._before: dict[int, tuple[str, float]] = {}

    def _component(self, proc: psutil.Process) -> str | None:
        if proc.pid == os.getpid():
            return "load generator"
        if proc.pid in self._worker_pids:
            return "worker"
        if proc.pid in self._api_pids:
            return "API"
        name = proc.name()
        if name.startswith("temporal"):
            return "Temporal server"
        if name.startswith("postgres"):
            return "PostgreSQL"
        return None

    def _sample(self) -> dict[int, tuple[str, float]]:
        found: dict[int, tuple[str, float]] = {}
        for proc in psutil.process_iter():
            try:
                component = self._component(proc)
                if component is not None:
                    times = proc.cpu_times()
                    found[proc.pid] = (component, times.user + times.system)
            except psutil.Error:
                continue
        return found

    def start(self) -> None:
        self._before = self._sample()

    def stop(self) -> dict[str, float]:
        totals: dict[str, float] = {}
        for pid, (component, seconds) in self._sample().items():
            spent = seconds - self._before[pid][1] if pid in self._before else seconds
            totals[component] = totals.get(component, 0.0) + spent
        return totals


def percentile(values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) by linear interpolation; 0 for no values."""
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=1000, method="inclusive")[max(0, int(q * 1000) - 1)]


@dataclass
class Bench:
    """One benchmark run's infrastructure."""

    admin_url: str
    owner_url: str
    app_url: str
    temporal: WorkflowEnvironment
    task_queue: str
    work_dir: Path
    settings: Settings
    app_engine: AsyncEngine
    owner_engine: AsyncEngine
    workers: list[WorkerProcess] = field(default_factory=list)
    apis: list[ApiProcess] = field(default_factory=list)

    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]:
        return make_sessionmaker(self.app_engine)

    @property
    def owner_sessions(self) -> async_sessionmaker[AsyncSession]:
        return make_sessionmaker(self.owner_engine)

    @property
    def temporal_address(self) -> str:
        return self.temporal.client.service_client.config.target_host

    def client(self) -> AwfdrsClient:
        return AwfdrsClient(self.temporal.client, self.task_queue, signer=SIGNER)

    async def start_api(self) -> ApiProcess:
        """The HTTP edge as its own process, on this run's database and task queue."""
        api = ApiProcess(
            {
                "AWFDRS_DATABASE_URL": self.app_url,
                "AWFDRS_TEMPORAL_ADDRESS": self.temporal_address,
                "AWFDRS_TASK_QUEUE": self.task_queue,
                "AWFDRS_STACK_FILE": str(self.work_dir / "no-stack.json"),
            },
            self.work_dir / "api.log",
        )
        await api.start()
        self.apis.append(api)
        return api

    async def start_worker(self, **env: str) -> WorkerProcess:
        worker = WorkerProcess(
            {
                "AWFDRS_DATABASE_URL": self.app_url,
                "AWFDRS_TEMPORAL_ADDRESS": self.temporal_address,
                "AWFDRS_TASK_QUEUE": self.task_queue,
                "AWFDRS_LOG_LEVEL": "WARNING",
                "AWFDRS_COMMAND_SIGNING_KEY": SIGNING_KEY,
                **env,
            },
            self.work_dir / f"worker-{len(self.workers)}.log",
        )
        await worker.start()
        self.workers.append(worker)
        return worker


class WorkerProcess:
    """``python -m awfdrs.worker``, with its resident memory sampled while it runs."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self._env = {**os.environ, **env}
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self.peak_rss = 0
        self._sampler: asyncio.Task[None] | None = None

    def _spawn(self) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "awfdrs.worker"],
                env={**self._env, "AWFDRS_LOG_LEVEL": "INFO"},
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    async def start(self) -> None:
        self.process = self._spawn()
        deadline = time.monotonic() + 60
        while b"worker polling" not in self.log.read_bytes():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker did not start: {self.log.read_text()[-2000:]}")
            await asyncio.sleep(0.1)
        self._sampler = asyncio.create_task(self._sample())

    async def _sample(self) -> None:
        assert self.process is not None
        proc = psutil.Process(self.process.pid)
        while True:
            try:
                self.peak_rss = max(self.peak_rss, proc.memory_info().rss)
            except psutil.Error:
                return
            await asyncio.sleep(0.1)

    def reset_peak(self) -> None:
        self.peak_rss = 0

    def stop(self) -> None:
        if self._sampler:
            self._sampler.cancel()
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()


class ApiProcess(WorkerProcess):
    """``awfdrs api`` on a free port, its resident memory sampled like a worker's."""

    url = ""

    def _spawn(self) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "awfdrs", "api", "--port", "0"],
                env={**self._env, "AWFDRS_LOG_LEVEL": "INFO", "AWFDRS_LOG_FORMAT": "console"},
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    async def start(self) -> None:
        # The log of an earlier run in the same work directory names another port: read on.
        offset = self.log.stat().st_size if self.log.exists() else 0
        self.process = self._spawn()
        deadline = time.monotonic() + 60
        marker = b"api listening on "
        while marker not in self.log.read_bytes()[offset:]:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"api did not start: {self.log.read_text()[-2000:]}")
            await asyncio.sleep(0.1)
        self.url = self.log.read_bytes()[offset:].split(marker, 1)[1].split()[0].decode()
        self._sampler = asyncio.create_task(self._sample())


@asynccontextmanager
async def bench_stack(work_dir: Path) -> AsyncIterator[Bench]:
    """A fresh database (AWFDRS_BENCH_DATABASE_URL, else the local server, else embedded),
    migrated; an in-memory Temporal dev server; no worker yet."""
    logs.configure("WARNING", "console")
    await asyncio.to_thread(work_dir.mkdir, parents=True, exist_ok=True)
    admin_url = os.environ.get("AWFDRS_BENCH_DATABASE_URL", LOCAL_ADMIN_URL)
    async with scratch_database(admin_url, work_dir, "awfdrs_bench") as database:
        settings = Settings(db_pool_size=10, db_max_overflow=10)
        temporal = await WorkflowEnvironment.start_local(
            dev_server_existing_path=temporal_cli(),
            data_converter=pydantic_data_converter,
            search_attributes=SEARCH_ATTRIBUTES,
            dev_server_log_level="error",
        )
        bench = Bench(
            admin_url=database.admin_url,
            owner_url=database.owner_url,
            app_url=database.app_url,
            temporal=temporal,
            task_queue=f"bench-{uuid.uuid4().hex[:8]}",
            work_dir=work_dir,
            settings=settings,
            app_engine=build_engine(database.app_url, settings),
            owner_engine=build_engine(database.owner_url, settings),
        )
        try:
            yield bench
        finally:
            for process in [*bench.apis, *bench.workers]:
                process.stop()
            await bench.app_engine.dispose()
            await bench.owner_engine.dispose()
            await temporal.shutdown()


@dataclass(frozen=True)
class Tenant:
    id: uuid.UUID
    workflow_id: uuid.UUID


async def make_tenants(bench: Bench, count: int, prefix: str, **settings: Any) -> list[Tenant]:
    tenants = []
    for n in range(count):
        tenant = await create_tenant(
            bench.owner_sessions, f"{prefix}-{n}-{secrets.token_hex(3)}", TenantSettings(**settings)
        )
        flow = await ensure_workflow(bench.sessions, tenant.id, "payments")
        tenants.append(Tenant(tenant.id, flow.id))
    return tenants


async def register_vendor(bench: Bench, name: str, base_url: str) -> None:
    await ensure_vendor(
        bench.owner_sessions,
        name,
        base_url,
        rate_limit_per_minute=1_000_000,
        failure_threshold=1_000_000,
    )


async def connect_vendor(bench: Bench, tenant_id: uuid.UUID, name: str) -> None:
    """The tenant's connection to a registered vendor, with its defaults and no credentials:
    without one, its retries would go to a human instead."""
    await connect(bench.sessions, tenant_id, name, cipher=CredentialCipher(None))


@dataclass
class Workload:
    """Per tenant, the events to send, in sending order; redeliveries and conflicts included."""

    events: dict[uuid.UUID, list[dict[str, Any]]]
    unique: int
    redelivered: int
    conflicts: int
    failures: int

    @property
    def total(self) -> int:
        return sum(len(v) for v in self.events.values())


def workload(
    tenants: Sequence[Tenant],
    total: int,
    *,
    failure_share: float = 0.3,
    signatures: int = 2000,
    redelivery_share: float = 0.1,
    conflict_share: float = 0.001,
    seed: int = 7,
    vendor: str | None = None,
    label: str = "evt",
) -> Workload:
    """A realistic mix: failures over ``signatures`` error codes, neutral events otherwise,
    some deliveries repeated as they are, a few repeated with a changed payload. ``label``
    prefixes keys and error codes, so two workloads share neither keys nor signatures."""
    rng = random.Random(seed)
    per_tenant_signatures = max(1, signatures // len(tenants))
    now = datetime.now(UTC)
    fresh = int(total * (1 - redelivery_share - conflict_share))
    events: dict[uuid.UUID, list[dict[str, Any]]] = {t.id: [] for t in tenants}
    failures = 0
    for n in range(fresh):
        tenant = tenants[n % len(tenants)]
        occurred = (now - timedelta(seconds=rng.randint(0, 3600))).isoformat()
        if rng.random() < failure_share:
            failures += 1
            code = f"{label}_gateway_timeout_{rng.randrange(per_tenant_signatures)}"
            payload: dict[str, Any] = {
                "order_id": n,
                "amount": rng.randint(100, 99_999),
                "error": {"code": code, "message": "Gateway timeout after 30s", "vendor": vendor},
                "retry": {"method": "POST", "path": f"/v1/charges/{n}/capture", "reversible": True},
            }
            event_type = "payment.failed"
        else:
            payload = {"order_id": n, "amount": rng.randint(100, 99_999), "currency": "EUR"}
            event_type = "payment.captured"
        events[tenant.id].append({
            "tenant_id": str(tenant.id), "workflow_id": str(tenant.workflow_id),
            "event_type": event_type, "idempotency_key": f"{label}-{n:09d}",
            "occurred_at": occurred, "correlation_id": f"trace-{n}", "payload": payload,
        })  # fmt: skip
    redelivered = conflicts = 0
    for tenant_events in events.values():
        originals = list(tenant_events)
        repeats = int(len(originals) * redelivery_share / (1 - redelivery_share - conflict_share))
        for _ in range(repeats):
            tenant_events.append(dict(rng.choice(originals)))
            redelivered += 1
        for _ in range(max(1, int(len(originals) * conflict_share))):
            changed = dict(rng.choice(originals))
            changed["payload"] = {**changed["payload"], "amount": -1}
            tenant_events.append(changed)
            conflicts += 1
        rng.shuffle(tenant_events)
    return Workload(events, fresh, redelivered, conflicts, failures)
