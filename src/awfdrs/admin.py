"""Provisioning: tenants, workflows and vendors, as the CLI and the demo create them.

Tenant creation runs as the application role inside a transaction set to the new tenant, which
is exactly what row-level security permits; listing every tenant needs the owner connection.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from awfdrs.contracts import TenantSettings, WorkflowSettings
from awfdrs.db.models import Tenant, Workflow
from awfdrs.db.repositories import (
    TenantDirectory,
    TenantRepository,
    VendorRepository,
    WorkflowRepository,
)
from awfdrs.db.session import tenant_session


@dataclass(frozen=True)
class TenantInfo:
    id: uuid.UUID
    name: str
    is_active: bool
    settings: TenantSettings

    @classmethod
    def of(cls, tenant: Tenant) -> TenantInfo:
        return cls(
            tenant.id, tenant.name, tenant.is_active, TenantSettings.model_validate(tenant.settings)
        )


@dataclass(frozen=True)
class WorkflowInfo:
    id: uuid.UUID
    tenant_id: uuid.UUID
    name: str
    is_active: bool
    settings: dict[str, Any]

    @classmethod
    def of(cls, workflow: Workflow) -> WorkflowInfo:
        return cls(
            workflow.id, workflow.tenant_id, workflow.name, workflow.is_active, workflow.settings
        )


async def create_tenant(
    sessions: async_sessionmaker[AsyncSession],
    name: str,
    settings: TenantSettings | None = None,
    tenant_id: uuid.UUID | None = None,
) -> TenantInfo:
    """Add a tenant; :class:`ConflictError` (uq_tenants_name) when the name is taken."""
    tenant_id = tenant_id or uuid.uuid4()
    stored = (settings or TenantSettings()).model_dump(mode="json", exclude_unset=True)
    async with tenant_session(sessions, tenant_id) as session:
        tenant = await TenantRepository(session, tenant_id=tenant_id).add(
            id=tenant_id, name=name, settings=stored
        )
        return TenantInfo.of(tenant)


async def update_tenant_settings(
    sessions: async_sessionmaker[AsyncSession], tenant_id: uuid.UUID, changes: dict[str, Any]
) -> TenantInfo:
    """Merge ``changes`` into the settings; an invalid value raises before anything is written."""
    async with tenant_session(sessions, tenant_id) as session:
        tenants = TenantRepository(session, tenant_id=tenant_id)
        tenant = await tenants.get_current()
        merged = TenantSettings.model_validate({**tenant.settings, **changes})
        await tenants.update(tenant, settings=merged.model_dump(mode="json", exclude_unset=True))
        return TenantInfo.of(tenant)


async def find_tenant_by_name(
    owner_sessions: async_sessionmaker[AsyncSession], name: str
) -> TenantInfo | None:
    async with owner_sessions() as session:
        tenant = await TenantDirectory(session).find_by_name(name)
        return TenantInfo.of(tenant) if tenant else None


async def list_tenants(owner_sessions: async_sessionmaker[AsyncSession]) -> list[TenantInfo]:
    async with owner_sessions() as session:
        return [TenantInfo.of(t) for t in await TenantDirectory(session).list()]


async def ensure_workflow(
    sessions: async_sessionmaker[AsyncSession],
    tenant_id: uuid.UUID,
    name: str,
    description: str = "",
) -> WorkflowInfo:
    """The tenant's workflow called ``name``, created when missing."""
    async with tenant_session(sessions, tenant_id) as session:
        workflows = WorkflowRepository(session, tenant_id=tenant_id)
        workflow = await workflows.find_by_name(name) or await workflows.add(
            name=name, description=description
        )
        return WorkflowInfo.of(workflow)


async def create_workflow(
    sessions: async_sessionmaker[AsyncSession],
    tenant_id: uuid.UUID,
    name: str,
    description: str = "",
    settings: WorkflowSettings | None = None,
) -> WorkflowInfo:
    """Add a workflow; :class:`ConflictError` (uq_workflows_tenant_id_name) when it exists."""
    own = (settings or WorkflowSettings()).model_dump(mode="json", exclude_none=True)
    async with tenant_session(sessions, tenant_id) as session:
        workflow = await WorkflowRepository(session, tenant_id=tenant_id).add(
            name=name, description=description, settings=own
        )
        return WorkflowInfo.of(workflow)


async def update_workflow_settings(
    sessions: async_sessionmaker[AsyncSession],
    tenant_id: uuid.UUID,
    workflow_id: uuid.UUID,
    changes: dict[str, Any],
) -> WorkflowInfo:
    """Merge ``changes`` into a workflow's own settings (validated before anything is written)."""
    async with tenant_session(sessions, tenant_id) as session:
        workflows = WorkflowRepository(session, tenant_id=tenant_id)
        workflow = await workflows.get(workflow_id)
        merged = WorkflowSettings.model_validate({**workflow.settings, **changes})
        await workflows.update(workflow, settings=merged.model_dump(mode="json", exclude_none=True))
        return WorkflowInfo.of(workflow)


async def list_workflows(
    sessions: async_sessionmaker[AsyncSession], tenant_id: uuid.UUID
) -> list[WorkflowInfo]:
    async with tenant_session(sessions, tenant_id) as session:
        return [
            WorkflowInfo.of(w)
            for w in await WorkflowRepository(session, tenant_id=tenant_id).list_all()
        ]


async def ensure_vendor(
    sessions: async_sessionmaker[AsyncSession], name: str, base_url: str, **breaker: float
) -> uuid.UUID:
    """Register ``name`` in the catalog at ``base_url`` (its default for connections), or move an
    existing one there; ``breaker`` settings are the defaults a new connection copies. No tenant
    can call it before it has a connection (:func:`awfdrs.vendor_connections.connect`)."""
    async with sessions() as session, session.begin():
        vendors = VendorRepository(session)
        vendor = await vendors.find_by_name(name)
        if vendor is None:
            vendor = await vendors.add(name=name, base_url=base_url, **breaker)
        else:
            await vendors.update(vendor, base_url=base_url, **breaker)
        return vendor.id
