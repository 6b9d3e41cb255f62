from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, Float, String, Text, text
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
        CheckConstraint("half_open_in_flight >= 0", name="half_open_in_flight_non_negative"),
        CheckConstraint("rate_limit_window_seconds > 0", name="rate_limit_window_positive"),
        CheckConstraint(
            "failure_rate_threshold IS NULL OR "
            "(failure_rate_threshold > 0 AND failure_rate_threshold <= 1)",
            name="failure_rate_threshold_in_unit_range",
        ),
        CheckConstraint("failure_rate_window_seconds > 0", name="failure_rate_window_positive"),
        CheckConstraint("failure_rate_min_calls > 0", name="failure_rate_min_calls_positive"),
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
    # Probes claimed while HALF_OPEN; the lease frees them if a worker dies mid-probe.
    half_open_in_flight: Mapped[int] = mapped_column(server_default="0", default=0)
    probe_lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # An operator's vendor-wide stop.
    forced_open: Mapped[bool] = mapped_column(server_default=text("false"), default=False)
    forced_by: Mapped[str | None] = mapped_column(String(255))
    forced_reason: Mapped[str | None] = mapped_column(Text)
    forced_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The vendor asked everyone to wait (429 with Retry-After).
    blocked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    rate_limit_window_seconds: Mapped[float] = mapped_column(
        Float, server_default="60", default=60.0
    )
    # Optional second trip condition: failure rate over a window with a minimum of calls.
    failure_rate_threshold: Mapped[float | None] = mapped_column(Float)
    failure_rate_window_seconds: Mapped[float] = mapped_column(
        Float, server_default="60", default=60.0
    )
    failure_rate_min_calls: Mapped[int] = mapped_column(server_default="10", default=10)
    window_started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    window_calls: Mapped[int] = mapped_column(server_default="0", default=0)
    window_failures: Mapped[int] = mapped_column(server_default="0", default=0)
