from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column, relationship

from awfdrs.db.base import BaseModel, TenantMixin, enum_type
from awfdrs.enums import CircuitState


def _setting_checks() -> tuple[CheckConstraint, ...]:
    """The bounds of :class:`ConnectionSettings`, for each table that holds them (each table
    needs constraint objects of its own)."""
    return (
        CheckConstraint("rate_limit_per_minute > 0", name="rate_limit_positive"),
        CheckConstraint("failure_threshold > 0", name="failure_threshold_positive"),
        CheckConstraint("open_seconds >= 0", name="open_seconds_non_negative"),
        CheckConstraint("half_open_max_calls > 0", name="half_open_max_calls_positive"),
        CheckConstraint("rate_limit_window_seconds > 0", name="rate_limit_window_positive"),
        CheckConstraint(
            "failure_rate_threshold IS NULL OR "
            "(failure_rate_threshold > 0 AND failure_rate_threshold <= 1)",
            name="failure_rate_threshold_in_unit_range",
        ),
        CheckConstraint("failure_rate_window_seconds > 0", name="failure_rate_window_positive"),
        CheckConstraint("failure_rate_min_calls > 0", name="failure_rate_min_calls_positive"),
    )


class ConnectionSettings:
    """The breaker and rate-limit settings: a vendor's defaults, a connection's own values."""

    rate_limit_per_minute: Mapped[int] = mapped_column(server_default="60", default=60)
    failure_threshold: Mapped[int] = mapped_column(server_default="5", default=5)
    open_seconds: Mapped[int] = mapped_column(server_default="30", default=30)
    half_open_max_calls: Mapped[int] = mapped_column(server_default="1", default=1)
    rate_limit_window_seconds: Mapped[float] = mapped_column(
        Float, server_default="60", default=60.0
    )
    # Optional second trip condition: failure rate over a window with a minimum of calls.
    failure_rate_threshold: Mapped[float | None] = mapped_column(Float)
    failure_rate_window_seconds: Mapped[float] = mapped_column(
        Float, server_default="60", default=60.0
    )
    failure_rate_min_calls: Mapped[int] = mapped_column(server_default="10", default=10)


class Stoppable:
    """A stop that holds every call until it is released, with who pulled it and why."""

    forced_open: Mapped[bool] = mapped_column(server_default=text("false"), default=False)
    forced_by: Mapped[str | None] = mapped_column(String(255))
    forced_reason: Mapped[str | None] = mapped_column(Text)
    forced_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Vendor(ConnectionSettings, Stoppable, BaseModel):
    """An external service in the deployment's catalog: its name, its default base URL, the
    settings a new connection starts from, and a deployment-wide stop.

    Tenants reach a vendor only through their own :class:`VendorConnection`, which holds the
    breaker, the rate limit and the credentials; ``forced_open`` here stops every tenant.
    """

    __tablename__ = "vendors"
    __table_args__ = _setting_checks()

    name: Mapped[str] = mapped_column(String(255), unique=True)
    base_url: Mapped[str] = mapped_column(String(2048))
    # The settings columns (ConnectionSettings) are the defaults a new connection copies; the
    # stop (Stoppable) is the deployment administrator's, for every tenant's connection at once.


# The settings a connection copies from its vendor when none is given.
CONNECTION_SETTINGS = (
    "rate_limit_per_minute",
    "rate_limit_window_seconds",
    "failure_threshold",
    "open_seconds",
    "half_open_max_calls",
    "failure_rate_threshold",
    "failure_rate_window_seconds",
    "failure_rate_min_calls",
)


class VendorConnection(ConnectionSettings, Stoppable, TenantMixin, BaseModel):
    """One tenant's connection to a vendor: where its retries go, with which credentials, and
    the circuit breaker and rate limit that only this tenant's calls move.

    The breaker lives in this row, not in a worker's memory, so every worker sees one state;
    callers lock the row around :mod:`awfdrs.remediation.breaker` and ``rate_limit``.
    ``credentials`` is a Fernet token of a JSON object (header name → value), never plaintext;
    ``credential_names`` are the header names, in clear so that views need no key.
    """

    __tablename__ = "vendor_connections"
    __table_args__ = (
        UniqueConstraint("tenant_id", "vendor_id"),
        *_setting_checks(),
        CheckConstraint("circuit_breaker_failure_count >= 0", name="failure_count_non_negative"),
        CheckConstraint("half_open_in_flight >= 0", name="half_open_in_flight_non_negative"),
        CheckConstraint(
            "(credentials IS NULL) = (cardinality(credential_names) = 0)",
            name="credentials_named",
        ),
    )

    vendor_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("vendors.id", ondelete="RESTRICT")
    )
    # NULL: the vendor's default base URL.
    base_url: Mapped[str | None] = mapped_column(String(2048))
    credentials: Mapped[bytes | None] = mapped_column(LargeBinary)
    credential_names: Mapped[list[str]] = mapped_column(
        ARRAY(Text), server_default=text("'{}'::text[]"), default=list
    )
    circuit_breaker_state: Mapped[CircuitState] = mapped_column(
        enum_type(CircuitState, "circuit_breaker_state"),
        server_default=CircuitState.CLOSED.value,
        default=CircuitState.CLOSED,
    )
    circuit_breaker_failure_count: Mapped[int] = mapped_column(server_default="0", default=0)
    opened_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Probes claimed while HALF_OPEN; the lease frees them if a worker dies mid-probe.
    half_open_in_flight: Mapped[int] = mapped_column(server_default="0", default=0)
    probe_lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The stop (Stoppable) here is an operator's, of this tenant's calls only.
    # The vendor asked this tenant to wait (429 with Retry-After).
    blocked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    window_started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    window_calls: Mapped[int] = mapped_column(server_default="0", default=0)
    window_failures: Mapped[int] = mapped_column(server_default="0", default=0)

    # selectin, not joined: a joined load under get_for_update would lock the shared vendor row
    # too, and serialise every tenant's calls again.
    vendor: Mapped[Vendor] = relationship(lazy="selectin")

    @property
    def name(self) -> str:
        """The vendor's name, as breaker and rate-limit messages say it."""
        return self.vendor.name

    @property
    def effective_base_url(self) -> str:
        return self.base_url or self.vendor.base_url
