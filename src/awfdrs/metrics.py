"""awfdrs's own metrics, served by the Temporal SDK's Prometheus endpoint beside its own.

Counters and histograms are recorded where things happen (activities); gauges that need the
whole picture (incidents by status, held incidents, breaker states) are sampled by the worker
from aggregate-only SQL functions, since the application role sees one tenant at a time.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.common import MetricMeter
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from awfdrs.db.repositories import MetricsRepository, OutboxQueue, VendorRepository
from awfdrs.db.repositories.vendors import FORCED
from awfdrs.enums import CircuitState, IncidentStatus, Phase

log = logging.getLogger(__name__)


class Metrics:
    """The instruments; built once per worker on its runtime's meter (a no-op meter in tests
    that do not look)."""

    def __init__(self, meter: MetricMeter | None = None) -> None:
        meter = meter or MetricMeter.noop
        self.events = meter.create_counter(
            "awfdrs_events", "Events ingested, by outcome (accepted, duplicate, …)", "events"
        )
        self.ingest_batch_seconds = meter.create_histogram_float(
            "awfdrs_ingest_batch_seconds", "Time to store one batch and upsert its incidents", "s"
        )
        self.incidents_opened = meter.create_counter(
            "awfdrs_incidents_opened", "Incidents opened", "incidents"
        )
        self.incidents_closed = meter.create_counter(
            "awfdrs_incidents_closed", "Incidents closed, by final status", "incidents"
        )
        self.incidents = meter.create_gauge("awfdrs_incidents", "Incidents by status", "incidents")
        self.actions = meter.create_counter(
            "awfdrs_actions", "Actions finished, by type and outcome", "actions"
        )
        self.decision_confidence = meter.create_histogram_float(
            "awfdrs_decision_confidence", "Confidence of analyzer decisions, by type", "1"
        )
        self.vendor_connections = meter.create_gauge(
            "awfdrs_vendor_connections",
            "Tenants' connections per vendor by breaker state (FORCED_OPEN: an operator's stop)",
            "connections",
        )
        self.held = meter.create_gauge(
            "awfdrs_incidents_held", "Open incidents held by a control (kill_switch, fuse, …)"
        )
        self.phases = meter.create_gauge(
            "awfdrs_incidents_phase", "Open incidents by lifecycle phase", "incidents"
        )
        self.requests = meter.create_counter(
            "awfdrs_requests", "Request sends finished, by outcome", "requests"
        )
        self.outbox_delivered = meter.create_counter(
            "awfdrs_outbox_delivered", "Outbox notices delivered to incident workflows", "notices"
        )
        self.outbox_depth = meter.create_gauge(
            "awfdrs_outbox_depth", "Outbox notices waiting for the dispatcher", "notices"
        )
        self.outbox_age = meter.create_gauge_float(
            "awfdrs_outbox_age_seconds", "Age of the oldest outbox notice waiting", "s"
        )


def prometheus_runtime(port: int, host: str = "0.0.0.0") -> Runtime:
    """A Temporal runtime serving every metric, the SDK's and ours, on ``host:port``."""
    return Runtime(
        telemetry=TelemetryConfig(
            metrics=PrometheusConfig(bind_address=f"{host}:{port}", counters_total_suffix=True)
        )
    )


async def sample(metrics: Metrics, sessions: async_sessionmaker[AsyncSession]) -> None:
    """Set the gauges once from the database."""
    async with sessions() as session, session.begin():
        repository = MetricsRepository(session)
        counts = await repository.count_by_status()
        held = await repository.count_held_by_control()
        phases = await repository.count_by_phase()
        vendors = VendorRepository(session)
        catalog = await vendors.list_all()
        health = await vendors.count_calls_by_vendor()
        depth, oldest = await OutboxQueue(session).count_pending()
    metrics.outbox_depth.set(depth)
    age = (datetime.now(UTC) - oldest).total_seconds() if oldest is not None else 0.0
    metrics.outbox_age.set(max(0.0, age))
    for phase in Phase:
        if phase is not Phase.CLOSED:
            metrics.phases.set(phases.get(phase, 0), {"phase": phase.value})
    for status in IncidentStatus:
        metrics.incidents.set(counts.get(status, 0), {"status": status.value})
    for control, count in held.items():
        metrics.held.set(count, {"control": control.value})
    for vendor in catalog:
        per_state = health.get(vendor.id, {})
        for state in [*(s.value for s in CircuitState), FORCED]:
            metrics.vendor_connections.set(
                per_state.get(state, 0), {"vendor": vendor.name, "state": state}
            )


async def sample_forever(
    metrics: Metrics, sessions: async_sessionmaker[AsyncSession], every: timedelta
) -> None:
    while True:
        try:
            await sample(metrics, sessions)
        except Exception:  # a database blip must not take the worker down
            log.warning("metrics sampling failed", exc_info=True)
        await asyncio.sleep(every.total_seconds())
