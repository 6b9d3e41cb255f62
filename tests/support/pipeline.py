"""A running awfdrs in-process: worker on a fresh task queue, real PostgreSQL and Temporal."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from awfdrs.analysis.rules import RulesAnalyzer
from awfdrs.client import AwfdrsClient
from awfdrs.contracts import IncidentSnapshot
from awfdrs.db.models import Action, Decision, Incident, RemediationRequest
from awfdrs.db.repositories import (
    ActionRepository,
    DecisionRepository,
    IncidentRepository,
    RequestRepository,
    TenantRepository,
    VendorRepository,
    WorkflowRepository,
)
from awfdrs.db.session import tenant_session
from awfdrs.devstack.servers import EscalationReceiver, FlakyVendor
from awfdrs.dispatcher import Dispatcher
from awfdrs.enums import IncidentStatus
from awfdrs.remediation.credentials import CredentialCipher
from awfdrs.vendor_connections import ConnectionInfo, connect
from awfdrs.worker import build_worker
from tests.support.factories import TenantRef, admin_sessions, make_tenant
from tests.support.principals import SIGNER
from tests.support.processes import CREDENTIALS_KEY

T = TypeVar("T")

FAST_SETTINGS: dict[str, Any] = {
    "grouping_window_seconds": 0.5,
    "verification_window_seconds": 1.0,
    "approval_timeout_seconds": 60,
    "action_timeout_seconds": 5,
    "action_retry_initial_seconds": 0.1,
    "action_max_attempts": 4,
    "max_attempts": 2,
}


def fresh_cipher() -> CredentialCipher:
    return CredentialCipher(CREDENTIALS_KEY)


@dataclass
class Stack:
    """Tenants made here are connected to every vendor made here, with the vendor's settings,
    as an operator would connect them (``vendor(connect=False)`` leaves one unconnected)."""

    client: AwfdrsClient
    sessions: async_sessionmaker[AsyncSession]
    vendor_url: str
    webhook_url: str
    # The worker's keys (in-process stacks share this object with their worker).
    credentials: CredentialCipher = field(default_factory=fresh_cipher)
    tenants: list[TenantRef] = field(default_factory=list)
    vendors: list[str] = field(default_factory=list)

    @property
    def soak(self) -> bool:
        """``make soak``: run the long variants of time-bound tests."""
        return os.environ.get("AWFDRS_SOAK") == "1"

    async def tenant(self, **settings: Any) -> TenantRef:
        merged = {
            **FAST_SETTINGS,
            "escalation_webhook_url": self.webhook_url,
            "escalation_routing_key": "rk-test",
            **settings,
        }
        tenant = await make_tenant(self.sessions, settings=merged)
        for name in self.vendors:
            await self.connect(tenant, name)
        self.tenants.append(tenant)
        return tenant

    async def vendor(
        self, name: str | None = None, *, connect: bool = True, **settings: Any
    ) -> str:
        """A vendor at the test's FlakyVendor; ``settings`` are its defaults, which the
        connections of this stack's tenants copy."""
        name = name or f"vendor-{uuid.uuid4().hex[:10]}"
        async with admin_sessions()() as session, session.begin():
            await VendorRepository(session).add(name=name, base_url=self.vendor_url, **settings)
        if connect:
            for tenant in self.tenants:
                await self.connect(tenant, name)
            self.vendors.append(name)
        return name

    async def connect(self, tenant: TenantRef, vendor: str, **options: Any) -> ConnectionInfo:
        return await connect(self.sessions, tenant.id, vendor, cipher=self.credentials, **options)

    async def workflow(self, tenant: TenantRef, name: str, **settings: Any) -> uuid.UUID:
        async with tenant_session(self.sessions, tenant.id) as session:
            flow = await WorkflowRepository(session, tenant_id=tenant.id).add(
                name=name, settings=settings
            )
            return flow.id

    async def actions(self, tenant: TenantRef) -> list[Action]:
        async with tenant_session(self.sessions, tenant.id) as session:
            stmt = ActionRepository(session, tenant_id=tenant.id)
            return list(await stmt.list(limit=10_000))

    async def requests(self, tenant: TenantRef) -> list[RemediationRequest]:
        """Every affected request of the tenant's incidents."""
        async with tenant_session(self.sessions, tenant.id) as session:
            repository = RequestRepository(session, tenant_id=tenant.id)
            return list(await repository.list(limit=10_000))

    async def decisions(self, tenant: TenantRef, incident_id: uuid.UUID) -> list[Decision]:
        async with tenant_session(self.sessions, tenant.id) as session:
            repository = DecisionRepository(session, tenant_id=tenant.id)
            return list(await repository.list_for_incident(incident_id))

    async def set_settings(self, tenant: TenantRef, **settings: Any) -> None:
        async with tenant_session(self.sessions, tenant.id) as session:
            tenants = TenantRepository(session, tenant_id=tenant.id)
            row = await tenants.get_current()
            await tenants.update(row, settings={**row.settings, **settings})

    async def incidents(self, tenant: TenantRef) -> list[Incident]:
        async with tenant_session(self.sessions, tenant.id) as session:
            return list(await IncidentRepository(session, tenant_id=tenant.id).list(limit=1000))

    async def incident(self, tenant: TenantRef, incident_id: uuid.UUID) -> Incident:
        async with tenant_session(self.sessions, tenant.id) as session:
            return await IncidentRepository(session, tenant_id=tenant.id).get(incident_id)

    async def wait_status(
        self,
        tenant: TenantRef,
        incident_id: uuid.UUID,
        *statuses: IncidentStatus,
        within: float = 30.0,
    ) -> Incident:
        async def reached() -> Incident | None:
            incident = await self.incident(tenant, incident_id)
            return incident if incident.status in statuses else None

        try:
            return await eventually(reached, within, f"incident {incident_id} to reach {statuses}")
        except AssertionError as failure:
            described = await self._describe(incident_id)
            raise AssertionError(f"{failure}; workflow says: {described}") from None

    async def _describe(self, incident_id: uuid.UUID) -> str:
        try:
            return repr(await self.client.snapshot(incident_id))
        except Exception as error:
            return f"(no snapshot: {error})"

    async def wait_snapshot(
        self,
        incident_id: uuid.UUID,
        predicate: Callable[[IncidentSnapshot], bool],
        within: float = 30.0,
    ) -> IncidentSnapshot:
        async def check() -> IncidentSnapshot | None:
            try:
                snapshot = await self.client.snapshot(incident_id)
            except Exception:  # the workflow may not have started yet
                return None
            return snapshot if predicate(snapshot) else None

        try:
            return await eventually(check, within, f"incident {incident_id} snapshot condition")
        except AssertionError as failure:
            described = await self._describe(incident_id)
            raise AssertionError(f"{failure}; workflow says: {described}") from None


async def eventually(probe: Callable[[], Awaitable[T | None]], within: float, what: str) -> T:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        value = await probe()
        if value is not None:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.1)


def event(
    tenant: TenantRef,
    key: str,
    event_type: str = "payment.failed",
    *,
    error: dict[str, Any] | None = None,
    retry: dict[str, Any] | None = None,
    occurred_at: datetime | None = None,
    workflow_id: uuid.UUID | None = None,
    **payload: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = dict(payload)
    if error is not None:
        body["error"] = error
    if retry is not None:
        body["retry"] = retry
    return {
        "tenant_id": str(tenant.id),
        "workflow_id": str(workflow_id or tenant.workflow_id),
        "event_type": event_type,
        "idempotency_key": key,
        "occurred_at": (occurred_at or datetime.now(UTC)).isoformat(),
        "payload": body,
    }


def retryable(
    tenant: TenantRef,
    key: str,
    vendor: str,
    code: str = "gateway_timeout",
    *,
    workflow_id: uuid.UUID | None = None,
    path: str = "/v1/charges",
) -> dict[str, Any]:
    """A transient failure with a reversible request to replay through ``vendor``."""
    return event(
        tenant,
        key,
        error={"code": code, "vendor": vendor},
        retry={"method": "POST", "path": path, "body": {"key": key}, "reversible": True},
        workflow_id=workflow_id,
    )


@asynccontextmanager
async def running_stack(
    client: Client,
    sessions: async_sessionmaker[AsyncSession],
    task_queue: str,
    vendor: FlakyVendor,
    receiver: EscalationReceiver,
    listen_dsn: str | None = None,
) -> AsyncIterator[Stack]:
    """An in-process worker and outbox dispatcher on ``task_queue`` and the helpers to drive
    it."""
    credentials = fresh_cipher()
    async with httpx.AsyncClient() as http:
        worker = build_worker(
            client,
            sessions,
            http,
            task_queue=task_queue,
            analyzer=RulesAnalyzer(),
            signer=SIGNER,
            credentials=credentials,
        )
        dispatcher = Dispatcher(sessions, client, task_queue, listen_dsn=listen_dsn)
        stop = asyncio.Event()
        async with worker:
            delivering = asyncio.create_task(dispatcher.run(stop))
            try:
                yield Stack(
                    client=AwfdrsClient(client, task_queue, signer=SIGNER),
                    sessions=sessions,
                    vendor_url=vendor.url,
                    webhook_url=f"{receiver.url}/v2/enqueue",
                    credentials=credentials,
                )
            finally:
                stop.set()
                await delivering
