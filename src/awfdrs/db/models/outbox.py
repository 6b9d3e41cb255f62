from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKeyConstraint,
    Identity,
    Index,
    String,
    Text,
    Uuid,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from awfdrs.db.base import Base


class OutboxEntry(Base):
    """What an ingest transaction must tell an incident's workflow, written in that transaction.

    The dispatcher claims rows (``FOR UPDATE SKIP LOCKED``, through SECURITY DEFINER functions:
    it works across tenants), signals-with-start the workflows and deletes what it delivered, so
    a crash between the commit and the start loses nothing and ingest never waits for Temporal.
    ``start`` is the workflow's input, in case the workflow must be started.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "incident_id"],
            ["incidents.tenant_id", "incidents.id"],
            ondelete="RESTRICT",
            name="fk_outbox_tenant_id_incidents",
        ),
        Index("ix_outbox_available", "task_queue", "available_at", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    incident_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    # Where the incident's workflow runs; each dispatcher delivers its own queue's rows.
    task_queue: Mapped[str] = mapped_column(String(255))
    start: Mapped[dict[str, Any]] = mapped_column()
    severity: Mapped[str | None] = mapped_column(String(32))
    recovered: Mapped[bool] = mapped_column(server_default=text("false"), default=False)
    joined: Mapped[bool] = mapped_column(server_default=text("false"), default=False)
    opened: Mapped[bool] = mapped_column(server_default=text("false"), default=False)
    attempts: Mapped[int] = mapped_column(server_default="0", default=0)
    available_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.clock_timestamp()
    )
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.clock_timestamp()
    )
