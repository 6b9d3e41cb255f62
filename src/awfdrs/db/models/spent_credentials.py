from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from awfdrs.db.base import BaseModel, TenantMixin


class SpentCredential(BaseModel, TenantMixin):
    """A signed command credential (its ``jti``) and the one use it was spent on."""

    __tablename__ = "spent_credentials"
    __table_args__ = (
        UniqueConstraint("tenant_id", "jti"),
        Index("ix_spent_credentials_tenant_id_expires_at", "tenant_id", "expires_at"),
    )

    jti: Mapped[str] = mapped_column(String(64))
    use_key: Mapped[str] = mapped_column(String(255))
    command: Mapped[str] = mapped_column(String(32))
    principal: Mapped[str] = mapped_column(String(255))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
