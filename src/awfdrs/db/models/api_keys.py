from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from awfdrs.db.base import BaseModel, TenantMixin


class ApiKey(BaseModel, TenantMixin):
    """A tenant's credential for the HTTP edge: public ``prefix``, SHA-256 of the secret.

    The secret itself is shown once, when the key is created, and never stored. Several keys
    may be active per tenant, so a rotation overlaps; revoked and expired keys are kept.
    """

    __tablename__ = "api_keys"
    __table_args__ = (
        CheckConstraint("role IN ('ingest', 'viewer', 'operator', 'admin')", name="role"),
        CheckConstraint("length(secret_hash) = 64", name="secret_hash"),
        Index("ix_api_keys_tenant_id", "tenant_id", "created_at"),
    )

    name: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(32))
    prefix: Mapped[str] = mapped_column(String(32), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
