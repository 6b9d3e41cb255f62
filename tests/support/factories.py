"""Rows the tests need, created through the repositories as the application role, except
tenants and vendors: those are the deployment administrator's, created with the owner's
connection (:func:`admin_sessions`), which the test session registers once."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from awfdrs.db.repositories import (
    IncidentRepository,
    TenantRepository,
    WorkflowRepository,
)
from awfdrs.db.session import tenant_session
from awfdrs.enums import EventOutcome, Severity
from awfdrs.intake import NewEvent

_ADMIN: list[async_sessionmaker[AsyncSession]] = []


def use_admin_sessions(sessions: async_sessionmaker[AsyncSession]) -> None:
    """The owner's sessions for this test run (the session-scoped fixture ``admin_sessions``)."""
    _ADMIN[:] = [sessions]


def admin_sessions() -> async_sessionmaker[AsyncSession]:
    """The owner's sessions: the application role may not create tenants or vendors."""
    assert _ADMIN, "the admin_sessions fixture registers the owner's sessions"
    return _ADMIN[0]


@dataclass(frozen=True)
class TenantRef:
    id: uuid.UUID
    workflow_id: uuid.UUID
    name: str


async def make_tenant(
    sessions: async_sessionmaker[AsyncSession],
    *,
    settings: dict[str, Any] | None = None,
    workflow: str = "payments",
    admin: async_sessionmaker[AsyncSession] | None = None,
) -> TenantRef:
    """``admin``: the owner's sessions of another database than the test run's."""
    tenant_id = uuid.uuid4()
    name = f"tenant-{tenant_id.hex[:12]}"
    # Committed by the owner, outside ``sessions``' transaction: a tenant of its own per test
    # (a random name) is what isolates tests that share the database anyway.
    async with tenant_session(admin or admin_sessions(), tenant_id) as session:
        await TenantRepository(session, tenant_id=tenant_id).add(
            id=tenant_id, name=name, settings=settings or {}
        )
    async with tenant_session(sessions, tenant_id) as session:
        flow = await WorkflowRepository(session, tenant_id=tenant_id).add(name=workflow)
        return TenantRef(tenant_id, flow.id, name)


async def make_incident(
    session: AsyncSession, tenant: TenantRef, signature: str = "sig-1", **values: Any
) -> uuid.UUID:
    now = datetime.now(UTC)
    fields: dict[str, Any] = {
        "workflow_id": tenant.workflow_id,
        "signature": signature,
        "operation": "payment",
        "title": "payment: timeout",
        "severity": Severity.ERROR,
        "event_count": 1,
        "first_seen_at": now,
        "last_seen_at": now,
    } | values
    incident = await IncidentRepository(session, tenant_id=tenant.id).add(**fields)
    return incident.id


def new_event(
    tenant: TenantRef,
    key: str,
    *,
    workflow_id: uuid.UUID | None = None,
    occurred_at: datetime | None = None,
    signature: str | None = None,
    payload_hash: str = "0" * 64,
) -> NewEvent:
    return NewEvent(
        workflow_id=workflow_id or tenant.workflow_id,
        event_type="payment.failed" if signature else "payment.started",
        outcome=EventOutcome.FAILURE if signature else EventOutcome.NEUTRAL,
        payload_json="{}",
        idempotency_key=key,
        occurred_at=occurred_at or datetime.now(UTC),
        severity=Severity.ERROR if signature else None,
        signature=signature,
        fingerprint_version=1 if signature else None,
        payload_hash=payload_hash,
        correlation_id=None,
    )
