from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from awfdrs.db.base import Base


class AuditEntry(Base):
    """One row of a tenant's hash-chained audit (migration 0007 has the whole story).

    Written only by the database: triggers on the domain tables and ``audit_record_command``
    call ``audit_append``, which numbers and chains the row under a per-tenant lock. Nobody may
    change or delete a row, not even the owner (triggers refuse); ``awfdrs.audit`` verifies.
    """

    __tablename__ = "audit_log"
    __table_args__ = (
        UniqueConstraint("tenant_id", "seq"),
        CheckConstraint("seq >= 1", name="seq_positive"),
        CheckConstraint("length(btrim(actor)) > 0", name="actor_not_blank"),
        CheckConstraint("kind ~ '^[a-z_]+\\.[a-z_]+$'", name="kind_format"),
        CheckConstraint("length(prev_hash) = 64 AND length(hash) = 64", name="hash_length"),
    )

    id: Mapped[uuid.UUID] = mapped_column(
        Uuid, primary_key=True, server_default=func.gen_random_uuid()
    )
    tenant_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("tenants.id", ondelete="RESTRICT")
    )
    seq: Mapped[int] = mapped_column(BigInteger)
    # The database's clock at the append, under the chain's lock: never earlier than the row
    # before it.
    occurred_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.clock_timestamp()
    )
    actor: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(64))
    subject_type: Mapped[str | None] = mapped_column(String(64))
    subject_id: Mapped[str | None] = mapped_column(Text)
    body: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The latest ``seq`` and ``hash`` of a tenant's chain: the row every append locks."""

    __tablename__ = "audit_heads"
    __table_args__ = (CheckConstraint("seq >= 0", name="seq_non_negative"),)

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("tenants.id", ondelete="RESTRICT"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.clock_timestamp()
    )
