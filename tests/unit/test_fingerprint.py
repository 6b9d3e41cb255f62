"""Which failures group together (same signature) and which do not."""

from __future__ import annotations

import uuid

import pytest

from awfdrs.enums import EventOutcome
from awfdrs.fingerprint import normalise_message, signature, split_event_type

WF = uuid.UUID("11111111-1111-1111-1111-111111111111")
OTHER_WF = uuid.UUID("22222222-2222-2222-2222-222222222222")


@pytest.mark.parametrize(
    ("event_type", "operation", "outcome"),
    [
        ("payment.failed", "payment", EventOutcome.FAILURE),
        ("invoice.sync.timeout", "invoice.sync", EventOutcome.FAILURE),
        ("invoice.sync.succeeded", "invoice.sync", EventOutcome.SUCCESS),
        ("payment.completed", "payment", EventOutcome.SUCCESS),
        ("payment.started", "payment.started", EventOutcome.NEUTRAL),
        ("failed", "failed", EventOutcome.NEUTRAL),
        ("order.shipment.declined", "order.shipment", EventOutcome.FAILURE),
    ],
)
def test_event_type_splits_into_operation_and_outcome(
    event_type: str, operation: str, outcome: EventOutcome
) -> None:
    assert split_event_type(event_type) == (operation, outcome)


# (first, second, same signature?) — each side: (operation, code, message, fingerprint, workflow)
Failure = tuple[str, str | None, str | None, list[str] | None, uuid.UUID]
GROUPING_TABLE: list[tuple[str, Failure, Failure, bool]] = [
    (
        "numbers in messages do not split",
        ("payment", None, "Timeout after 30s on order 1234", None, WF),
        ("payment", None, "Timeout after 31s on order 98765", None, WF),
        True,
    ),
    (
        "uuids do not split",
        ("payment", None, "customer 550e8400-e29b-41d4-a716-446655440000 not found", None, WF),
        ("payment", None, "customer 6ba7b810-9dad-11d1-80b4-00c04fd430c8 not found", None, WF),
        True,
    ),
    (
        "hex ids do not split",
        ("sync", None, "object deadbeefcafe1234 is locked (0x1f)", None, WF),
        ("sync", None, "object 0123456789abcdef is locked (0x2a)", None, WF),
        True,
    ),
    (
        "quoted values do not split",
        ("payment", None, "card for 'alice@example.com' declined", None, WF),
        ("payment", None, "card for 'bob@example.org' declined", None, WF),
        True,
    ),
    (
        "case and spacing do not split",
        ("payment", None, "Connection  reset by peer", None, WF),
        ("payment", None, "connection reset by PEER", None, WF),
        True,
    ),
    (
        "the code wins over the message",
        ("payment", "card_declined", "declined: insufficient funds", None, WF),
        ("payment", "card_declined", "do not honour", None, WF),
        True,
    ),
    (
        "different codes split",
        ("payment", "card_declined", None, None, WF),
        ("payment", "gateway_timeout", None, None, WF),
        False,
    ),
    (
        "different wording splits",
        ("payment", None, "connection reset by peer", None, WF),
        ("payment", None, "connection refused", None, WF),
        False,
    ),
    (
        "different operations split",
        ("payment", "timeout", None, None, WF),
        ("refund", "timeout", None, None, WF),
        False,
    ),
    (
        "different workflows split",
        ("payment", "timeout", None, None, WF),
        ("payment", "timeout", None, None, OTHER_WF),
        False,
    ),
    (
        "a fingerprint list groups across operations",
        ("payment", "timeout", None, ["stripe-outage"], WF),
        ("refund", "card_declined", None, ["stripe-outage"], WF),
        True,
    ),
    (
        "different fingerprint lists split",
        ("payment", "timeout", None, ["stripe-outage"], WF),
        ("payment", "timeout", None, ["adyen-outage"], WF),
        False,
    ),
    (
        "code case does not split",
        ("payment", "Card_Declined", None, None, WF),
        ("payment", "card_declined ", None, None, WF),
        True,
    ),
]


@pytest.mark.parametrize(
    ("first", "second", "same"),
    [row[1:] for row in GROUPING_TABLE],
    ids=[row[0] for row in GROUPING_TABLE],
)
def test_grouping(first: Failure, second: Failure, same: bool) -> None:
    def sig(parts: Failure) -> str:
        operation, code, message, fingerprint, workflow = parts
        return signature(
            workflow_id=workflow,
            operation=operation,
            code=code,
            message=message,
            fingerprint=fingerprint,
        )

    assert (sig(first) == sig(second)) is same


def test_signature_is_versioned_and_stable() -> None:
    v1 = signature(workflow_id=WF, operation="payment", code="timeout")
    assert len(v1) == 64
    assert v1 == signature(workflow_id=WF, operation="payment", code="timeout")
    assert v1 != signature(workflow_id=WF, operation="payment", code="timeout", version=2)


def test_normalised_message_keeps_the_words() -> None:
    assert (
        normalise_message("Timeout after 30s calling 'charges'") == "timeout after <n>s calling <q>"
    )
