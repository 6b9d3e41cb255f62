"""Ingest for trusted Temporal clients: ``IngestEvents``' one step, on the shared ingest core."""

from __future__ import annotations

import time
import uuid

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError

from awfdrs.contracts import MAX_BATCH_EVENTS, IngestResult, Outcome
from awfdrs.ingest_core import TenantUnavailable, store_events
from awfdrs.jsonbatch import MalformedJson, split_batch
from awfdrs.metrics import Metrics

log = activity.logger


class BatchRejected(ApplicationError):
    """The batch as a whole is refused (malformed, unknown or inactive tenant); nothing is
    written, and retrying cannot help."""

    def __init__(self, message: str) -> None:
        super().__init__(message, type="BatchRejected", non_retryable=True)


class IngestActivities:
    """Built once per worker with the session factory."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], metrics: Metrics | None = None
    ) -> None:
        self._sessions = sessions
        self._metrics = metrics or Metrics()

    @activity.defn(name="ingest_batch")
    async def ingest_batch(self, batch: RawValue) -> IngestResult:
        """Store a batch ``{"tenant_id": …, "events": [ … ]}`` through the ingest core.

        The batch arrives as raw JSON bytes and each event is decoded on its own, so a hostile
        one (nesting too deep, a 5,000-digit number, a lone surrogate) is rejected with its
        reason and the rest of the batch lands. Redelivery is harmless: the core is idempotent.
        """
        started = time.perf_counter()
        try:
            parsed = split_batch(batch.payload.data, array_key="events", max_items=MAX_BATCH_EVENTS)
            tenant_id = _tenant_of(parsed.fields)
            if not parsed.items:
                raise BatchRejected("events: at least one event is required")
            # The incident workflows run where this worker polls: its dispatcher delivers them.
            result = await store_events(
                self._sessions, tenant_id, parsed.items, task_queue=activity.info().task_queue
            )
        except (MalformedJson, TenantUnavailable) as error:
            raise BatchRejected(str(error)) from None
        seconds = time.perf_counter() - started
        self._metrics.ingest_batch_seconds.record(seconds)
        for outcome in Outcome:
            if count := result.count(outcome):
                self._metrics.events.add(count, {"outcome": outcome.value})
        opened = sum(1 for i in result.incidents if i.opened)
        if opened:
            self._metrics.incidents_opened.add(opened)
        log.info(
            "batch stored: %d accepted, %d duplicate, %d conflict, %d rejected in %.3fs",
            *(result.count(o) for o in Outcome),
            seconds,
            extra={"tenant_id": result.tenant_id},
        )
        return result


def _tenant_of(fields: dict[str, object]) -> uuid.UUID:
    raw = fields.get("tenant_id")
    if not isinstance(raw, str):
        raise BatchRejected("tenant_id: required, a UUID string")
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise BatchRejected(f"tenant_id: not a UUID: {raw[:80]!r}") from None
