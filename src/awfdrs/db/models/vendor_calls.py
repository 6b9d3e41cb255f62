from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from awfdrs.db.base import BaseModel


class VendorCall(BaseModel):
    """One claimed slot of a vendor's rate limit: the sliding window every worker shares.

    Rows older than the vendor's window are deleted by the next claim for that vendor.
    """

    __tablename__ = "vendor_calls"
    __table_args__ = (Index("ix_vendor_calls_vendor_called", "vendor_id", "called_at"),)

    vendor_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("vendors.id", ondelete="CASCADE"))
    called_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
