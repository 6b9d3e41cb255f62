"""Event validation: every bad field is named; what is valid is kept verbatim."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from awfdrs.contracts import (
    MAX_BATCH_EVENTS,
    EventIn,
    IngestBatch,
    TenantSettings,
    describe_validation_error,
)
from awfdrs.enums import Severity

TENANT = uuid.uuid4()


def raw(**changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "tenant_id": str(TENANT),
        "workflow_id": str(uuid.uuid4()),
        "event_type": "payment.failed",
        "idempotency_key": "k-1",
        "occurred_at": datetime.now(UTC).isoformat(),
        "payload": {"error": {"code": "timeout"}},
    }
    event.update(changes)
    return {k: v for k, v in event.items() if v is not ...}


def reason(event: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as caught:
        EventIn.model_validate(event)
    return describe_validation_error(caught.value)


def test_a_valid_event() -> None:
    event = EventIn.model_validate(raw(severity="CRITICAL", correlation_id="trace-1"))
    assert event.severity is Severity.CRITICAL
    assert event.payload.error is not None
    assert event.payload.error.code == "timeout"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"event_type": "Payment.Failed"}, "event_type"),
        ({"event_type": "-payment"}, "event_type"),
        ({"event_type": "x" * 256}, "event_type"),
        ({"idempotency_key": ""}, "idempotency_key"),
        ({"idempotency_key": "k" * 256}, "idempotency_key"),
        ({"idempotency_key": "a\x00b"}, "idempotency_key"),
        ({"occurred_at": "2026-01-01T00:00:00"}, "occurred_at"),
        # A day ahead, not minutes: the parameters are built at collection, long before the run.
        ({"occurred_at": (datetime.now(UTC) + timedelta(days=1)).isoformat()}, "occurred_at"),
        ({"occurred_at": "yesterday"}, "occurred_at"),
        ({"occurred_at": 1764583200}, "occurred_at"),  # Unix seconds are not taken as a date
        ({"occurred_at": "25182"}, "occurred_at"),
        ({"occurred_at": "0001-01-01T00:00:00+14:00"}, "occurred_at"),
        ({"tenant_id": "not-a-uuid"}, "tenant_id"),
        ({"workflow_id": ...}, "workflow_id"),
        ({"severity": "apocalyptic"}, "severity"),
        ({"ocurred_at": "typo"}, "ocurred_at"),
        ({"payload": []}, "payload"),
        ({"payload": {"big": "x" * (64 * 1024)}}, "payload"),
        ({"payload": {"n": float("nan")}}, "payload.n"),
        ({"payload": {"s": "\ud800"}}, "payload.s"),
        ({"payload": {"s": "nul\x00"}}, "payload.s"),
        ({"payload": {"error": {"code": 503}}}, "payload.error.code"),
        ({"payload": {"error": "boom"}}, "payload.error"),
        ({"payload": {"retry": {"path": "https://evil.example/x"}}}, "payload.retry.path"),
        ({"payload": {"retry": {"path": "//evil.example/x"}}}, "payload.retry.path"),
        ({"payload": {"retry": {"path": "/x", "method": "TRACE"}}}, "payload.retry.method"),
        (
            {"payload": {"retry": {"path": "/x", "headers": {"Host": "evil"}}}},
            "payload.retry.headers",
        ),
        (
            {"payload": {"retry": {"path": "/x", "headers": {"X-A": "1\r\nX-B: 2"}}}},
            "payload.retry.headers",
        ),
        ({"payload": {"fingerprint": []}}, "payload.fingerprint"),
    ],
)
def test_a_bad_field_is_named(changes: dict[str, Any], field: str) -> None:
    assert reason(raw(**changes)).startswith(field)


CREDENTIAL_REFUSAL = "credential headers are not accepted in events; configure a vendor connection"


@pytest.mark.parametrize(
    "header",
    ["Authorization", "authorization", "Proxy-Authorization", "Cookie", "X-Api-Key", "Api-Key",
     "X-Auth-Token", "X-Hub-Signature-256", "X-Session-Id", "X-Stripe-Secret", "X-Pass",
     "X-Passphrase", "X-Sign", "X-Sid", "X-Api-Pwd", "X-Otp", "X-Pin", "X-Cred", "X-Access-Code",
     "X-Client-Cert", "X-Forwarded-User", "X-Remote-User", "X-Amz-Security-Token"],
)  # fmt: skip
def test_a_credential_header_in_an_event_is_refused_naming_it(header: str) -> None:
    changes = {"payload": {"retry": {"path": "/x", "headers": {header: "Bearer sk_live_1"}}}}
    assert reason(raw(**changes)) == f"payload.retry.headers.{header}: {CREDENTIAL_REFUSAL}"


def test_a_header_outside_the_allow_list_is_refused_naming_it() -> None:
    changes = {"payload": {"retry": {"path": "/x", "headers": {"Referer": "https://a.example"}}}}
    refused = reason(raw(**changes))
    assert refused.startswith("payload.retry.headers.Referer: not a header an event may carry")
    assert "vendor connection" in refused


@pytest.mark.parametrize(
    "header",
    ["Content-Type", "Accept", "Accept-Language", "User-Agent", "X-Request-Id", "traceparent",
     "Stripe-Account", "X-Demo-Run", "X-Order-Ref", "X-Shipping-Method", "X-Correlation-Id"],
)  # fmt: skip
def test_harmless_headers_are_accepted(header: str) -> None:
    changes = {"payload": {"retry": {"path": "/x", "headers": {header: "v"}}}}
    event = EventIn.model_validate(raw(**changes))
    assert event.payload.retry is not None
    assert event.payload.retry.headers == {header: "v"}


def test_deep_nesting_is_refused() -> None:
    nested: Any = "leaf"
    for _ in range(40):
        nested = {"x": nested}
    assert "nested deeper than 32" in reason(raw(payload=nested))


def test_unknown_payload_fields_are_kept() -> None:
    event = EventIn.model_validate(raw(payload={"order": {"id": 7}, "error": {"extra": 1}}))
    assert event.payload.model_extra == {"order": {"id": 7}}


def test_batches_are_bounded() -> None:
    with pytest.raises(ValidationError, match="events"):
        IngestBatch(tenant_id=TENANT, events=[])
    with pytest.raises(ValidationError, match="events"):
        IngestBatch(tenant_id=TENANT, events=[{}] * (MAX_BATCH_EVENTS + 1))
    assert len(IngestBatch(tenant_id=TENANT, events=[1, "x"]).events) == 2


def test_tenant_settings_defaults_and_bounds() -> None:
    defaults = TenantSettings()
    assert defaults.grouping_window_seconds == 30
    assert defaults.confidence_threshold == 0.8
    with pytest.raises(ValidationError, match="confidence_threshold"):
        TenantSettings(confidence_threshold=1.5)
    with pytest.raises(ValidationError, match="grouping_windw"):
        TenantSettings.model_validate({"grouping_windw": 1})


def test_a_lookalike_letter_does_not_pass_a_credential_header_as_another_name() -> None:
    # Cyrillic A and K (U+0410, U+041A): "X-Api-Key" to a reader, not to a check of words.
    changes = {"payload": {"retry": {"path": "/x", "headers": {"X-\u0410pi-\u041aey": "v"}}}}
    assert "not a header name" in reason(raw(**changes))


@pytest.mark.parametrize("query", ["api_key=sk_live_1", "access_token=t", "key=k", "sig=s&x=1"])
def test_a_credential_in_the_paths_query_is_refused(query: str) -> None:
    changes = {"payload": {"retry": {"path": f"/v1/charges?{query}"}}}
    refused = reason(raw(**changes))
    assert refused.startswith("payload.retry.path:")
    assert "looks like a credential" in refused


def test_an_ordinary_query_is_kept() -> None:
    changes = {"payload": {"retry": {"path": "/v1/charges?order=1&page=2"}}}
    event = EventIn.model_validate(raw(**changes))
    assert event.payload.retry is not None
    assert event.payload.retry.path == "/v1/charges?order=1&page=2"
