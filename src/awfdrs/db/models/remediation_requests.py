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
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from awfdrs.db.base import Base, BaseModel, TenantMixin, enum_type
from awfdrs.enums import RequestStatus


class RemediationRequest(BaseModel, TenantMixin):
    """One distinct failed request an incident groups, and where its remediation stands.

    A replayable request is the failed event's retry spec (vendor, method, path, canonical
    body); ``request_hash`` identifies it within the incident, so a resend of the same request
    joins its row instead of adding another. A failure with nothing to replay is a row too (per
    correlation id, or per event without one): a human must get it, or the sender's own success
    must prove it recovered. ``idempotency_key`` is derived from the tenant and the first failed
    event that carried the request, and every later row of the same request in the tenant reuses
    it: attempts, re-analyses, approvals, regressions and restarts all send the same key.
    """

    __tablename__ = "remediation_requests"
    __table_args__ = (
        UniqueConstraint("tenant_id", "incident_id", "request_hash"),
        ForeignKeyConstraint(
            ["tenant_id", "incident_id"],
            ["incidents.tenant_id", "incidents.id"],
            ondelete="RESTRICT",
            name="fk_remediation_requests_tenant_id_incidents",
        ),
        ForeignKeyConstraint(
            ["tenant_id", "first_event_id"],
            ["events.tenant_id", "events.id"],
            ondelete="RESTRICT",
            name="fk_remediation_requests_tenant_id_events",
        ),
        CheckConstraint("attempts >= 0", name="attempts"),
        CheckConstraint("event_count >= 1", name="event_count"),
        CheckConstraint(
            "replayable = (method IS NOT NULL AND path IS NOT NULL)",
            name="replayable_has_request",
        ),
        Index("ix_remediation_requests_tenant_hash", "tenant_id", "request_hash", "created_at"),
    )

    incident_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    first_event_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    request_hash: Mapped[str] = mapped_column(String(64))
    idempotency_key: Mapped[str] = mapped_column(String(255))
    replayable: Mapped[bool] = mapped_column()
    vendor_name: Mapped[str | None] = mapped_column(String(255))
    vendor_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("vendors.id", ondelete="RESTRICT")
    )
    method: Mapped[str | None] = mapped_column(String(8))
    path: Mapped[str | None] = mapped_column(String(2048))
    body: Mapped[Any] = mapped_column(JSONB, nullable=True)
    headers: Mapped[dict[str, Any]] = mapped_column(
        server_default=text("'{}'::jsonb"), default=dict
    )
    reversible: Mapped[bool | None] = mapped_column()
    correlation_ids: Mapped[list[str]] = mapped_column(
        ARRAY(Text), server_default=text("'{}'::text[]"), default=list
    )
    event_count: Mapped[int] = mapped_column(Integer, server_default="1", default=1)
    error_code: Mapped[str | None] = mapped_column(String(128))
    error_message: Mapped[str | None] = mapped_column(Text)
    first_failed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_failed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    status: Mapped[RequestStatus] = mapped_column(
        enum_type(RequestStatus, "status"),
        server_default=RequestStatus.PENDING.value,
        default=RequestStatus.PENDING,
    )
    attempts: Mapped[int] = mapped_column(server_default="0", default=0)
    # An attempt's claim lasts until then: no second attempt starts while one may be in flight.
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # last_failed_at as the latest attempt was claimed: the failures that attempt answers.
    sent_for_failed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    deferred_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_status_code: Mapped[int | None] = mapped_column()
    last_response: Mapped[str | None] = mapped_column(Text)
    last_error: Mapped[str | None] = mapped_column(Text)
    action_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When the sender's own success for this request was seen (same operation and correlation).
    evidence_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    note: Mapped[str | None] = mapped_column(Text)


class RequestKey(Base):
    """One Idempotency-Key per request content in a tenant, shared by every incident that meets
    that request; ``succeeded_at`` is set when any of them succeeded, so none sends it again."""

    __tablename__ = "request_keys"
    __table_args__ = (ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="RESTRICT"),)

    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(255))
    succeeded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    succeeded_request_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    answered_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.clock_timestamp()
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True),
        server_default=func.clock_timestamp(),
        onupdate=func.clock_timestamp(),
    )
