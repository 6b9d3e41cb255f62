from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DateTime, ForeignKeyConstraint, Index, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from awfdrs.db.base import BaseModel, TenantMixin


class VendorCall(TenantMixin, BaseModel):
    """One claimed slot of a connection's rate limit: the sliding window every worker shares.

    Counted per connection (tenant and vendor), so one tenant's calls never fill another's
    window. Rows older than the window are deleted by the next claim on that connection.
    """

    __tablename__ = "vendor_calls"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "vendor_id"],
            ["vendor_connections.tenant_id", "vendor_connections.vendor_id"],
            ondelete="CASCADE",
        ),
        Index("ix_vendor_calls_connection_called", "tenant_id", "vendor_id", "called_at"),
    )

    vendor_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    called_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
