"""What makes two failed requests one request (one key, one send) or two."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from pydantic import ValidationError

from awfdrs.contracts import EventIn
from awfdrs.intake import replayed_headers, request_hash

TENANT, WORKFLOW = uuid.uuid4(), uuid.uuid4()


def failed(key: str, headers: dict[str, str], **body: Any) -> EventIn:
    return EventIn.model_validate(
        {
            "tenant_id": str(TENANT),
            "workflow_id": str(WORKFLOW),
            "event_type": "payment.failed",
            "idempotency_key": key,
            "occurred_at": "2026-12-01T00:00:00Z",
            "payload": {
                "error": {"code": "gateway_timeout", "vendor": "stripe"},
                "retry": {
                    "method": "POST",
                    "path": "/v1/charges",
                    "body": body or {"order": 1},
                    "headers": headers,
                },
            },
        }
    )


def test_a_header_that_selects_the_account_makes_another_request() -> None:
    one = failed("a", {"Stripe-Account": "acct_1"})
    two = failed("b", {"Stripe-Account": "acct_2"})
    assert request_hash(one) != request_hash(two)


def test_header_names_are_not_case_sensitive() -> None:
    one = failed("a", {"Stripe-Account": "acct_1"})
    two = failed("b", {"stripe-account": "acct_1"})
    assert request_hash(one) == request_hash(two)


def test_tracing_and_dates_do_not_make_another_request() -> None:
    first = failed(
        "a",
        {
            "Stripe-Account": "acct_1",
            "traceparent": "00-aa-01",
            "x-datadog-trace-id": "1",
            "X-B3-TraceId": "1",
            "sentry-trace": "1",
            "Date": "Tue, 01 Dec 2026 00:00:00 GMT",
            "X-Request-Id": "r-1",
        },
    )
    again = failed(
        "b",
        {
            "Stripe-Account": "acct_1",
            "traceparent": "00-bb-01",
            "x-datadog-trace-id": "2",
            "X-B3-TraceId": "2",
            "sentry-trace": "2",
            "Date": "Tue, 01 Dec 2026 00:00:05 GMT",
            "X-Request-Id": "r-2",
        },
    )
    assert request_hash(first) == request_hash(again)


def test_a_different_body_is_another_request() -> None:
    assert request_hash(failed("a", {}, order=1)) != request_hash(failed("b", {}, order=2))


def test_a_replay_sends_no_header_of_the_failed_attempt() -> None:
    sent = replayed_headers(
        {
            "Stripe-Account": "acct_1",
            "traceparent": "00-aa-01",
            "X-Idempotency-Key": "sender-1",
            "Date": "Tue, 01 Dec 2026 00:00:00 GMT",
        }
    )
    assert sent == {"stripe-account": "acct_1"}


def test_one_header_given_twice_in_two_cases_is_refused() -> None:
    with pytest.raises(ValidationError, match="stripe-account"):
        failed("a", {"Stripe-Account": "acct_1", "stripe-account": "acct_2"})
