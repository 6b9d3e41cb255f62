"""The circuit breaker's state machine, on a vendor connection row held in memory."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from awfdrs.db.models import Vendor, VendorConnection
from awfdrs.enums import CircuitState
from awfdrs.remediation import breaker

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)


def vendor(**changes: object) -> VendorConnection:
    row = VendorConnection(
        vendor=Vendor(name="stripe", base_url="http://127.0.0.1:9"),
        circuit_breaker_state=CircuitState.CLOSED,
        circuit_breaker_failure_count=0,
        failure_threshold=3,
        open_seconds=10,
        half_open_max_calls=2,
        half_open_in_flight=0,
        forced_open=False,
        failure_rate_window_seconds=60.0,
        failure_rate_min_calls=4,
        window_calls=0,
        window_failures=0,
    )
    for key, value in changes.items():
        setattr(row, key, value)
    return row


def state(v: VendorConnection) -> CircuitState:
    return v.circuit_breaker_state


def test_consecutive_failures_open_it_and_a_success_resets_the_count() -> None:
    v = vendor()
    for _ in range(2):
        assert breaker.acquire(v, T0, LEASE) == breaker.Permit(probe=False)
        breaker.record(v, T0, healthy=False, probe=False)
    breaker.record(v, T0, healthy=True, probe=False)
    assert v.circuit_breaker_failure_count == 0
    for _ in range(3):
        breaker.record(v, T0, healthy=False, probe=False)
    assert v.circuit_breaker_state is CircuitState.OPEN
    assert v.opened_at == T0


def test_open_blocks_for_open_seconds_with_the_exact_remaining_time() -> None:
    v = vendor(circuit_breaker_state=CircuitState.OPEN, opened_at=T0)
    blocked = breaker.acquire(v, T0 + timedelta(seconds=4), LEASE)
    assert isinstance(blocked, breaker.Blocked)
    assert blocked.retry_after == timedelta(seconds=6)
    assert "OPEN" in blocked.reason


def test_half_open_lets_a_bounded_number_of_probes_through() -> None:
    v = vendor(circuit_breaker_state=CircuitState.OPEN, opened_at=T0)
    later = T0 + timedelta(seconds=10)
    assert breaker.acquire(v, later, LEASE) == breaker.Permit(probe=True)
    assert v.circuit_breaker_state is CircuitState.HALF_OPEN
    assert breaker.acquire(v, later, LEASE) == breaker.Permit(probe=True)
    third = breaker.acquire(v, later, LEASE)
    assert isinstance(third, breaker.Blocked)
    assert v.half_open_in_flight == 2


def test_a_probe_success_closes_and_a_probe_failure_reopens() -> None:
    closing = vendor(circuit_breaker_state=CircuitState.HALF_OPEN, half_open_in_flight=1)
    assert breaker.record(closing, T0, healthy=True, probe=True) is CircuitState.CLOSED
    assert closing.half_open_in_flight == 0
    reopening = vendor(circuit_breaker_state=CircuitState.HALF_OPEN, half_open_in_flight=1)
    assert breaker.record(reopening, T0, healthy=False, probe=True) is CircuitState.OPEN
    assert reopening.opened_at == T0
    assert isinstance(breaker.acquire(reopening, T0 + timedelta(seconds=1), LEASE), breaker.Blocked)


def test_a_probe_lost_with_its_worker_is_freed_by_its_lease() -> None:
    v = vendor(
        circuit_breaker_state=CircuitState.HALF_OPEN,
        half_open_in_flight=2,
        probe_lease_until=T0,
    )
    assert breaker.acquire(v, T0 + timedelta(seconds=1), LEASE) == breaker.Permit(probe=True)
    assert v.half_open_in_flight == 1


def test_failure_rate_over_a_window_opens_it_with_a_minimum_of_calls() -> None:
    v = vendor(failure_rate_threshold=0.5, failure_threshold=100)
    outcomes = [False, True, False]  # 2 of 3 failed: rate 0.67 but fewer than 4 calls
    for healthy in outcomes:
        breaker.record(v, T0, healthy=healthy, probe=False)
    assert state(v) is CircuitState.CLOSED
    breaker.record(v, T0, healthy=False, probe=False)  # 3 of 4
    assert state(v) is CircuitState.OPEN


def test_the_window_restarts_when_it_is_over() -> None:
    v = vendor(failure_rate_threshold=0.5, failure_threshold=100)
    for healthy in (False, False, False):
        breaker.record(v, T0, healthy=healthy, probe=False)
    breaker.record(v, T0 + timedelta(seconds=61), healthy=False, probe=False)
    assert v.window_calls == 1
    assert v.circuit_breaker_state is CircuitState.CLOSED


def test_forced_open_blocks_until_released_and_release_probes_first() -> None:
    v = vendor()
    breaker.force_open(v, T0, by="alice", reason="vendor incident INC-42")
    blocked = breaker.acquire(v, T0 + timedelta(hours=5), LEASE)
    assert isinstance(blocked, breaker.Blocked)
    assert "forced open by alice: vendor incident INC-42" in blocked.reason
    breaker.release(v, T0 + timedelta(hours=5))
    assert breaker.acquire(v, T0 + timedelta(hours=5), LEASE) == breaker.Permit(probe=True)


def test_an_unused_probe_is_given_back() -> None:
    v = vendor(circuit_breaker_state=CircuitState.HALF_OPEN)
    assert breaker.acquire(v, T0, LEASE) == breaker.Permit(probe=True)
    breaker.release_probe(v)
    assert v.half_open_in_flight == 0
