from __future__ import annotations

import uuid
from datetime import UTC, datetime

from awfdrs.client import batches
from awfdrs.contracts import MAX_BATCH_BYTES, EventIn, canonical_json


def test_batches_respect_both_the_count_and_the_size_limit() -> None:
    events = [{"idempotency_key": f"k-{i}", "payload": {"x": "y" * 300}} for i in range(2500)]
    cut = list(batches(events))
    assert [e for batch in cut for e in batch] == events
    assert all(len(batch) <= 1000 for batch in cut)
    assert all(
        sum(len(canonical_json(e).encode()) + 1 for e in batch) <= MAX_BATCH_BYTES for batch in cut
    )
    assert len(list(batches(events[:10], max_events=3))) == 4


def test_an_oversized_event_travels_alone_so_the_server_can_name_it() -> None:
    huge = {"idempotency_key": "big", "payload": {"x": "y" * (MAX_BATCH_BYTES + 1)}}
    cut = list(batches([{"idempotency_key": "a"}, huge, {"idempotency_key": "b"}]))
    assert [[e["idempotency_key"] for e in batch] for batch in cut] == [["a"], ["big"], ["b"]]


def test_typed_events_are_sent_as_plain_json() -> None:
    event = EventIn(
        tenant_id=uuid.uuid4(),
        workflow_id=uuid.uuid4(),
        event_type="payment.failed",
        idempotency_key="k",
        occurred_at=datetime.now(UTC),
    )
    [[sent]] = list(batches([event]))
    assert sent["event_type"] == "payment.failed"
    assert isinstance(sent["occurred_at"], str)
    assert "severity" not in sent
