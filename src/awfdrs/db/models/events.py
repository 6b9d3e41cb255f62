from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    DateTime,
    ForeignKeyConstraint,
    Index,
    SmallInteger,
    String,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from awfdrs.db.base import BaseModel, CorrelationMixin, TenantMixin, enum_type
from awfdrs.enums import EventOutcome, Severity


class Event(BaseModel, TenantMixin, CorrelationMixin):
    """One delivery of a tenant's event, stored exactly once per ``(tenant_id, idempotency_key)``.

    Append-only: triggers refuse UPDATE, DELETE and TRUNCATE, and the application role holds
    neither privilege. ``signature`` is set for failures only.
    """

    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("tenant_id", "idempotency_key"),
        # Target of the composite foreign keys that keep a request with its tenant's event.
        UniqueConstraint("tenant_id", "id"),
        ForeignKeyConstraint(
            ["tenant_id", "workflow_id"],
            ["workflows.tenant_id", "workflows.id"],
            ondelete="RESTRICT",
        ),
        # The seed's index, with occurred_at appended so "recent events of a workflow" is one
        # index range scan in time order instead of a scan and a sort.
        Index("ix_events_tenant_workflow", "tenant_id", "workflow_id", "occurred_at"),
        Index("ix_events_tenant_occurred", "tenant_id", "occurred_at"),
        Index(
            "ix_events_tenant_signature",
            "tenant_id",
            "signature",
            "occurred_at",
            postgresql_where=text("signature IS NOT NULL"),
        ),
    )

    workflow_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    event_type: Mapped[str] = mapped_column(String(255))
    outcome: Mapped[EventOutcome] = mapped_column(enum_type(EventOutcome, "outcome"))
    payload: Mapped[dict[str, Any]] = mapped_column()
    idempotency_key: Mapped[str] = mapped_column(String(255))
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    severity: Mapped[Severity | None] = mapped_column(enum_type(Severity, "severity"))
    signature: Mapped[str | None] = mapped_column(String(64))
    fingerprint_version: Mapped[int | None] = mapped_column(SmallInteger)
    payload_hash: Mapped[str] = mapped_column(String(64))
