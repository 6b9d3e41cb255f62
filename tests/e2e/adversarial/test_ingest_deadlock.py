"""Two ingest transactions of one tenant lock request rows in opposite orders: each upserts its
failures' rows (REFAIL_SQL / UPSERT_SQL) and then marks other rows recovered (EVIDENCE_SQL,
which takes rows of incidents the batch did not lock). A failure of order 1 with a success of
order 2, concurrent with a failure of order 2 with a success of order 1, deadlock; PostgreSQL
aborts one batch as a whole.

The pause between the two statements is injected (a barrier before ``apply_evidence``) so the
interleaving is certain; without it the window is the time between two statements of one
transaction, which a loaded database widens."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from awfdrs.db.repositories import RequestRepository
from awfdrs.ingest_core import store_events
from tests.support.factories import make_tenant
from tests.support.pipeline import event


def failure(tenant: Any, key: str, code: str, order: str, at: datetime) -> dict[str, Any]:
    body = event(tenant, key, error={"code": code}, order_id=order, occurred_at=at)
    body["correlation_id"] = order
    return body


def success(tenant: Any, key: str, order: str, at: datetime) -> dict[str, Any]:
    body = event(tenant, key, "payment.succeeded", order_id=order, occurred_at=at)
    body["correlation_id"] = order
    return body


async def test_two_crossing_batches_that_deadlock_both_land(
    committed_sessions: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
    undelivered_queue: str,
) -> None:
    queue = undelivered_queue  # no dispatcher: only the SQL is under test
    tenant = await make_tenant(committed_sessions)
    t0 = datetime.now(UTC) - timedelta(minutes=5)
    # Two open incidents (two error codes), one request each.
    await store_events(
        committed_sessions,
        tenant.id,
        [
            failure(tenant, "a0", "declined_a", "o-1", t0),
            failure(tenant, "b0", "declined_b", "o-2", t0),
        ],
        task_queue=queue,
    )

    arrived = 0
    both = asyncio.Event()
    original = RequestRepository.apply_evidence

    async def paused(self: RequestRepository, successes: Any, **kw: Any) -> Any:
        nonlocal arrived
        arrived += 1
        if arrived >= 2:
            both.set()
        # The events' counter rows are striped by backend pid (migration 0004): when the two
        # connections share a stripe, B waits for A's commit before it gets here, and A goes
        # on alone after the timeout (then nothing crosses, and nothing may be refused either).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(both.wait(), 2)
        return await original(self, successes, **kw)

    monkeypatch.setattr(RequestRepository, "apply_evidence", paused)
    t1 = t0 + timedelta(minutes=1)
    t2 = t0 + timedelta(minutes=2)
    batch_a = [failure(tenant, "a1", "declined_a", "o-1", t1), success(tenant, "s2", "o-2", t2)]
    batch_b = [failure(tenant, "b1", "declined_b", "o-2", t1), success(tenant, "s1", "o-1", t2)]
    results = await asyncio.gather(
        store_events(committed_sessions, tenant.id, batch_a, task_queue=queue),
        store_events(committed_sessions, tenant.id, batch_b, task_queue=queue),
        return_exceptions=True,
    )
    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors == [], f"a batch of valid events was refused as a whole: {errors[0]!r}"
