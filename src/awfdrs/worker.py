"""The worker process: every awfdrs workflow and activity on one task queue.

Run it as ``awfdrs worker`` or ``python -m awfdrs.worker``; start as many as you like on the same
task queue. SIGTERM and SIGINT stop polling, let running activities finish (up to the graceful
shutdown timeout), then exit.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from awfdrs import logs
from awfdrs.activities.actions import ActionActivities
from awfdrs.activities.controls import ControlActivities
from awfdrs.activities.incidents import IncidentActivities
from awfdrs.activities.ingest import IngestActivities
from awfdrs.activities.kill_switches import KillSwitchActivities
from awfdrs.activities.principals import PrincipalActivities
from awfdrs.activities.requests import RequestActivities
from awfdrs.analysis import Analyzer, load_analyzer
from awfdrs.client import connect_temporal
from awfdrs.config import Settings, asyncpg_dsn, load_settings
from awfdrs.db.session import build_engine, make_sessionmaker
from awfdrs.dispatcher import Dispatcher
from awfdrs.metrics import Metrics, prometheus_runtime, sample_forever
from awfdrs.remediation.credentials import CredentialCipher
from awfdrs.remediation.executors import EscalateExecutor, RetryExecutor, build_executors
from awfdrs.remediation.gate import default_gate
from awfdrs.signing import CommandSigner, signer_or_none
from awfdrs.workflows.incident import IncidentWorkflow
from awfdrs.workflows.ingest import IngestEventsWorkflow
from awfdrs.workflows.kill_switch import KillSwitchWorkflow

log = logging.getLogger("awfdrs.worker")
GRACEFUL_SHUTDOWN = timedelta(seconds=15)


def build_worker(
    client: Client,
    sessions: async_sessionmaker[AsyncSession],
    http: httpx.AsyncClient,
    *,
    task_queue: str,
    analyzer: Analyzer,
    max_concurrent_activities: int = 10,
    max_concurrent_local_activities: int = 10,
    metrics: Metrics | None = None,
    sandboxed: bool = True,
    links: dict[str, str] | None = None,
    signer: CommandSigner | None = None,
    credentials: CredentialCipher | None = None,
) -> Worker:
    """A worker with every workflow and activity, on injected resources (tests build their own).

    Activity slots are bounded together with the connection pool: every local activity holds a
    connection for its whole run, a regular one only around its vendor call, so the pool must
    hold ``max_concurrent_local_activities + max_concurrent_activities`` connections or work
    queues on the pool instead of on Temporal (where updates and shutdown are not blocked).
    Workflow task slots equal the local activity slots: each workflow task runs at most one
    local activity at a time, so a burst of incidents waits in Temporal's task queue (where
    waiting costs nothing) instead of in the worker's local activity queue, where the wait
    counts against the activity's few-second budget: measured, 2,000 incidents at once with
    100 workflow task slots timed nearly every local activity out, and their retries kept the
    worker saturated for minutes while almost nothing resolved.
    ``sandboxed`` runs the workflows in Temporal's sandbox, which re-imports their modules for
    every workflow started: safer while developing, measurably slower in production.
    """
    metrics = metrics or Metrics()
    gate = default_gate()
    ingest = IngestActivities(sessions, metrics)
    incidents = IncidentActivities(sessions, analyzer, gate, metrics)
    requests = RequestActivities(sessions, RetryExecutor(http), gate, metrics, credentials)
    actions = ActionActivities(sessions, build_executors(http), metrics, links)
    controls = ControlActivities(sessions, gate, EscalateExecutor(http))
    switches = KillSwitchActivities(sessions, client, signer)
    principals = PrincipalActivities(sessions, signer)
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[IngestEventsWorkflow, IncidentWorkflow, KillSwitchWorkflow],
        activities=[
            ingest.ingest_batch,
            incidents.analyze,
            incidents.decide,
            incidents.settle_round,
            incidents.conclude_verification,
            incidents.review,
            incidents.close,
            incidents.note_phase,
            requests.send,
            actions.execute,
            actions.abandon,
            controls.probe,
            controls.escalate_episode,
            switches.activate,
            switches.release,
            switches.expire,
            switches.list_active,
            principals.verify,
        ],
        max_concurrent_activities=max_concurrent_activities,
        max_concurrent_local_activities=max_concurrent_local_activities,
        max_concurrent_workflow_tasks=max_concurrent_local_activities,
        workflow_runner=SandboxedWorkflowRunner() if sandboxed else UnsandboxedWorkflowRunner(),
        graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
    )


def slots(settings: Settings) -> tuple[int, int]:
    """(regular, local) activity slots that the connection pool can serve at once."""
    connections = settings.db_pool_size + settings.db_max_overflow
    local = max(1, connections // 2)
    return max(1, connections - local), local


@asynccontextmanager
async def worker_resources(
    settings: Settings,
) -> AsyncIterator[tuple[Worker, Client, Dispatcher | None]]:
    """Engine, session factory, HTTP and Temporal clients, metrics: built once, closed after.

    With ``AWFDRS_METRICS_PORT`` set, the SDK's metrics and awfdrs's own are served there and
    the gauges are sampled every ``AWFDRS_METRICS_SAMPLE_SECONDS``.
    """
    engine = build_engine(settings.require_database_url(), settings)
    sampler: asyncio.Task[None] | None = None
    try:
        runtime = prometheus_runtime(settings.metrics_port) if settings.metrics_port else None
        metrics = Metrics(runtime.metric_meter if runtime else None)
        sessions = make_sessionmaker(engine)
        client = await connect_temporal(settings, runtime)
        if runtime is not None:
            every = timedelta(seconds=settings.metrics_sample_seconds)
            sampler = asyncio.create_task(sample_forever(metrics, sessions, every))
            log.info("metrics on :%d/metrics", settings.metrics_port)
        regular, local = slots(settings)
        dispatcher = (
            Dispatcher(
                sessions,
                client,
                settings.task_queue,
                listen_dsn=asyncpg_dsn(settings.require_database_url()),
                metrics=metrics,
            )
            if settings.dispatcher
            else None
        )
        async with httpx.AsyncClient() as http:
            yield (
                build_worker(
                    client,
                    sessions,
                    http,
                    task_queue=settings.task_queue,
                    analyzer=load_analyzer(settings.analyzer),
                    max_concurrent_activities=regular,
                    max_concurrent_local_activities=local,
                    metrics=metrics,
                    sandboxed=settings.workflow_sandbox,
                    links=settings.escalation_links(),
                    signer=signer_or_none(settings.command_signing_key),
                    credentials=CredentialCipher.from_settings(settings),
                ),
                client,
                dispatcher,
            )
    finally:
        if sampler is not None:
            sampler.cancel()
        await engine.dispose()


async def run_worker(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Poll until SIGTERM / SIGINT (or ``stop`` is set), then shut down gracefully."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with worker_resources(settings) as (worker, _client, dispatcher), worker:
        log.info(
            "worker polling task queue %s on %s", settings.task_queue, settings.temporal_address
        )
        delivering = asyncio.create_task(dispatcher.run(stop)) if dispatcher else None
        await stop.wait()
        log.info("shutting down: finishing running activities")
        if delivering is not None:
            await delivering


def main() -> None:
    settings = load_settings()
    logs.configure(settings.log_level, settings.log_format)
    asyncio.run(run_worker(settings))
    # The SDK's native runtime may abort the interpreter at exit (sdk-python issue 300).
    os._exit(0)


if __name__ == "__main__":
    main()
