"""awfdrs.audit: the verifier names the first broken row and why (pure: no database).

That the Python formula equals PostgreSQL's is tested against the database in
tests/integration/db/test_audit.py; here chains are built with the Python formula alone.
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from awfdrs.audit import GENESIS, Break, ChainRow, ChainVerifier, hash_input, row_hash, verify

TENANT = uuid.UUID("00000000-0000-0000-0000-0000000000aa")
START = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)


def chain(length: int) -> list[ChainRow]:
    rows: list[ChainRow] = []
    prev = GENESIS
    for seq in range(1, length + 1):
        row = ChainRow(
            seq=seq,
            id=uuid.UUID(int=seq),
            tenant_id=TENANT,
            occurred_at=START + timedelta(seconds=seq),
            kind="operator.command",
            actor=f"op-{seq}",
            subject_type=None,
            subject_id=None,
            body_text=f'{{"n": {seq}}}',
            prev_hash=prev,
            hash="",
        )
        row = dataclasses.replace(row, hash=row_hash(row))
        rows.append(row)
        prev = row.hash
    return rows


def head(rows: list[ChainRow]) -> tuple[int, str]:
    return rows[-1].seq, rows[-1].hash


def test_the_hash_input_is_the_documented_text() -> None:
    row = dataclasses.replace(
        chain(1)[0],
        occurred_at=datetime(2026, 12, 3, 11, 0, 0, 5, tzinfo=timezone(timedelta(hours=1))),
        kind="decision.recorded",
        actor="a|b",
        subject_type="",
        subject_id=None,
        body_text="{}",
    )
    assert hash_input(row) == (
        f"{GENESIS}|1|{TENANT}|00000000-0000-0000-0000-000000000001|2026-12-03T10:00:00.000005Z"
        "|17:decision.recorded|3:a|b|0:|~|{}"
    )


def test_an_intact_chain_and_an_empty_one() -> None:
    rows = chain(5)
    verdict = verify(TENANT, rows, head(rows))
    assert (verdict.intact, verdict.rows, verdict.head) == (True, 5, rows[-1].hash)
    assert verdict.describe() == f"chain intact: 5 rows, head {rows[-1].hash}"
    empty = verify(TENANT, [], None)
    assert (empty.intact, empty.rows, empty.head) == (True, 0, GENESIS)


@pytest.mark.parametrize(
    "field", ["actor", "kind", "subject_type", "subject_id", "body_text", "occurred_at", "id"]
)
def test_any_changed_column_breaks_that_rows_hash(field: str) -> None:
    rows = chain(4)
    changed: Any = {
        "actor": "mallory",
        "kind": "operator.forged",
        "subject_type": "incident",
        "subject_id": "x",
        "body_text": '{"n": 99}',
        "occurred_at": START,
        "id": uuid.uuid4(),
    }[field]
    rows[1] = dataclasses.replace(rows[1], **{field: changed})
    broken = verify(TENANT, rows, head(rows)).broken
    assert broken is not None
    assert (broken.seq, broken.id, broken.reason) == (2, rows[1].id, Break.HASH)


def test_moving_a_separator_between_fields_changes_the_hash() -> None:
    row = chain(1)[0]
    one = dataclasses.replace(row, kind="a|b", actor="c")
    other = dataclasses.replace(row, kind="a", actor="b|c")
    assert row_hash(one) != row_hash(other)
    assert row_hash(dataclasses.replace(row, subject_id="")) != row_hash(row)  # "" is not None


def test_a_rehashed_row_breaks_the_next_ones_prev_hash() -> None:
    rows = chain(4)
    forged = dataclasses.replace(rows[1], actor="mallory")
    rows[1] = dataclasses.replace(forged, hash=row_hash(forged))
    broken = verify(TENANT, rows, head(rows)).broken
    assert broken is not None
    assert (broken.seq, broken.reason) == (3, Break.PREV_HASH)


def test_missing_rows_are_a_gap_and_a_missing_tail_is_the_head() -> None:
    rows = chain(6)
    broken = verify(TENANT, rows[:2] + rows[4:], head(rows)).broken
    assert broken is not None
    assert (broken.seq, broken.id, broken.reason) == (5, rows[4].id, Break.SEQ_GAP)
    assert broken.detail == "seq 3..4 missing"
    broken = verify(TENANT, rows[:4], head(rows)).broken
    assert broken is not None
    assert (broken.seq, broken.id, broken.reason) == (5, None, Break.HEAD)
    assert "seq 5..6 missing" in broken.describe()
    assert verify(TENANT, rows, None).broken is not None  # rows but no head
    assert verify(TENANT, rows, (6, "f" * 64)).broken is not None


def test_a_row_of_another_tenant_is_named() -> None:
    rows = chain(2)
    rows[1] = dataclasses.replace(rows[1], tenant_id=uuid.uuid4())
    broken = verify(TENANT, rows, head(rows)).broken
    assert broken is not None
    assert (broken.seq, broken.reason) == (2, Break.TENANT)


def test_the_verifier_stops_at_the_first_break_across_pages() -> None:
    rows = chain(9)
    rows[3] = dataclasses.replace(rows[3], body_text="{}")
    rows[6] = dataclasses.replace(rows[6], body_text="{}")
    verifier = ChainVerifier(TENANT)
    assert verifier.feed(rows[:3])
    assert not verifier.feed(rows[3:6])
    assert not verifier.feed(rows[6:])
    verdict = verifier.finish(head(rows))
    assert verdict.broken is not None
    assert (verdict.rows, verdict.broken.seq) == (3, 4)
    assert verdict.as_json()["broken"] == {
        "seq": 4,
        "id": str(rows[3].id),
        "reason": "hash",
        "detail": verdict.broken.detail,
    }
