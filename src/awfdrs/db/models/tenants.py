from __future__ import annotations

from typing import Any

from sqlalchemy import String, text
from sqlalchemy.orm import Mapped, mapped_column

from awfdrs.db.base import BaseModel


class Tenant(BaseModel):
    """An organisation whose workflows send events.

    ``settings`` holds :class:`awfdrs.contracts.TenantSettings` as JSON; row-level security shows
    the application role only the row of the tenant its transaction is set to.
    """

    __tablename__ = "tenants"

    name: Mapped[str] = mapped_column(String(255), unique=True)
    is_active: Mapped[bool] = mapped_column(server_default=text("true"), default=True)
    settings: Mapped[dict[str, Any]] = mapped_column(
        server_default=text("'{}'::jsonb"), default=dict
    )
