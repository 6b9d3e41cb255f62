from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Text,
    Uuid,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from awfdrs.db.base import BaseModel, TenantMixin, enum_type
from awfdrs.enums import ActionStatus, ActionType


class Action(BaseModel, TenantMixin):
    """One remediation step (retry, escalate, manual) and every attempt's outcome.

    PENDING → IN_PROGRESS → SUCCEEDED / FAILED; ``attempts`` counts executions, ``started_at`` is
    the first move to IN_PROGRESS. The action's id doubles as the vendor's Idempotency-Key.
    """

    __tablename__ = "actions"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "incident_id"],
            ["incidents.tenant_id", "incidents.id"],
            ondelete="RESTRICT",
        ),
        ForeignKeyConstraint(
            ["tenant_id", "decision_id"],
            ["decisions.tenant_id", "decisions.id"],
            ondelete="RESTRICT",
        ),
        CheckConstraint("attempts >= 0", name="attempts_non_negative"),
        Index("ix_actions_incident_status", "incident_id", "status"),
    )

    incident_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    decision_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    vendor_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("vendors.id", ondelete="RESTRICT")
    )
    action_type: Mapped[ActionType] = mapped_column(enum_type(ActionType, "action_type"))
    status: Mapped[ActionStatus] = mapped_column(
        enum_type(ActionStatus, "status"),
        server_default=ActionStatus.PENDING.value,
        default=ActionStatus.PENDING,
    )
    parameters: Mapped[dict[str, Any]] = mapped_column(
        server_default=text("'{}'::jsonb"), default=dict
    )
    result: Mapped[dict[str, Any] | None] = mapped_column()
    is_reversible: Mapped[bool] = mapped_column()
    attempts: Mapped[int] = mapped_column(server_default="0", default=0)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    error: Mapped[str | None] = mapped_column(Text)
    # When a circuit breaker or rate limit first made it wait; escalated past a maximum.
    deferred_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
