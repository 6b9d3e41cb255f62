"""The operator's read model of incidents, shared by the CLI (``incidents list/show``) and the
operator API, so both show the same thing.

Every function runs in one tenant's transaction (:func:`awfdrs.db.session.tenant_session`), so
an incident of another tenant is simply not found: row-level security and the repository's
tenant filter both apply. The workflow's snapshot (the plan awaiting approval, what it waits
for) comes from Temporal and is passed in by the caller, who has the client.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from awfdrs.contracts import IncidentSnapshot
from awfdrs.enums import IncidentStatus, Phase

# The phases in which the workflow waits for a person: a plan awaiting approval, held by a
# control (kill switch, fuse, breaker), or escalated and waiting for an operator's answer.
NEEDS_A_HUMAN = tuple(p for p in Phase if p.needs_a_human)


def incident_row(incident: Any, tenant: str) -> dict[str, Any]:
    """One incident as listed (``tenant`` is how the caller names it: a name or an id;
    ``tenant_id`` is always the id)."""
    return {
        "id": str(incident.id),
        "tenant_id": str(incident.tenant_id),
        "tenant": tenant,
        "workflow_id": str(incident.workflow_id) if incident.workflow_id else None,
        "status": incident.status.value,
        "phase": incident.phase.value,
        "needs_a_human": incident.phase.needs_a_human,
        "severity": incident.severity.value,
        "title": incident.title,
        "events": incident.event_count,
        "first_seen_at": incident.first_seen_at.isoformat(),
        "last_seen_at": incident.last_seen_at.isoformat(),
        "regression_of": str(incident.regression_of) if incident.regression_of else None,
        "resolution": incident.resolution,
    }


async def list_incidents(
    sessions: async_sessionmaker[AsyncSession],
    tenant_id: uuid.UUID,
    *,
    tenant_label: str | None = None,
    **filters: Any,
) -> list[dict[str, Any]]:
    """Newest first; ``filters`` are those of :meth:`IncidentRepository.search`."""
    from awfdrs.db.repositories import IncidentRepository
    from awfdrs.db.session import tenant_session

    async with tenant_session(sessions, tenant_id) as session:
        found = await IncidentRepository(session, tenant_id=tenant_id).list_matching(**filters)
        return [incident_row(i, tenant_label or str(tenant_id)) for i in found]


async def incident_details(
    sessions: async_sessionmaker[AsyncSession],
    tenant_id: uuid.UUID,
    incident_id: uuid.UUID,
    snapshot: IncidentSnapshot | None,
) -> dict[str, Any]:
    """The incident with its events, decisions, actions and remediation requests, and from the
    snapshot (None when the workflow is past retention) what it waits for and the plan.

    Raises :class:`awfdrs.errors.NotFoundError` when the tenant has no such incident.
    """
    from awfdrs.activities.context import request_details
    from awfdrs.db.repositories import (
        ActionRepository,
        DecisionRepository,
        EventRepository,
        IncidentRepository,
        RequestRepository,
    )
    from awfdrs.db.session import tenant_session

    if snapshot is not None and snapshot.tenant_id != tenant_id:
        snapshot = None  # never show another tenant's workflow state, whatever was passed in
    async with tenant_session(sessions, tenant_id) as session:
        incident = await IncidentRepository(session, tenant_id=tenant_id).get(incident_id)
        until = incident.resolved_at if incident.status is IncidentStatus.RESOLVED else None
        events = await EventRepository(session, tenant_id=tenant_id).list_for_signature(
            incident.signature, since=incident.created_at, until=until, limit=50
        )
        decisions = await DecisionRepository(session, tenant_id=tenant_id).list_for_incident(
            incident_id
        )
        actions = await ActionRepository(session, tenant_id=tenant_id).list_for_incident(
            incident_id
        )
        requests = await RequestRepository(session, tenant_id=tenant_id).list_for_incident(
            incident_id
        )
        waiting = snapshot.waiting_for if snapshot else None
        return {
            **incident_row(incident, str(tenant_id)),
            "signature": incident.signature,
            "phase_reason": incident.phase_reason,
            "details": snapshot.details if snapshot else None,
            "waiting_for": waiting,
            "plan": snapshot.plan.model_dump(mode="json") if snapshot and snapshot.plan else None,
            # The plan an approve/reject must name; only while the workflow waits on it.
            "plan_awaiting_approval": snapshot.plan.plan_id
            if snapshot and snapshot.plan and incident.phase is Phase.AWAITING_APPROVAL
            else None,
            "requests": [request_details(r) for r in requests],
            "events_shown": [
                {"at": e.occurred_at.isoformat(), "type": e.event_type,
                 "key": e.idempotency_key, "correlation_id": e.correlation_id,
                 "error": e.payload.get("error")}
                for e in events
            ],
            "decisions": [
                {"at": d.created_at.isoformat(), "type": d.decision_type.value,
                 "confidence": d.confidence_score, "model": d.ai_model,
                 "by": d.decided_by, "gate": d.gate.value if d.gate else None,
                 "gate_reason": d.gate_reason, "reasoning": d.reasoning}
                for d in decisions
            ],
            "actions": [
                {"at": a.created_at.isoformat(), "type": a.action_type.value,
                 "status": a.status.value, "attempts": a.attempts,
                 "started_at": a.started_at.isoformat() if a.started_at else None,
                 "finished_at": a.finished_at.isoformat() if a.finished_at else None,
                 "summary": (a.result or {}).get("summary"), "error": a.error}
                for a in actions
            ],
        }  # fmt: skip
