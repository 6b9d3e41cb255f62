from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    ForeignKeyConstraint,
    Index,
    String,
    Text,
    Uuid,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from awfdrs.db.base import BaseModel, TenantMixin


class KillSwitch(BaseModel, TenantMixin):
    """An operator's emergency stop for a tenant (``workflow_id`` null) or one of its workflows.

    Rows are kept after release (``released_by``, ``released_at``) as the record of who stopped
    automation, when and why.
    """

    __tablename__ = "kill_switches"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "workflow_id"],
            ["workflows.tenant_id", "workflows.id"],
            ondelete="RESTRICT",
        ),
        CheckConstraint("length(btrim(reason)) > 0", name="reason_not_blank"),
        CheckConstraint("length(btrim(activated_by)) > 0", name="activated_by_not_blank"),
        CheckConstraint(
            "is_active OR released_at IS NOT NULL OR expires_at IS NOT NULL",
            name="inactive_means_released_or_expired",
        ),
        Index(
            "ix_kill_switches_tenant_active",
            "tenant_id",
            "workflow_id",
            postgresql_where=text("is_active"),
        ),
    )

    workflow_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    is_active: Mapped[bool] = mapped_column(server_default=text("true"), default=True)
    reason: Mapped[str] = mapped_column(Text)
    activated_by: Mapped[str] = mapped_column(String(255))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    released_by: Mapped[str | None] = mapped_column(String(255))
    released_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    release_reason: Mapped[str | None] = mapped_column(Text)
