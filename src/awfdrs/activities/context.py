"""What deciding about an incident needs, loaded inside the activity's transaction."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from awfdrs.contracts import Payload, TenantSettings, WorkflowSettings
from awfdrs.db.models import Event, Incident, Tenant, Vendor, Workflow
from awfdrs.db.repositories import (
    EventRepository,
    TenantRepository,
    VendorRepository,
    WorkflowRepository,
)
from awfdrs.enums import ActionType
from awfdrs.remediation.gate import GateInput


class IncidentContext:
    """An incident with its tenant, workflow and latest failure; never leaves the activity."""

    def __init__(
        self,
        session: AsyncSession,
        tenant: Tenant,
        incident: Incident,
        workflow: Workflow,
        event: Event | None,
    ) -> None:
        self.session = session
        self.tenant = tenant
        self.tenant_id: uuid.UUID = tenant.id
        self.incident = incident
        self.workflow = workflow
        self.event = event
        self.settings = TenantSettings.model_validate(tenant.settings)
        self.payload = Payload.model_validate(event.payload) if event else Payload()
        self._vendor: Vendor | None = None
        self._vendor_loaded = False

    @classmethod
    async def load(
        cls, session: AsyncSession, tenant_id: uuid.UUID, incident: Incident
    ) -> IncidentContext:
        tenant = await TenantRepository(session, tenant_id=tenant_id).current()
        workflow = await WorkflowRepository(session, tenant_id=tenant_id).get(incident.workflow_id)
        event = await EventRepository(session, tenant_id=tenant_id).latest_for_signature(
            incident.signature
        )
        return cls(session, tenant, incident, workflow, event)

    @property
    def vendor_name(self) -> str | None:
        return self.payload.error.vendor if self.payload.error else None

    async def vendor(self) -> Vendor | None:
        """The registered vendor the failure names, looked up once per activity."""
        if not self._vendor_loaded:
            name = self.vendor_name
            self._vendor = await VendorRepository(self.session).find_by_name(name) if name else None
            self._vendor_loaded = True
        return self._vendor

    def parameters(self, action_type: ActionType, reasoning: str) -> dict[str, Any]:
        """What an action of ``action_type`` needs to run, as stored on the Action row."""
        if action_type is ActionType.RETRY and self.payload.retry is not None:
            return {
                "request": self.payload.retry.model_dump(mode="json"),
                "vendor": self.vendor_name,
                "event_idempotency_key": self.event.idempotency_key if self.event else None,
            }
        if action_type is ActionType.MANUAL:
            return {"note": reasoning}
        return {"reason": reasoning}

    def gate_input(
        self, action_type: ActionType, confidence: float, is_reversible: bool
    ) -> GateInput:
        return GateInput(
            tenant_id=self.tenant_id,
            incident_id=self.incident.id,
            workflow_id=self.incident.workflow_id,
            workflow_name=self.workflow.name,
            action_type=action_type,
            confidence=confidence,
            is_reversible=is_reversible,
            settings=self.settings,
            workflow_settings=WorkflowSettings.model_validate(self.workflow.settings),
        )
