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
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import Runtime
from temporalio.service import RPCError, RPCStatusCode

from awfdrs.config import Settings, get_settings
from awfdrs.constants import (
    INGEST_WORKFLOW,
    KILL_SWITCH_WORKFLOW,
    incident_workflow_id,
    kill_switch_workflow_id,
)
from awfdrs.contracts import (
    MAX_BATCH_BYTES,
    MAX_BATCH_EVENTS,
    ActivateKillSwitch,
    CloseCommand,
    EventIn,
    EventResult,
    IncidentChange,
    IncidentSnapshot,
    IngestBatch,
    IngestResult,
    KillSwitchInput,
    KillSwitchRequest,
    KillSwitchSignal,
    KillSwitchStatus,
    OperatorCommand,
    Outcome,
    ReleaseKillSwitch,
    canonical_json,
)
from awfdrs.errors import AwfdrsError
from awfdrs.signing import (
    ACTIVATE,
    APPROVE,
    IGNORE,
    REJECT,
    RELEASE,
    RESOLVE,
    CommandSigner,
    Scope,
    kill_switch_subject,
    signer_or_none,
)

RawEvent = EventIn | Mapping[str, Any]
T = TypeVar("T")

# How long an update waits for an incident's workflow that the outbox has not started yet.
START_GRACE_SECONDS = 15.0


class KillSwitchRefused(AwfdrsError):
    """The kill-switch workflow refused the request; the message says why."""


async def connect_temporal(
    settings: Settings | None = None, runtime: Runtime | None = None
) -> Client:
    """A Temporal client speaking awfdrs's JSON (pydantic) payloads."""
    settings = settings or get_settings()
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
        runtime=runtime,
        tls=settings.temporal_tls_config(),
        api_key=settings.temporal_api_key,
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
    def __init__(
        self,
        client: Client,
        task_queue: str | None = None,
        *,
        signer: CommandSigner | None = None,
    ) -> None:
        """``signer``: sign approvals and kill-switch commands for the actor given. Only the
        API (for the principal it authenticated) and a deployment administrator who holds
        AWFDRS_COMMAND_SIGNING_KEY have one; without it approve and release are refused by
        the worker unless a ``credential`` is passed."""
        self.temporal = client
        self.task_queue = task_queue or get_settings().task_queue
        self._signer = signer

    @classmethod
    async def connect(cls, settings: Settings | None = None) -> AwfdrsClient:
        settings = settings or get_settings()
        return cls(
            await connect_temporal(settings),
            settings.task_queue,
            signer=signer_or_none(settings.command_signing_key),
        )

    def _sign(self, scope: Scope, actor: str) -> str | None:
        return self._signer.sign(scope, actor) if self._signer is not None else None

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
        self,
        incident_id: uuid.UUID,
        *,
        plan_id: str,
        actor: str,
        reason: str | None = None,
        credential: str | None = None,
        tenant_id: uuid.UUID | None = None,
    ) -> IncidentSnapshot:
        """Approve the plan ``plan_id`` (from the snapshot): refused if another plan waits, if
        the credential does not verify, or (two-person rule) if ``actor`` approved it before.
        A plan that is not reversible answers with the first approval recorded and waits for
        a second principal. ``tenant_id`` spares a query when signing."""
        credential = credential or await self._credential(
            incident_id, tenant_id, APPROVE, actor, plan_id
        )
        command = OperatorCommand(
            plan_id=plan_id, actor=actor, reason=reason, credential=credential
        )
        return await self._update(incident_id, "approve", command)

    async def reject(
        self,
        incident_id: uuid.UUID,
        *,
        plan_id: str,
        actor: str,
        reason: str | None = None,
        tenant_id: uuid.UUID | None = None,
    ) -> IncidentSnapshot:
        """Reject the plan: anyone may stop, but without a signer the actor is recorded as
        ``temporal:<actor>`` (a name typed at the Temporal door, not a principal)."""
        credential = await self._credential(incident_id, tenant_id, REJECT, actor, plan_id)
        command = OperatorCommand(
            plan_id=plan_id, actor=actor, reason=reason, credential=credential
        )
        return await self._update(incident_id, "reject", command)

    async def resolve(
        self,
        incident_id: uuid.UUID,
        *,
        actor: str,
        reason: str,
        tenant_id: uuid.UUID | None = None,
    ) -> IncidentSnapshot:
        return await self._close(incident_id, RESOLVE, actor, reason, tenant_id)

    async def ignore(
        self,
        incident_id: uuid.UUID,
        *,
        actor: str,
        reason: str,
        tenant_id: uuid.UUID | None = None,
    ) -> IncidentSnapshot:
        return await self._close(incident_id, IGNORE, actor, reason, tenant_id)

    async def _close(
        self,
        incident_id: uuid.UUID,
        name: str,
        actor: str,
        reason: str,
        tenant_id: uuid.UUID | None,
    ) -> IncidentSnapshot:
        credential = await self._credential(incident_id, tenant_id, name, actor)
        command = CloseCommand(actor=actor, reason=reason, credential=credential)
        return await self._update(incident_id, name, command)

    async def _credential(
        self,
        incident_id: uuid.UUID,
        tenant_id: uuid.UUID | None,
        name: str,
        actor: str,
        plan_id: str | None = None,
    ) -> str | None:
        """A credential for ``name`` on the incident, signed for ``actor``; None unsigned."""
        if self._signer is None:
            return None
        if tenant_id is None:
            tenant_id = await self._tenant_of(incident_id)
        return self._sign(Scope(tenant_id, name, str(incident_id), plan_id), actor)

    async def _tenant_of(self, incident_id: uuid.UUID) -> uuid.UUID:
        """The incident's tenant, from its workflow (waiting, like an update, for one the
        outbox has not started yet)."""
        return (await _once_started(lambda: self.snapshot(incident_id))).tenant_id

    # --- kill switches ------------------------------------------------------------------

    async def activate_kill_switch(
        self,
        tenant_id: uuid.UUID,
        *,
        reason: str,
        activated_by: str,
        workflow_id: uuid.UUID | None = None,
        expires_at: datetime | None = None,
        duration_seconds: float | None = None,
        wait: bool = True,
        credential: str | None = None,
    ) -> KillSwitchRequest:
        """Stop automation for a tenant (or one workflow); returns once it is persisted.

        From then on no action in the scope starts; actions already IN_PROGRESS finish. A
        missing reason or actor raises ``pydantic.ValidationError`` before anything is sent.
        """
        subject = kill_switch_subject(None, workflow_id)
        command = ActivateKillSwitch(
            reason=reason,
            activated_by=activated_by,
            workflow_id=workflow_id,
            expires_at=expires_at,
            duration_seconds=duration_seconds,
            credential=credential or self._sign(Scope(tenant_id, ACTIVATE, subject), activated_by),
        )
        return await self._kill_switch_signal(tenant_id, "activate", command, wait)

    async def release_kill_switch(
        self,
        tenant_id: uuid.UUID,
        *,
        released_by: str,
        reason: str | None = None,
        workflow_id: uuid.UUID | None = None,
        switch_id: uuid.UUID | None = None,
        wait: bool = True,
        credential: str | None = None,
    ) -> KillSwitchRequest:
        """Release one switch, or those of a scope (no workflow_id: the tenant-wide ones).
        Refused by the worker without a valid credential, and (two-person rule) when
        ``released_by`` activated a switch it would release."""
        subject = kill_switch_subject(switch_id, workflow_id)
        command = ReleaseKillSwitch(
            released_by=released_by,
            reason=reason,
            workflow_id=workflow_id,
            switch_id=switch_id,
            credential=credential or self._sign(Scope(tenant_id, RELEASE, subject), released_by),
        )
        return await self._kill_switch_signal(tenant_id, "release", command, wait)

    async def kill_switches(self, tenant_id: uuid.UUID) -> KillSwitchStatus:
        handle = self.temporal.get_workflow_handle(kill_switch_workflow_id(tenant_id))
        status: KillSwitchStatus = await handle.query("status", result_type=KillSwitchStatus)
        return status

    async def _kill_switch_signal(
        self,
        tenant_id: uuid.UUID,
        kind: str,
        command: ActivateKillSwitch | ReleaseKillSwitch,
        wait: bool,
    ) -> KillSwitchRequest:
        signal = KillSwitchSignal.model_validate(command.model_dump(mode="json", exclude_none=True))
        await self.temporal.start_workflow(
            KILL_SWITCH_WORKFLOW,
            KillSwitchInput(tenant_id=tenant_id),
            id=kill_switch_workflow_id(tenant_id),
            task_queue=self.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            start_signal=kind,
            start_signal_args=[signal],
            static_summary=f"kill switches of tenant {tenant_id}",
        )
        pending = KillSwitchRequest.model_validate(
            {"request_id": command.request_id, "kind": kind, "outcome": "pending"}
        )
        if not wait:
            return pending
        deadline = asyncio.get_running_loop().time() + 60
        while asyncio.get_running_loop().time() < deadline:
            status = await self.kill_switches(tenant_id)
            for request in status.requests:
                if request.request_id == command.request_id and request.outcome != "pending":
                    if request.outcome == "refused":
                        raise KillSwitchRefused(request.message)
                    return request
            await asyncio.sleep(0.1)
        raise TimeoutError(f"kill switch {kind} {command.request_id} not handled within 60s")

    async def _update(
        self, incident_id: uuid.UUID, name: str, command: OperatorCommand | CloseCommand
    ) -> IncidentSnapshot:
        handle = self.incident(incident_id)
        return await _once_started(
            lambda: handle.execute_update(name, command, result_type=IncidentSnapshot)
        )


async def _once_started(call: Callable[[], Awaitable[T]]) -> T:
    """``call``, again while its incident's workflow is not found, for a few seconds: an
    incident is committed before the dispatcher starts its workflow (the outbox), so an
    operator acting on one just created can find no workflow yet for a moment."""
    delay, deadline = 0.05, asyncio.get_running_loop().time() + START_GRACE_SECONDS
    while True:
        try:
            return await call()
        except RPCError as error:
            if error.status is not RPCStatusCode.NOT_FOUND:
                raise
            if asyncio.get_running_loop().time() + delay > deadline:
                raise
        await asyncio.sleep(delay)
        delay = min(delay * 2, 1.0)
