"""A connection's rate limit: a sliding window of claimed call slots, shared through PostgreSQL.

Per connection (tenant and vendor): one tenant's traffic never delays another's."""

from __future__ import annotations

from datetime import datetime, timedelta

from awfdrs.db.models import VendorCall, VendorConnection
from awfdrs.db.repositories import VendorCallRepository

# Slots are spaced by the window plus this guard, so network jitter between claiming a slot and
# the request reaching the vendor cannot put one call too many into any window the vendor sees.
GUARD = timedelta(milliseconds=250)


async def claim_slot(
    calls: VendorCallRepository, vendor: VendorConnection, now: datetime
) -> timedelta | None:
    """Claim a call slot now, or return how long until one frees up (nothing claimed then).

    The caller holds the connection's row lock, so counting and claiming are one atomic step for
    every worker. A vendor that answered 429 with Retry-After is not called before that time.
    """
    if vendor.blocked_until is not None and vendor.blocked_until > now:
        return vendor.blocked_until - now
    window = timedelta(seconds=vendor.rate_limit_window_seconds) + GUARD
    # The window is full when it holds `limit` slots; the next one frees when the call that is
    # `limit` calls back leaves it.
    oldest_counted = await calls.find_nth_newest(
        vendor.vendor_id, now - window, vendor.rate_limit_per_minute
    )
    if oldest_counted is not None:
        return oldest_counted + window - now
    calls.session.add(
        VendorCall(tenant_id=vendor.tenant_id, vendor_id=vendor.vendor_id, called_at=now)
    )
    return None


def note_retry_after(vendor: VendorConnection, now: datetime, seconds: float) -> None:
    """The vendor said "wait": every worker waits on this connection, not only the one it told."""
    until = now + timedelta(seconds=seconds)
    if vendor.blocked_until is None or vendor.blocked_until < until:
        vendor.blocked_until = until
