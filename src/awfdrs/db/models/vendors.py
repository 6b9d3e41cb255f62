from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, String
from sqlalchemy.orm import Mapped, mapped_column

from awfdrs.db.base import BaseModel, enum_type
from awfdrs.enums import CircuitState


class Vendor(BaseModel):
    """An external service actions call; global, shared by every tenant.

    The circuit breaker lives here, not in a worker's memory, so every worker sees one state.
    """

    __tablename__ = "vendors"
    __table_args__ = (
        CheckConstraint("rate_limit_per_minute > 0", name="rate_limit_positive"),
        CheckConstraint("failure_threshold > 0", name="failure_threshold_positive"),
        CheckConstraint("open_seconds >= 0", name="open_seconds_non_negative"),
        CheckConstraint("half_open_max_calls > 0", name="half_open_max_calls_positive"),
        CheckConstraint("circuit_breaker_failure_count >= 0", name="failure_count_non_negative"),
    )

    name: Mapped[str] = mapped_column(String(255), unique=True)
    base_url: Mapped[str] = mapped_column(String(2048))
    circuit_breaker_state: Mapped[CircuitState] = mapped_column(
        enum_type(CircuitState, "circuit_breaker_state"),
        server_default=CircuitState.CLOSED.value,
        default=CircuitState.CLOSED,
    )
    circuit_breaker_failure_count: Mapped[int] = mapped_column(server_default="0", default=0)
    rate_limit_per_minute: Mapped[int] = mapped_column(server_default="60", default=60)
    failure_threshold: Mapped[int] = mapped_column(server_default="5", default=5)
    open_seconds: Mapped[int] = mapped_column(server_default="30", default=30)
    half_open_max_calls: Mapped[int] = mapped_column(server_default="1", default=1)
    opened_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
