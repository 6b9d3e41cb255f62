"""What "the same event" means for a resend: the payload hash (awfdrs.intake)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from awfdrs.contracts import EventIn
from awfdrs.contracts.base import canonical_json
from awfdrs.intake import HASHED_FIELDS, conflict, legacy_payload_hash, payload_hash

AT = datetime(2026, 12, 3, 10, 0, 5, tzinfo=UTC)
PLUS_TWO = timezone(timedelta(hours=2))


def event(occurred_at: str, **changes: Any) -> tuple[EventIn, str]:
    raw = {
        "tenant_id": str(uuid.UUID(int=1)),
        "workflow_id": str(uuid.UUID(int=2)),
        "event_type": "payment.failed",
        "idempotency_key": "k-1",
        "occurred_at": occurred_at,
        "payload": {"error": {"code": "timeout"}},
        **changes,
    }
    return EventIn.model_validate(raw), canonical_json(raw["payload"])


def test_the_same_instant_in_two_offsets_hashes_the_same() -> None:
    utc = payload_hash(*event("2026-12-03T10:00:05Z"))
    assert payload_hash(*event("2026-12-03T12:00:05+02:00")) == utc
    assert payload_hash(*event(AT.astimezone(PLUS_TWO).isoformat())) == utc
    assert payload_hash(*event("2026-12-03T10:00:06Z")) != utc  # another instant


def test_the_legacy_hash_kept_the_offset_and_agrees_in_utc() -> None:
    utc, plus_two = event("2026-12-03T10:00:05Z"), event("2026-12-03T12:00:05+02:00")
    assert legacy_payload_hash(*utc) == payload_hash(*utc)
    assert legacy_payload_hash(*plus_two) != payload_hash(*plus_two)
    assert legacy_payload_hash(*plus_two) != legacy_payload_hash(*utc)


def test_a_conflict_names_what_the_hash_covers() -> None:
    reason = conflict("k-1", "a" * 64, "b" * 64).reason
    assert reason is not None
    assert HASHED_FIELDS in reason
    assert "occurred_at (as UTC)" in reason
