from __future__ import annotations

import uuid

from sqlalchemy import BigInteger, ForeignKeyConstraint, SmallInteger, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from awfdrs.db.base import Base


class WorkflowEventCount(Base):
    """Events stored per workflow, kept by a trigger on ``events``, so counting is a sum of a
    few rows instead of a scan of every event.

    Each workflow has up to ``COUNT_SLOTS`` rows, one per slot: a transaction adds to the slot
    of its database connection, so concurrent ingest transactions of one workflow rarely wait on
    the same row. The count is the sum of the slots.
    """

    __tablename__ = "workflow_event_counts"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "workflow_id"],
            ["workflows.tenant_id", "workflows.id"],
            ondelete="RESTRICT",
        ),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    workflow_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    slot: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    events: Mapped[int] = mapped_column(BigInteger)
