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
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from awfdrs.db.base import BaseModel, CorrelationMixin, TenantMixin, enum_type
from awfdrs.enums import GateControl, IncidentStatus, Phase, Severity

OPEN_STATUS_SQL = "status IN ('NEW', 'ANALYZING', 'ACTIONED')"


class Incident(BaseModel, TenantMixin, CorrelationMixin):
    """Failures of one signature, grouped; the row one ``IncidentWorkflow`` drives.

    At most one open incident (NEW, ANALYZING, ACTIONED) per ``(tenant_id, signature)`` is
    enforced by the partial unique index ``uq_incidents_open_signature``. ``event_count`` counts
    only events really inserted, so redelivery never inflates it.
    """

    __tablename__ = "incidents"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id"),
        ForeignKeyConstraint(
            ["tenant_id", "workflow_id"],
            ["workflows.tenant_id", "workflows.id"],
            ondelete="RESTRICT",
        ),
        ForeignKeyConstraint(
            ["tenant_id", "regression_of"],
            ["incidents.tenant_id", "incidents.id"],
            ondelete="RESTRICT",
        ),
        CheckConstraint("event_count >= 0", name="event_count_non_negative"),
        CheckConstraint(
            "(status IN ('RESOLVED', 'IGNORED')) = (resolved_at IS NOT NULL)",
            name="resolved_at_iff_closed",
        ),
        Index(
            "uq_incidents_open_signature",
            "tenant_id",
            "signature",
            unique=True,
            postgresql_where=text(OPEN_STATUS_SQL),
        ),
        # The seed's index, with created_at appended for newest-first pages of one status.
        Index("ix_incidents_tenant_status", "tenant_id", "status", "created_at"),
        Index("ix_incidents_tenant_signature", "tenant_id", "signature", "created_at"),
        Index(
            "ix_incidents_tenant_phase",
            "tenant_id",
            "phase",
            "created_at",
            postgresql_where=text(OPEN_STATUS_SQL),
        ),
        Index(
            "ix_incidents_open_operation",
            "tenant_id",
            "workflow_id",
            "operation",
            postgresql_where=text(OPEN_STATUS_SQL),
        ),
    )

    workflow_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    signature: Mapped[str] = mapped_column(String(64))
    operation: Mapped[str] = mapped_column(String(255))
    title: Mapped[str] = mapped_column(String(500))
    status: Mapped[IncidentStatus] = mapped_column(
        enum_type(IncidentStatus, "status"),
        server_default=IncidentStatus.NEW.value,
        default=IncidentStatus.NEW,
    )
    severity: Mapped[Severity] = mapped_column(enum_type(Severity, "severity"))
    event_count: Mapped[int] = mapped_column(server_default="0", default=0)
    first_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    regression_of: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolution: Mapped[str | None] = mapped_column(Text)
    # Where the workflow is (waiting for approval, held, for an operator …) and why, in words.
    phase: Mapped[Phase] = mapped_column(
        enum_type(Phase, "phase"), server_default=Phase.GROUPING.value, default=Phase.GROUPING
    )
    phase_reason: Mapped[str | None] = mapped_column(Text)
    # The control holding it (held, or awaiting an approval the control asked for).
    held_by: Mapped[GateControl | None] = mapped_column(enum_type(GateControl, "held_by"))
