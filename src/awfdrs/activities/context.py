"""What deciding about an incident needs, loaded inside the activity's transaction, and the
ORM-to-contract conversions every activity shares (ORM objects never leave an activity)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from awfdrs.constants import incident_workflow_id
from awfdrs.contracts import TenantSettings, WorkflowSettings
from awfdrs.db.models import Action, Decision, Incident, RemediationRequest, Tenant, Workflow
from awfdrs.db.repositories import RequestRepository, TenantRepository, WorkflowRepository
from awfdrs.enums import ActionType, RequestStatus
from awfdrs.lifecycle import ActionView, DecisionView, RequestView, Tally
from awfdrs.remediation.gate import GateInput


class IncidentContext:
    """An incident with its tenant and workflow; never leaves the activity."""

    def __init__(
        self, session: AsyncSession, tenant: Tenant, incident: Incident, workflow: Workflow
    ) -> None:
        self.session = session
        self.tenant = tenant
        self.tenant_id: uuid.UUID = tenant.id
        self.incident = incident
        self.workflow = workflow
        self.settings = TenantSettings.model_validate(tenant.settings)

    @classmethod
    async def load(
        cls, session: AsyncSession, tenant_id: uuid.UUID, incident: Incident
    ) -> IncidentContext:
        tenant = await TenantRepository(session, tenant_id=tenant_id).get_current()
        workflow = await WorkflowRepository(session, tenant_id=tenant_id).get(incident.workflow_id)
        return cls(session, tenant, incident, workflow)

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


def decision_view(decision: Decision) -> DecisionView:
    return DecisionView(
        decision_id=decision.id,
        decision_type=decision.decision_type,
        confidence=decision.confidence_score,
        reasoning=decision.reasoning,
        ai_model=decision.ai_model,
        attempt=decision.attempt,
        classification=decision.classification,
        gate=decision.gate,
        gate_reason=decision.gate_reason,
        decided_by=decision.decided_by,
    )


def request_view(request: RemediationRequest) -> RequestView:
    return RequestView(
        request_id=request.id,
        idempotency_key=request.idempotency_key,
        status=request.status,
        replayable=request.replayable,
        vendor=request.vendor_name,
        method=request.method,
        path=request.path,
        attempts=request.attempts,
        event_count=request.event_count,
        correlation_ids=tuple(request.correlation_ids[:5]),
        last_status_code=request.last_status_code,
        last_error=request.last_error[:500] if request.last_error else None,
        note=request.note,
    )


def request_details(request: RemediationRequest) -> dict[str, Any]:
    """A request as an escalation payload and the API show it."""
    return {
        **request_view(request).model_dump(mode="json", exclude_none=True),
        "error_code": request.error_code,
        "error_message": request.error_message,
        "first_failed_at": request.first_failed_at.isoformat(),
        "last_failed_at": request.last_failed_at.isoformat(),
    }


def action_view(action: Action, summary: str = "") -> ActionView:
    result = action.result or {}
    return ActionView(
        action_id=action.id,
        action_type=action.action_type,
        status=action.status,
        attempts=action.attempts,
        finished_at=action.finished_at,
        summary=summary or str(result.get("summary", "")),
        error=action.error,
    )


async def tally(session: AsyncSession, tenant_id: uuid.UUID, incident_id: uuid.UUID) -> Tally:
    """The incident's requests by status, with the unreplayable pending and the proven ones."""
    requests = RequestRepository(session, tenant_id=tenant_id)
    counts, unreplayable, proven = await requests.count_by_state(incident_id)
    return Tally.of(counts, unreplayable=unreplayable, proven=proven)


def incident_fields(incident: Incident, **more: object) -> dict[str, object]:
    """The log context of an incident: who, which, where in Temporal, which trace."""
    return {
        "tenant_id": incident.tenant_id,
        "incident_id": incident.id,
        "workflow_id": incident_workflow_id(incident.id),
        "correlation_id": incident.correlation_id,
        **more,
    }


def sample(requests: Sequence[RemediationRequest], limit: int = 10) -> tuple[RequestView, ...]:
    return tuple(request_view(r) for r in requests[:limit])


UNSETTLED = (RequestStatus.PENDING, RequestStatus.FAILED)
