"""The HTTP edge's pure parts: format adapters, the quota's token bucket, Temporal TLS settings."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from awfdrs.api import formats
from awfdrs.api.errors import ApiError
from awfdrs.api.keys import digest, matches, split_key
from awfdrs.api.limits import Quotas
from awfdrs.config import load_settings
from awfdrs.errors import ConfigError
from awfdrs.jsonbatch import Undecodable


def test_keys_are_found_by_prefix_and_matched_by_hash() -> None:
    key = "awfdrs_0123456789ab_" + "A" * 43
    assert split_key(key) == "0123456789ab"
    assert split_key(key + "x") is None
    assert split_key("Bearer " + key) is None
    assert matches(key, digest(key))
    assert not matches(key[:-1] + "B", digest(key))


def test_the_bucket_admits_a_burst_then_charges_the_rate() -> None:
    quotas = Quotas()
    clock = [100.0]
    quotas._clock = lambda: clock[0]
    tenant = uuid.uuid4()
    assert quotas.take(tenant, 10, rate=5, burst=10) is None
    wait = quotas.take(tenant, 5, rate=5, burst=10)
    assert wait == pytest.approx(1.0)
    clock[0] += 1.0
    assert quotas.take(tenant, 5, rate=5, burst=10) is None
    # A batch larger than the burst goes through from a full bucket and leaves a debt.
    clock[0] += 10.0
    assert quotas.take(tenant, 30, rate=5, burst=10) is None
    assert quotas.take(tenant, 1, rate=5, burst=10) == pytest.approx(4.2)
    assert quotas.take(uuid.uuid4(), 1, rate=5, burst=10) is None  # per tenant


def test_alert_keys_ignore_what_changes_between_resends() -> None:
    alert = {
        "status": "firing", "labels": {"alertname": "HighErrorRate", "workflow": "payments"},
        "annotations": {"summary": "errors"}, "startsAt": "2026-12-01T12:00:00.123456789Z",
        "endsAt": "2026-12-01T12:04:00Z", "fingerprint": "abc",
    }  # fmt: skip
    first = formats.alert(0, alert, None)
    again = formats.alert(0, {**alert, "endsAt": "2026-12-01T12:08:00Z"}, None)
    assert first == again
    assert isinstance(first, dict)
    assert first["event_type"] == "alert.high_error_rate.failed"
    assert first["occurred_at"] == "2026-12-01T12:00:00.123456Z"
    resolved = formats.alert(0, {**alert, "status": "resolved"}, None)
    assert isinstance(resolved, dict)
    assert resolved["event_type"] == "alert.high_error_rate.recovered"
    assert resolved["correlation_id"] == first["correlation_id"]
    assert resolved["idempotency_key"] != first["idempotency_key"]
    nameless = formats.alert(3, {**alert, "labels": {"alertname": "X"}}, None)
    assert isinstance(nameless, Undecodable)
    assert "workflow" in nameless.reason


def test_pagerduty_resolve_lands_after_its_trigger_and_resends_are_the_same() -> None:
    at = datetime(2026, 12, 1, 12, 0, 30, tzinfo=UTC)
    resolve = {"routing_key": "k", "event_action": "resolve", "dedup_key": "d"}
    one = formats.pagerduty(resolve, "payments", at)
    two = formats.pagerduty(resolve, "payments", at.replace(second=59))
    assert one.event == two.event
    assert one.event["occurred_at"] == "2026-12-01T12:01:00+00:00"
    with pytest.raises(ApiError) as refused:
        formats.pagerduty({**resolve, "dedup_key": None}, "payments", at)
    assert refused.value.status == 400
    assert "dedup_key" in refused.value.extra["errors"][0]


def test_cloudevents_map_to_native_events() -> None:
    event = {
        "specversion": "1.0", "id": "1", "source": "s", "type": "com.acme.payment.failed",
        "time": "2026-12-01T12:00:00Z", "workflow": "payments", "correlationid": "o-1",
        "data": {"error": {"code": "x"}},
    }  # fmt: skip
    native = formats.cloudevent(0, event)
    assert isinstance(native, dict)
    assert native["idempotency_key"] == formats.ce_idempotency_key("s", "1")
    assert native["correlation_id"] == "o-1"
    assert formats.ce_idempotency_key("s", "1") != formats.ce_idempotency_key("s\x001", "")
    upper = formats.cloudevent(0, {**event, "type": "Com.Acme"})
    assert isinstance(upper, Undecodable)
    assert "type:" in upper.reason


def test_temporal_tls_settings(tmp_path: Path) -> None:
    assert load_settings().temporal_tls_config() is False
    assert load_settings(temporal_api_key="secret").temporal_tls_config() is True
    ca = tmp_path / "ca.pem"
    ca.write_bytes(b"-----BEGIN CERTIFICATE-----")
    config = load_settings(temporal_tls_ca_file=str(ca)).temporal_tls_config()
    assert not isinstance(config, bool)
    assert config.server_root_ca_cert == ca.read_bytes()
    with pytest.raises(ConfigError, match="TLS_KEY_FILE"):
        load_settings(temporal_tls_cert_file=str(ca)).temporal_tls_config()
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(temporal_tls_ca_file=str(tmp_path / "nope")).temporal_tls_config()


def test_the_local_stack_falls_back_to_a_free_port_when_its_port_is_taken() -> None:
    from awfdrs.api.server import bind, url_of

    taken = bind("127.0.0.1", 0)
    port = taken.getsockname()[1]
    try:
        with pytest.raises(OSError, match="in use"):
            bind("127.0.0.1", port)
        other = bind("127.0.0.1", port, any_port=True)
        try:
            assert other.getsockname()[1] != port
            assert url_of(other).startswith("http://127.0.0.1:")
        finally:
            other.close()
    finally:
        taken.close()


async def test_a_body_that_does_not_arrive_in_time_is_a_408(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from types import SimpleNamespace

    from awfdrs.api import edge as edge_module

    monkeypatch.setattr(edge_module, "BODY_TIMEOUT", 0.2)

    async def trickle() -> AsyncIterator[bytes]:
        yield b'{"events": ['
        await asyncio.sleep(5)
        yield b"]}"

    request = SimpleNamespace(stream=trickle, headers={})
    edge = SimpleNamespace(settings=SimpleNamespace(api_max_body_bytes=1 << 20))
    with pytest.raises(ApiError) as refused:
        await edge_module.body_of(request, edge)  # type: ignore[arg-type]
    assert refused.value.status == 408
    assert "0.2 s" in str(refused.value.body())


def test_pagerduty_keys_hash_the_dedup_key_and_name_the_minute_when_no_time_is_given() -> None:
    now = datetime(2026, 12, 1, 12, 0, 30, tzinfo=UTC)
    trigger = {
        "routing_key": "k",
        "event_action": "trigger",
        "dedup_key": "x" * 250 + "a",
        "payload": {"summary": "s", "source": "src", "severity": "error"},
    }
    one = formats.pagerduty(trigger, "payments", now, None).event
    other = formats.pagerduty({**trigger, "dedup_key": "x" * 250 + "b"}, "payments", now, None)
    assert one["idempotency_key"] != other.event["idempotency_key"]
    later = formats.pagerduty(trigger, "payments", now.replace(minute=1), None).event
    # No timestamp: the minute is the occurrence and part of the key, so a resend a minute
    # later is a new sighting rather than a conflict with the first.
    assert later["occurred_at"] != one["occurred_at"]
    assert later["idempotency_key"] != one["idempotency_key"]
    again = formats.pagerduty(trigger, "payments", now.replace(second=59), None).event
    assert again["idempotency_key"] == one["idempotency_key"]
