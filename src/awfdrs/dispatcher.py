"""The dispatcher: deliver the ingest outbox to the incident workflows.

Ingest writes, in its own transaction, one outbox row per incident that must start or hear
something. A dispatcher claims rows (``FOR UPDATE SKIP LOCKED``: several may run, in every
worker and API process), merges what it claimed per incident into one signal-with-start
(idempotent by workflow id), deletes what was delivered and puts back, with a delay, what was
not. It sleeps on PostgreSQL's LISTEN/NOTIFY, woken at each ingest commit, and polls as well so
a lost notification or a deferred row is only late, never stranded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from awfdrs.constants import (
    INCIDENT_WORKFLOW,
    SA_PHASE,
    SA_SEVERITY,
    SA_SIGNATURE,
    SA_STATUS,
    SA_TENANT,
    SA_WORKFLOW_NAME,
    incident_workflow_id,
)
from awfdrs.contracts import IncidentInput, Observation
from awfdrs.db.repositories import Claimed, OutboxQueue
from awfdrs.db.repositories.outbox import OUTBOX_CHANNEL
from awfdrs.enums import IncidentStatus, Phase, Severity
from awfdrs.metrics import Metrics

log = logging.getLogger("awfdrs.dispatcher")

BATCH = 200
CONCURRENCY = 32
POLL = timedelta(seconds=1)
RPC_TIMEOUT = timedelta(seconds=10)
MAX_BACKOFF = 30.0
# Long enough for a whole batch at CONCURRENCY with every call at RPC_TIMEOUT; a dispatcher that
# dies mid-batch leaves its rows to come back after it (a second delivery is harmless: the
# start is idempotent by workflow id and the observation merges).
LEASE = 120.0
POISON = 300.0


@dataclass
class Delivery:
    """What one incident's workflow hears from the rows claimed for it, merged."""

    start: IncidentInput
    rows: list[int] = field(default_factory=list)
    opened: bool = False
    severity: Severity | None = None
    recovered: bool = False
    joined: bool = False
    attempts: int = 0

    def add(self, row: Claimed) -> None:
        self.rows.append(row.id)
        self.opened = self.opened or row.opened
        self.recovered = self.recovered or row.recovered
        self.joined = self.joined or row.joined
        self.attempts = max(self.attempts, row.attempts)
        if row.severity is not None:
            severity = Severity(row.severity)
            if self.severity is None or severity.rank > self.severity.rank:
                self.severity = severity

    @property
    def observation(self) -> Observation | None:
        if self.severity is None and not self.recovered and not self.joined:
            return None
        return Observation(severity=self.severity, recovered=self.recovered, joined=self.joined)


def merge(rows: Sequence[Claimed]) -> tuple[dict[uuid.UUID, Delivery], list[Claimed]]:
    """The deliveries per incident, and the rows that cannot be delivered: no row of their
    incident has a start that validates (each row on its own, so one poisoned notice never
    holds back the others; a row whose own start does not validate, written by a newer
    version, still rides with a valid one of its incident)."""
    starts: dict[uuid.UUID, IncidentInput] = {}
    for row in rows:
        if row.incident_id not in starts:
            try:
                starts[row.incident_id] = IncidentInput.model_validate(row.start)
            except ValidationError:
                continue
    deliveries: dict[uuid.UUID, Delivery] = {}
    poisoned: list[Claimed] = []
    for row in rows:
        start = starts.get(row.incident_id)
        if start is None:
            poisoned.append(row)
            continue
        delivery = deliveries.get(row.incident_id)
        if delivery is None:
            delivery = deliveries[row.incident_id] = Delivery(start=start)
        delivery.add(row)
    return deliveries, poisoned


def search_attributes(incident: IncidentInput) -> TypedSearchAttributes:
    return TypedSearchAttributes(
        [
            SearchAttributePair(SA_TENANT, str(incident.tenant_id)),
            SearchAttributePair(SA_STATUS, IncidentStatus.NEW.value),
            SearchAttributePair(SA_SEVERITY, incident.severity.value),
            SearchAttributePair(SA_SIGNATURE, incident.signature),
            SearchAttributePair(SA_WORKFLOW_NAME, incident.workflow_name),
            SearchAttributePair(SA_PHASE, Phase.GROUPING.value),
        ]
    )


def static_details(incident: IncidentInput) -> str:
    lines = [
        f"**Incident** `{incident.incident_id}`",
        f"**Tenant** `{incident.tenant_id}` · **workflow** {incident.workflow_name}",
        f"**Signature** `{incident.signature}`",
    ]
    if incident.regression_of is not None:
        lines.append(f"**Regression of** `{incident.regression_of}`")
    return "  \n".join(lines)


class Dispatcher:
    """Built once per process on its session factory and Temporal client."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        client: Client,
        task_queue: str,
        *,
        listen_dsn: str | None = None,
        metrics: Metrics | None = None,
        eager: bool = True,
    ) -> None:
        self._sessions = sessions
        self._client = client
        self._task_queue = task_queue
        self._listen_dsn = listen_dsn
        self._metrics = metrics or Metrics()
        self._eager = eager
        self._wake = asyncio.Event()

    async def deliver(self, delivery: Delivery) -> None:
        """Signal-with-start one incident's workflow; raises when Temporal did not take it."""
        incident = delivery.start
        observation = delivery.observation
        news: dict[str, Any] = (
            {"start_signal": "observe", "start_signal_args": [observation]}
            if observation is not None
            else {"request_eager_start": self._eager and delivery.opened}
        )
        try:
            await self._client.start_workflow(
                INCIDENT_WORKFLOW,
                incident,
                id=incident_workflow_id(incident.incident_id),
                task_queue=self._task_queue,
                # A running workflow hears the signal; a closed incident's is not started again
                # (only a failed or terminated one is), so a late notice cannot reopen it.
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
                search_attributes=search_attributes(incident),
                static_summary=f"{incident.workflow_name}: {incident.title}",
                static_details=static_details(incident),
                rpc_timeout=RPC_TIMEOUT,
                **news,
            )
        except WorkflowAlreadyStartedError:
            return  # the incident's workflow completed: nothing to tell it

    async def drain_once(self) -> int:
        """Lease up to a batch, deliver it, settle it; the number of rows delivered, negative
        when some were not. The lease is committed before any call to Temporal, so no
        transaction (and no pooled connection) is held across the network."""
        async with self._sessions() as session, session.begin():
            rows = await OutboxQueue(session).claim(self._task_queue, BATCH, LEASE)
        if not rows:
            return 0
        deliveries, poisoned = merge(rows)
        limit = asyncio.Semaphore(CONCURRENCY)

        async def one(delivery: Delivery) -> BaseException | None:
            async with limit:
                try:
                    await self.deliver(delivery)
                except (RPCError, TimeoutError) as error:
                    return error
                return None

        errors = await asyncio.gather(*(one(d) for d in deliveries.values()))
        # Temporal refusing the start itself (not an outage): another try cannot help.
        for delivery, error in zip(deliveries.values(), errors, strict=True):
            if error is not None and _refused(error):
                ids = set(delivery.rows)
                poisoned.extend(r for r in rows if r.id in ids)
        delivered = [
            r for d, e in zip(deliveries.values(), errors, strict=True) if e is None for r in d.rows
        ]
        async with self._sessions() as session, session.begin():
            queue = OutboxQueue(session)
            await queue.done(delivered)
            for delivery, error in zip(deliveries.values(), errors, strict=True):
                if error is not None and not _refused(error):
                    delay = min(MAX_BACKOFF, 0.5 * 2 ** min(delivery.attempts, 6))
                    await queue.defer(delivery.rows, f"{type(error).__name__}: {error}", delay)
            if poisoned:
                # Kept, not deleted: an operator can read last_error and repair the row; it
                # comes back every five minutes rather than spinning (a
                # dispatcher of a newer version, in a rolling deploy, takes it).
                await queue.defer(
                    [r.id for r in poisoned], "start invalid or refused by Temporal", POISON
                )
        if poisoned:
            log.error(
                "outbox: %d notices have a start that does not validate or that Temporal "
                "refuses (ids %s); parked, retried every five minutes",
                len(poisoned),
                [r.id for r in poisoned][:10],
            )
        failed = len(rows) - len(delivered) - len(poisoned)
        if failed:
            log.warning(
                "outbox: %d of %d notices not delivered (Temporal: %s); retrying later",
                failed,
                len(rows),
                next(e for e in errors if e is not None),
            )
        self._metrics.outbox_delivered.add(len(delivered))
        return len(delivered) if not failed else -failed

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set; never raises for a database or Temporal outage."""
        listener = asyncio.create_task(self._listen(stop))
        backoff = 0.5
        try:
            while not stop.is_set():
                try:
                    delivered = await self.drain_once()
                    backoff = 0.5
                except Exception:  # the database is down or restarting: try again soon
                    log.warning("outbox: claim failed; retrying in %.1fs", backoff, exc_info=True)
                    await _sleep_or(stop, backoff)
                    backoff = min(MAX_BACKOFF, backoff * 2)
                    continue
                if delivered == BATCH:
                    continue  # more may be waiting
                if delivered < 0:
                    await _sleep_or(stop, 1.0)  # Temporal refused: let it breathe
                    continue
                if self._wake.is_set():
                    # Cleared before the next drain, so a notice committed during it wakes
                    # the one after instead of being lost between drain and wait.
                    self._wake.clear()
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wait_for_wake(stop), POLL.total_seconds())
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener

    async def _wait_for_wake(self, stop: asyncio.Event) -> None:
        waits = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waits:
                waiter.cancel()

    async def _listen(self, stop: asyncio.Event) -> None:
        """LISTEN on the outbox channel; reconnect after an outage (polling covers the gap)."""
        if self._listen_dsn is None:
            return
        while not stop.is_set():
            connection: asyncpg.Connection | None = None
            try:
                connection = await asyncpg.connect(self._listen_dsn, timeout=5)
                await connection.add_listener(OUTBOX_CHANNEL, self._notified)
                self._wake.set()  # anything written while we were away
                while not stop.is_set() and not connection.is_closed():
                    await _sleep_or(stop, 5.0)
            except (OSError, asyncpg.PostgresError, TimeoutError):
                await _sleep_or(stop, 2.0)
            finally:
                if connection is not None and not connection.is_closed():
                    with contextlib.suppress(Exception):
                        await connection.close(timeout=2)

    def _notified(self, *_: object) -> None:
        self._wake.set()


def _refused(error: BaseException) -> bool:
    return isinstance(error, RPCError) and error.status is RPCStatusCode.INVALID_ARGUMENT


async def _sleep_or(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def outbox_stats(sessions: async_sessionmaker[AsyncSession]) -> tuple[int, float]:
    """(rows waiting, age of the oldest in seconds), for the metrics."""
    async with sessions() as session, session.begin():
        depth, oldest = await OutboxQueue(session).count_pending()
    age = (datetime.now(UTC) - oldest).total_seconds() if oldest is not None else 0.0
    return depth, max(0.0, age)


__all__ = ["Delivery", "Dispatcher", "merge", "outbox_stats", "search_attributes", "time"]
