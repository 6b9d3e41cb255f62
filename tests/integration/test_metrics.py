"""The Prometheus endpoint: Temporal's metrics and awfdrs's own, moved by the right amounts."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from awfdrs.analysis.rules import RulesAnalyzer
from awfdrs.client import AwfdrsClient
from awfdrs.devstack.servers import EscalationReceiver, FlakyVendor
from awfdrs.dispatcher import Dispatcher
from awfdrs.enums import IncidentStatus
from awfdrs.metrics import Metrics, prometheus_runtime, sample
from awfdrs.worker import build_worker
from tests.support.pipeline import Stack, event, retryable
from tests.support.principals import SIGNER


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    """The sum over every sample of ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


@pytest.fixture
async def metered(
    temporal_env: WorkflowEnvironment,
    committed_sessions: async_sessionmaker[AsyncSession],
    task_queue: str,
    vendor: FlakyVendor,
    receiver: EscalationReceiver,
) -> AsyncIterator[tuple[Stack, Metrics, int]]:
    port = free_port()
    runtime = prometheus_runtime(port, host="127.0.0.1")
    client = await Client.connect(
        temporal_env.client.service_client.config.target_host,
        data_converter=pydantic_data_converter,
        runtime=runtime,
    )
    metrics = Metrics(runtime.metric_meter)
    async with httpx.AsyncClient() as http:
        worker = build_worker(
            client,
            committed_sessions,
            http,
            task_queue=task_queue,
            analyzer=RulesAnalyzer(),
            metrics=metrics,
            signer=SIGNER,
        )
        dispatcher = Dispatcher(committed_sessions, client, task_queue, metrics=metrics)
        stop = asyncio.Event()
        async with worker:
            delivering = asyncio.create_task(dispatcher.run(stop))
            stack = Stack(
                client=AwfdrsClient(client, task_queue, signer=SIGNER),
                sessions=committed_sessions,
                vendor_url=vendor.url,
                webhook_url=f"{receiver.url}/v2/enqueue",
            )
            try:
                yield stack, metrics, port
            finally:
                stop.set()
                await delivering


async def test_counters_move_by_the_right_amounts(
    metered: tuple[Stack, Metrics, int], committed_sessions: async_sessionmaker[AsyncSession]
) -> None:
    stack, metrics, port = metered
    tenant = await stack.tenant(grouping_window_seconds=0.2, verification_window_seconds=0.3)
    name = await stack.vendor()
    transient = retryable(tenant, "k-1", name)
    permanent = event(tenant, "k-2", error={"code": "card_declined"})
    await stack.client.ingest(tenant.id, [transient, transient, permanent])
    incidents = await stack.incidents(tenant)
    by_title = {i.title: i.id for i in incidents}
    await stack.wait_status(
        tenant, by_title["payment failed: gateway_timeout"], IncidentStatus.RESOLVED
    )
    await stack.wait_snapshot(
        by_title["payment failed: card_declined"], lambda s: s.phase == "awaiting_operator"
    )
    await sample(metrics, committed_sessions)
    samples = scrape(port)

    assert value(samples, "awfdrs_events_total", outcome="accepted") == 2
    assert value(samples, "awfdrs_events_total", outcome="duplicate") == 1
    assert value(samples, "awfdrs_events_total", outcome="rejected") == 0
    assert value(samples, "awfdrs_incidents_opened_total") == 2
    assert value(samples, "awfdrs_incidents_closed_total", status="RESOLVED") == 1
    assert value(samples, "awfdrs_actions_total", type="retry", outcome="SUCCEEDED") == 1
    assert value(samples, "awfdrs_actions_total", type="escalate", outcome="SUCCEEDED") == 1
    assert value(samples, "awfdrs_decision_confidence_count") == 2
    assert value(samples, "awfdrs_decision_confidence_count", decision_type="retry") == 1
    assert value(samples, "awfdrs_ingest_batch_seconds_count") == 1
    assert value(samples, "awfdrs_vendor_connections", vendor=name, state="CLOSED") == 1
    assert value(samples, "awfdrs_vendor_connections", vendor=name, state="OPEN") == 0
    assert value(samples, "awfdrs_requests_total", outcome="SUCCEEDED") == 1
    assert value(samples, "awfdrs_outbox_delivered_total") >= 2
    # Across every task queue of the database (other tests' undelivered notices included):
    # the gauge is what the table holds.
    async with committed_sessions() as session:
        waiting = (await session.execute(text("SELECT depth FROM awfdrs_outbox_stats()"))).one()
    assert value(samples, "awfdrs_outbox_depth") == waiting.depth
    assert value(samples, "awfdrs_incidents_phase", phase="awaiting_operator") >= 1
    assert value(samples, "awfdrs_incidents", status="RESOLVED") >= 1
    assert ("awfdrs_incidents_held", frozenset({("control", "kill_switch")})) in {
        (n, frozenset((k, v) for k, v in ls if k == "control")) for (n, ls) in samples
    }
    # The SDK's own metrics share the endpoint.
    assert value(samples, "temporal_workflow_completed_total") >= 1
