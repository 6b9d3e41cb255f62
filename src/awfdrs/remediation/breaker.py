"""A tenant's circuit breaker on one vendor, shared by every worker through the connection's row.

CLOSED ──(failure_threshold consecutive failures, or failure rate over a window)──▶ OPEN
OPEN ──(open_seconds pass)──▶ HALF_OPEN: at most half_open_max_calls probes at a time
HALF_OPEN ──probe succeeds──▶ CLOSED;  ──probe fails──▶ OPEN again

Callers hold the connection row's lock (SELECT … FOR NO KEY UPDATE) around :func:`acquire` and
:func:`record`, which is what makes claiming a probe atomic across workers. A permanent 4xx is
the request's fault, not the vendor's, and counts as a success here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from awfdrs.db.models import Vendor, VendorConnection
from awfdrs.enums import CircuitState

# How often a deferred action asks again whether an operator released a forced-open connection.
FORCED_RECHECK = timedelta(seconds=5)
# While the allowed probes are out, others wait this long before asking again.
PROBE_WAIT = timedelta(seconds=1)


@dataclass(frozen=True)
class Permit:
    probe: bool


@dataclass(frozen=True)
class Blocked:
    retry_after: timedelta
    reason: str


def acquire(vendor: VendorConnection, now: datetime, lease: timedelta) -> Permit | Blocked:
    """May a call go out on this connection now? Claims a probe slot when HALF_OPEN (mutates
    the row)."""
    if vendor.forced_open:
        by = f" by {vendor.forced_by}" if vendor.forced_by else ""
        why = f": {vendor.forced_reason}" if vendor.forced_reason else ""
        return Blocked(
            FORCED_RECHECK, f"this tenant's connection to {vendor.name} forced open{by}{why}"
        )
    if vendor.circuit_breaker_state is CircuitState.OPEN:
        opened = vendor.opened_at or now
        reopen = opened + timedelta(seconds=vendor.open_seconds)
        if now < reopen:
            return Blocked(reopen - now, f"circuit breaker of {vendor.name} is OPEN")
        vendor.circuit_breaker_state = CircuitState.HALF_OPEN
        vendor.half_open_in_flight = 0
    if vendor.circuit_breaker_state is CircuitState.HALF_OPEN:
        if vendor.probe_lease_until is not None and vendor.probe_lease_until < now:
            vendor.half_open_in_flight = 0  # the probes' workers died without an answer
        if vendor.half_open_in_flight >= vendor.half_open_max_calls:
            return Blocked(PROBE_WAIT, f"circuit breaker of {vendor.name} is HALF_OPEN, probing")
        vendor.half_open_in_flight += 1
        vendor.probe_lease_until = now + lease
        return Permit(probe=True)
    return Permit(probe=False)


def release_probe(vendor: VendorConnection) -> None:
    """Give back a probe slot that was claimed but not used (the call was deferred)."""
    vendor.half_open_in_flight = max(0, vendor.half_open_in_flight - 1)


def _open(vendor: VendorConnection, now: datetime) -> None:
    vendor.circuit_breaker_state = CircuitState.OPEN
    vendor.opened_at = now
    vendor.half_open_in_flight = 0
    vendor.probe_lease_until = None


def _count_in_window(vendor: VendorConnection, now: datetime, failed: bool) -> None:
    window = timedelta(seconds=vendor.failure_rate_window_seconds)
    if vendor.window_started_at is None or now - vendor.window_started_at > window:
        vendor.window_started_at = now
        vendor.window_calls = 0
        vendor.window_failures = 0
    vendor.window_calls += 1
    vendor.window_failures += int(failed)


def _rate_tripped(vendor: VendorConnection) -> bool:
    threshold = vendor.failure_rate_threshold
    return (
        threshold is not None
        and vendor.window_calls >= vendor.failure_rate_min_calls
        and vendor.window_failures / vendor.window_calls >= threshold
    )


def record(vendor: VendorConnection, now: datetime, *, healthy: bool, probe: bool) -> CircuitState:
    """Count one call's outcome and move the breaker; returns the state it is in after."""
    _count_in_window(vendor, now, failed=not healthy)
    if probe:
        vendor.half_open_in_flight = max(0, vendor.half_open_in_flight - 1)
        if healthy:
            vendor.circuit_breaker_state = CircuitState.CLOSED
            vendor.circuit_breaker_failure_count = 0
            vendor.opened_at = None
            vendor.probe_lease_until = None
            vendor.window_calls = vendor.window_failures = 0
        else:
            vendor.circuit_breaker_failure_count += 1
            _open(vendor, now)
        return vendor.circuit_breaker_state
    if healthy:
        vendor.circuit_breaker_failure_count = 0
        return vendor.circuit_breaker_state
    vendor.circuit_breaker_failure_count += 1
    if vendor.circuit_breaker_state is CircuitState.CLOSED and (
        vendor.circuit_breaker_failure_count >= vendor.failure_threshold or _rate_tripped(vendor)
    ):
        _open(vendor, now)
    return vendor.circuit_breaker_state


def forced_globally(vendor: Vendor, now: datetime) -> Blocked | None:
    """The deployment-wide stop a deployment admin put on the vendor, for every tenant."""
    if not vendor.forced_open:
        return None
    by = f" by {vendor.forced_by}" if vendor.forced_by else ""
    why = f": {vendor.forced_reason}" if vendor.forced_reason else ""
    return Blocked(FORCED_RECHECK, f"vendor {vendor.name} forced open{by} for every tenant{why}")


def force_open(vendor: VendorConnection, now: datetime, *, by: str, reason: str) -> None:
    vendor.forced_open = True
    vendor.forced_by = by
    vendor.forced_reason = reason
    vendor.forced_at = now
    _open(vendor, now)


def release(vendor: VendorConnection, now: datetime) -> None:
    """End a forced stop; the next call is a probe, so a vendor still down re-opens at once."""
    vendor.forced_open = False
    vendor.circuit_breaker_state = CircuitState.HALF_OPEN
    vendor.half_open_in_flight = 0
    vendor.probe_lease_until = None
    vendor.opened_at = now
