"""Typed helpers for applications and operators: everything goes through Temporal.

```python
client = await AwfdrsClient.connect()
summary = await client.ingest(tenant_id, events)          # split into batches for you
await client.approve(incident_id, actor="alice", reason="vendor confirmed the outage is over")
```
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.contrib.pydantic import pydantic_data_converter

from awfdrs.config import Settings, get_settings
from awfdrs.constants import INGEST_WORKFLOW, incident_workflow_id
from awfdrs.contracts import (
    MAX_BATCH_BYTES,
    MAX_BATCH_EVENTS,
    CloseCommand,
    EventIn,
    EventResult,
    IncidentChange,
    IncidentSnapshot,
    IngestBatch,
    IngestResult,
    OperatorCommand,
    Outcome,
    canonical_json,
)

RawEvent = EventIn | Mapping[str, Any]


async def connect_temporal(settings: Settings | None = None) -> Client:
    """A Temporal client speaking awfdrs's JSON (pydantic) payloads."""
    settings = settings or get_settings()
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
    )


def _as_json(event: RawEvent) -> dict[str, Any]:
    if isinstance(event, EventIn):
        return event.model_dump(mode="json", exclude_none=True)
    return dict(event)


def batches(
    events: Iterable[RawEvent],
    *,
    max_events: int = MAX_BATCH_EVENTS,
    max_bytes: int = MAX_BATCH_BYTES,
) -> Iterator[list[dict[str, Any]]]:
    """Split events into batches under both the count and the serialised-size limit.

    An event bigger than ``max_bytes`` on its own still travels, alone in its batch, so the
    server can reject it with a reason rather than the client dropping it silently.
    """
    batch: list[dict[str, Any]] = []
    size = 0
    for event in events:
        item = _as_json(event)
        item_size = len(canonical_json(item).encode()) + 1
        if batch and (len(batch) >= max_events or size + item_size > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(item)
        size += item_size
    if batch:
        yield batch


@dataclass
class IngestSummary:
    """All outcomes of an :meth:`AwfdrsClient.ingest` call, in input order."""

    outcomes: list[EventResult] = field(default_factory=list)
    incidents: list[IncidentChange] = field(default_factory=list)

    def count(self, outcome: Outcome) -> int:
        return sum(1 for o in self.outcomes if o.outcome is outcome)

    def rejections(self) -> list[EventResult]:
        return [o for o in self.outcomes if o.outcome in (Outcome.REJECTED, Outcome.CONFLICT)]


class AwfdrsClient:
    def __init__(self, client: Client, task_queue: str | None = None) -> None:
        self.temporal = client
        self.task_queue = task_queue or get_settings().task_queue

    @classmethod
    async def connect(cls, settings: Settings | None = None) -> AwfdrsClient:
        settings = settings or get_settings()
        return cls(await connect_temporal(settings), settings.task_queue)

    async def ingest_batch(self, batch: IngestBatch) -> IngestResult:
        """Run one ``IngestEvents`` workflow and wait for its result.

        The workflow id is derived from the batch's content, so resubmitting a batch whose
        first submission is still running attaches to it instead of starting a second.
        """
        digest = hashlib.sha256(canonical_json(batch.model_dump(mode="json")).encode()).hexdigest()
        handle = await self.temporal.start_workflow(
            INGEST_WORKFLOW,
            batch,
            id=f"ingest-{batch.tenant_id}-{digest[:32]}",
            task_queue=self.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            result_type=IngestResult,
        )
        result: IngestResult = await handle.result()
        return result

    async def ingest(
        self, tenant_id: uuid.UUID, events: Iterable[RawEvent], *, concurrency: int = 4
    ) -> IngestSummary:
        """Send events in batches (several at once) and gather every outcome in input order."""
        chunks = list(batches(events))
        results: list[IngestResult | None] = [None] * len(chunks)
        limit = asyncio.Semaphore(concurrency)

        async def one(index: int, chunk: list[dict[str, Any]]) -> None:
            async with limit:
                results[index] = await self.ingest_batch(
                    IngestBatch(tenant_id=tenant_id, events=chunk)
                )

        await asyncio.gather(*(one(i, c) for i, c in enumerate(chunks)))
        summary = IngestSummary()
        for result in results:
            assert result is not None
            summary.outcomes.extend(result.outcomes)
            summary.incidents.extend(result.incidents)
        return summary

    def incident(self, incident_id: uuid.UUID) -> WorkflowHandle[Any, IncidentSnapshot]:
        return self.temporal.get_workflow_handle(
            incident_workflow_id(incident_id), result_type=IncidentSnapshot
        )

    async def snapshot(self, incident_id: uuid.UUID) -> IncidentSnapshot:
        handle = self.incident(incident_id)
        snapshot: IncidentSnapshot = await handle.query("snapshot", result_type=IncidentSnapshot)
        return snapshot

    async def approve(
        self, incident_id: uuid.UUID, *, actor: str, reason: str | None = None
    ) -> IncidentSnapshot:
        return await self._update(
            incident_id, "approve", OperatorCommand(actor=actor, reason=reason)
        )

    async def reject(
        self, incident_id: uuid.UUID, *, actor: str, reason: str | None = None
    ) -> IncidentSnapshot:
        return await self._update(
            incident_id, "reject", OperatorCommand(actor=actor, reason=reason)
        )

    async def resolve(self, incident_id: uuid.UUID, *, actor: str, reason: str) -> IncidentSnapshot:
        return await self._update(incident_id, "resolve", CloseCommand(actor=actor, reason=reason))

    async def ignore(self, incident_id: uuid.UUID, *, actor: str, reason: str) -> IncidentSnapshot:
        return await self._update(incident_id, "ignore", CloseCommand(actor=actor, reason=reason))

    async def _update(
        self, incident_id: uuid.UUID, name: str, command: OperatorCommand | CloseCommand
    ) -> IncidentSnapshot:
        snapshot: IncidentSnapshot = await self.incident(incident_id).execute_update(
            name, command, result_type=IncidentSnapshot
        )
        return snapshot
