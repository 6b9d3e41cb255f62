from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Float,
    ForeignKeyConstraint,
    Index,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from awfdrs.db.base import BaseModel, TenantMixin, enum_type
from awfdrs.enums import ActionType, ErrorClass, GateControl


class Decision(BaseModel, TenantMixin):
    """What was decided for an incident and why: the audit trail, append-only like events.

    Analyzer decisions carry ``ai_model``; an operator's approval or rejection is a decision of
    its own with ``decided_by`` set. ``gate`` names the control that held the action back (null
    when it may run) and ``gate_reason`` says why, so "why didn't it act?" is answered here.
    """

    __tablename__ = "decisions"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id"),
        ForeignKeyConstraint(
            ["tenant_id", "incident_id"],
            ["incidents.tenant_id", "incidents.id"],
            ondelete="RESTRICT",
        ),
        CheckConstraint(
            "confidence_score >= 0 AND confidence_score <= 1", name="confidence_in_unit_range"
        ),
        CheckConstraint("attempt >= 1", name="attempt_positive"),
        Index("ix_decisions_incident_created", "incident_id", "created_at"),
    )

    incident_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    decision_type: Mapped[ActionType] = mapped_column(enum_type(ActionType, "decision_type"))
    reasoning: Mapped[str] = mapped_column(Text)
    confidence_score: Mapped[float] = mapped_column(Float)
    ai_model: Mapped[str] = mapped_column(String(255))
    classification: Mapped[ErrorClass | None] = mapped_column(
        enum_type(ErrorClass, "classification")
    )
    attempt: Mapped[int] = mapped_column(server_default="1", default=1)
    gate: Mapped[GateControl | None] = mapped_column(enum_type(GateControl, "gate"))
    gate_reason: Mapped[str | None] = mapped_column(Text)
    decided_by: Mapped[str | None] = mapped_column(String(255))
    details: Mapped[dict[str, Any]] = mapped_column(
        server_default=text("'{}'::jsonb"), default=dict
    )
