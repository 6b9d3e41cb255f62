from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DateTime, Float, Index, Text, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from awfdrs.db.base import BaseModel, TenantMixin


class FuseEpisode(BaseModel, TenantMixin):
    """A period in which too many of a tenant's incidents opened at once and automation stopped.

    At most one open episode per tenant (partial unique index): its single escalation stands
    for every incident of the episode.
    """

    __tablename__ = "fuse_episodes"
    __table_args__ = (
        Index(
            "uq_fuse_episodes_open",
            "tenant_id",
            unique=True,
            postgresql_where=text("closed_at IS NULL"),
        ),
    )

    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    escalated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    incident_count: Mapped[int] = mapped_column()
    threshold: Mapped[int] = mapped_column()
    window_seconds: Mapped[float] = mapped_column(Float)
    # The one incident whose workflow sends the episode's escalation, claimed atomically.
    escalation_incident_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    escalation_claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    escalation_error: Mapped[str | None] = mapped_column(Text)
