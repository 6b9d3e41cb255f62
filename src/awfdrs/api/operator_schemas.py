"""The operator API's bodies and answers. Bodies forbid unknown fields: in particular a body
cannot name who acts (``actor``, ``by``): the actor is the key that signs the request."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from awfdrs.contracts.base import OptionalReason, Reason


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PlanAnswer(Body):
    """approve / reject: the plan reviewed (``GET /v1/incidents/{id}`` shows the one waiting)."""

    plan_id: str = Field(min_length=1, max_length=200)
    reason: OptionalReason = None


class CloseAnswer(Body):
    """resolve / ignore: why, for the record."""

    reason: Reason


class ActivateSwitch(Body):
    """Stop automation for the key's tenant, or one of its workflows (name or id)."""

    reason: Reason
    workflow: str | None = Field(None, min_length=1, max_length=255)
    duration_seconds: float | None = Field(None, gt=0, le=366 * 86400)
    expires_at: AwareDatetime | None = None

    @model_validator(mode="after")
    def _one_expiry(self) -> ActivateSwitch:
        if self.duration_seconds is not None and self.expires_at is not None:
            raise ValueError("give duration_seconds or expires_at, not both")
        return self


class ReleaseSwitch(Body):
    """Release one switch, or those of a scope (no workflow: the tenant-wide ones)."""

    reason: OptionalReason = None
    workflow: str | None = Field(None, min_length=1, max_length=255)
    switch_id: uuid.UUID | None = None


class ForceOpen(Body):
    reason: Reason


class IncidentSummary(BaseModel):
    id: uuid.UUID
    tenant_id: uuid.UUID
    tenant: str
    workflow_id: uuid.UUID | None
    status: str
    phase: str
    needs_a_human: bool
    severity: str
    title: str
    events: int
    first_seen_at: str
    last_seen_at: str
    regression_of: uuid.UUID | None
    resolution: str | None


class IncidentPage(BaseModel):
    """Newest first; ``next_offset`` is the ``offset`` of the next page, None on the last."""

    items: list[IncidentSummary]
    next_offset: int | None


class DecisionEntry(BaseModel):
    at: str
    type: str
    confidence: float
    model: str | None
    by: str | None
    gate: str | None
    gate_reason: str | None
    reasoning: str


class ActionEntry(BaseModel):
    at: str
    type: str
    status: str
    attempts: int
    started_at: str | None
    finished_at: str | None
    summary: str | None
    error: str | None


class EventEntry(BaseModel):
    at: str
    type: str
    key: str
    correlation_id: str | None
    error: Any


class IncidentDetail(IncidentSummary):
    """One incident: its decisions, actions, remediation requests and their states, and the
    plan awaiting approval (``plan_awaiting_approval`` is the id approve/reject must name)."""

    signature: str
    phase_reason: str | None
    details: str | None
    waiting_for: str | None
    plan: dict[str, Any] | None
    plan_awaiting_approval: str | None
    requests: list[dict[str, Any]]
    events_shown: list[EventEntry]
    decisions: list[DecisionEntry]
    actions: list[ActionEntry]
