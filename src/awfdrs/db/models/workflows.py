from __future__ import annotations

from typing import Any

from sqlalchemy import String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from awfdrs.db.base import BaseModel, TenantMixin


class Workflow(BaseModel, TenantMixin):
    """A tenant's business workflow (``payments``, ``invoice-sync``) that events belong to."""

    __tablename__ = "workflows"
    __table_args__ = (
        UniqueConstraint("tenant_id", "name"),
        # Target of the composite foreign keys that keep children inside their tenant.
        UniqueConstraint("tenant_id", "id"),
    )

    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(Text, server_default="", default="")
    is_active: Mapped[bool] = mapped_column(server_default=text("true"), default=True)
    settings: Mapped[dict[str, Any]] = mapped_column(
        server_default=text("'{}'::jsonb"), default=dict
    )
