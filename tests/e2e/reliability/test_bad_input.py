"""Malformed and hostile events, generated: each one refused with a reason naming its field (or
the element, by its index), or stored verbatim as data. Nothing is executed and nothing else is
written.

Load: at least 2,000 generated hostile events (``CASES``), each sent through the real
``ingest_batch`` activity on PostgreSQL followed by its own valid control event, which must
land (ten such pairs to a batch, so that hostile elements also meet each other). The
activity takes the batch as raw JSON bytes, so that is what the cases are: hostile Python values
serialised as JSON can carry (NaN, Infinity, lone surrogates as escapes, 5,000-digit integers),
and raw elements no encoder would write (invalid UTF-8, 100,000 levels of nesting, numbers out
of range). One bad element must never cost the control event its place.
"""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from awfdrs.activities.ingest import IngestActivities
from awfdrs.contracts import EventIn, IngestResult, Outcome
from awfdrs.contracts.base import field_name
from awfdrs.db.session import tenant_session
from tests.e2e.reliability.support import raw_batch, record, size
from tests.support.factories import TenantRef, make_tenant

CASES = size(1_000, 10_000)
# Hostile events per batch, each followed by its own control event.
PER_BATCH = 10
FIELDS = set(EventIn.model_fields) | {"event"}

# What an attacker types into any string it controls.
HOSTILE_TEXT = [
    "'; DROP TABLE events; --",
    '" OR 1=1 --',
    "1); DELETE FROM incidents WHERE (1=1",
    "$$; TRUNCATE tenants CASCADE; $$",
    "x' UNION SELECT payload::text FROM events --",
    "SELECT set_config('app.tenant_id', '00000000-0000-0000-0000-000000000000', false)",
    '{"tenant_id": "00000000-0000-0000-0000-000000000000"}',
    '"}, "tenant_id": "00000000-0000-0000-0000-000000000000", "x": {"',
    "__proto__",
    "{{7*7}}",
    "${jndi:ldap://127.0.0.1/a}",
    "\\u0000",
    "\x00",
    "a\x00b",
    "\x1f\x1e",
    "line\r\nbreak",
    "\u2028",
    "\u202eevil",
    "\ud800",
    "💥" * 70,
    "",
    " ",
]


def hostile_text() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(HOSTILE_TEXT),
        st.text(max_size=40),
        st.integers(200, 3000).map(lambda n: "k" * n),
    )


def json_values() -> st.SearchStrategy[Any]:
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.sampled_from([10**30, -(10**300), 2**63, -(2**63) - 1]),
        # Beyond Python's 4,300-digit str() limit (built lazily: hypothesis reprs samples).
        st.integers(4301, 5000).map(lambda digits: 10**digits),
        st.floats(allow_nan=True, allow_infinity=True),
        hostile_text(),
    )
    return st.recursive(
        scalars,
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.dictionaries(hostile_text(), children, max_size=4),
        ),
        max_leaves=12,
    )


def deep(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels):
        value = {"n": value}
    return value


def wrong_type() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(),
        st.lists(st.integers(), max_size=3),
        st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
        hostile_text(),
    )


ODD_TIMESTAMPS = [
    "0001-01-01T00:00:00+14:00",  # before year 1 once in UTC
    "9999-12-31T23:59:59-14:00",  # after year 9999 once in UTC
    "yesterday",
    "2026-13-45T25:61:00Z",
    "1970-01-01T00:00:00Z",
    "",
    "2026-12-01",
]


def timestamps() -> st.SearchStrategy[Any]:
    now = datetime.now(UTC)
    future = st.timedeltas(timedelta(minutes=6), timedelta(days=36500))
    return st.one_of(
        future.map(lambda ahead: (now + ahead).isoformat()),
        st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
        st.datetimes().map(lambda d: d.isoformat()),  # naive
        st.sampled_from(ODD_TIMESTAMPS),
        st.integers().map(str),
    )


def retries() -> st.SearchStrategy[Any]:
    """``payload.retry`` aimed elsewhere than the registered vendor, or smuggling headers."""
    paths = ["http://127.0.0.1:1/steal", "//evil", "/a\\b", "/ok\r\nHost: evil", "", "relative"]
    headers = st.dictionaries(
        st.sampled_from(["Host", "Idempotency-Key", "X-Ok", "Bad Name", ""]),
        st.one_of(hostile_text(), st.integers()),
        max_size=2,
    )
    return st.one_of(
        wrong_type(),
        st.fixed_dictionaries(
            {"path": st.sampled_from(paths), "method": st.sampled_from(["POST", "TRACE", 7])}
        ),
        st.fixed_dictionaries({"path": st.just("/v1/x"), "headers": headers}),
    )


def payloads() -> st.SearchStrategy[Any]:
    errors = st.fixed_dictionaries({"code": wrong_type(), "vendor": hostile_text()})
    fingerprints = st.one_of(wrong_type(), st.lists(hostile_text(), max_size=20))
    return st.one_of(
        st.dictionaries(hostile_text(), json_values(), max_size=5),
        st.integers(64 * 1024 - 64, 200_000).map(lambda n: {"blob": "x" * n}),
        st.integers(20, 60).map(deep),
        st.fixed_dictionaries({"error": st.one_of(wrong_type(), errors)}),
        st.fixed_dictionaries({"error": st.just({"code": "timeout"}), "retry": retries()}),
        st.fixed_dictionaries({"fingerprint": fingerprints}),
        wrong_type(),
    )


# Elements only a hand-written body carries: each must be refused alone, naming the element.
RAW_ELEMENTS = [
    b"[" * 100_000 + b"]" * 100_000,
    b'{"tenant_id": "\xff\xfe"}',
    b'{"event_type": "\xed\xa0\x80"}',  # a surrogate encoded as UTF-8 (CESU-8)
    b'{"payload": {"n": ' + b"9" * 5000 + b"}}",
    b'{"payload": {"x": 1e999}}',
    b"NaN",
    b"-Infinity",
    b'{"payload": {"a": [1, 2,, 3]}}',
    b'{"idempotency_key": "a" "b"}',
]


def dumps(value: Any) -> bytes:
    """JSON as a sender's encoder writes it: NaN and Infinity as literals, lone surrogates as
    escapes, integers of any length (Python's 4,300-digit guard lifted for the call)."""
    limit = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        return json.dumps(value).encode()
    finally:
        sys.set_int_max_str_digits(limit)


@dataclass(frozen=True)
class Tenants:
    mine: TenantRef
    other: TenantRef


def base_event(tenants: Tenants, key: str) -> dict[str, Any]:
    return {
        "tenant_id": str(tenants.mine.id),
        "workflow_id": str(tenants.mine.workflow_id),
        "event_type": "payment.failed",
        "idempotency_key": key,
        "occurred_at": datetime.now(UTC).isoformat(),
        "payload": {"error": {"code": "timeout"}},
    }


@st.composite
def hostile_events(draw: st.DrawFn, tenants: Tenants) -> Any:
    roll = draw(st.integers(0, 30))
    if roll == 0:
        return draw(wrong_type())  # not an object at all
    if roll == 1:
        return draw(st.sampled_from(RAW_ELEMENTS))  # not even JSON
    event = base_event(tenants, draw(hostile_text()))
    mutations = draw(st.lists(st.integers(0, 11), min_size=1, max_size=3))
    for mutation in mutations:
        name = draw(st.sampled_from(sorted(EventIn.model_fields)))
        if mutation == 0:
            event.pop(name, None)
        elif mutation == 1:
            event[name] = draw(wrong_type())
        elif mutation == 2:
            event[draw(hostile_text())] = draw(json_values())  # an unknown field
        elif mutation == 3:
            event["occurred_at"] = draw(timestamps())
        elif mutation in (4, 5, 6):
            event["payload"] = draw(payloads())
        elif mutation == 7:
            event["event_type"] = draw(hostile_text())
        elif mutation == 8:
            event["correlation_id"] = draw(hostile_text())
        elif mutation == 9:
            event["severity"] = draw(st.one_of(st.just("fatal"), hostile_text()))
        elif mutation == 10:
            event["tenant_id"] = str(tenants.other.id)
        else:
            event["idempotency_key"] = draw(hostile_text())
    return event


@dataclass
class Tally:
    cases: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)


def same_json(a: Any, b: Any) -> bool:
    """Equal as JSON values: numbers by decimal value, booleans never equal to numbers."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def as_json(text_value: str) -> Any:
    return json.loads(text_value, parse_float=Decimal, parse_int=Decimal)


def names_a_field(reason: str | None, raw: Any, index: int = 0) -> bool:
    """The reason starts with the offending field's name: one of the contract's, or one the
    sender made up (shown quoted when it is not a plain name); or, for an element that does not
    decode at all, with the element and its index in the batch (``event 0: ...``)."""
    if not reason or not reason.isprintable() or len(reason) > 1000:
        return False
    if reason.startswith(f"event {index}: "):
        return True
    known = FIELDS | ({field_name(k) for k in raw} if isinstance(raw, dict) else set())
    return any(
        reason.startswith(name) and reason[len(name) : len(name) + 1] in (".", ":", "[")
        for name in known
    )


@pytest.fixture(scope="module")
async def tenants(
    committed_sessions: async_sessionmaker[AsyncSession], owner_engine: AsyncEngine
) -> AsyncIterator[Tenants]:
    found = Tenants(await make_tenant(committed_sessions), await make_tenant(committed_sessions))
    yield found
    # The activity runs outside a worker: no dispatcher serves the queue its notices name. The
    # outbox is shared by every test of the run (its depth is a metric): leave it empty.
    async with owner_engine.begin() as connection:
        await connection.execute(
            text("DELETE FROM outbox WHERE tenant_id IN (:a, :b)"),
            {"a": found.mine.id, "b": found.other.id},
        )


@pytest.fixture(scope="module")
def tally() -> Tally:
    return Tally()


async def _counts(owner_engine: AsyncEngine) -> tuple[int, int, int, int]:
    """Rows of every tenant, as the owner sees them (RLS does not apply to the owner)."""
    async with owner_engine.connect() as connection:
        row = (
            await connection.execute(
                text(
                    "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM incidents),"
                    " (SELECT count(*) FROM tenants), (SELECT count(*) FROM workflows)"
                )
            )
        ).one()
    return int(row[0]), int(row[1]), int(row[2]), int(row[3])


async def _stored(
    sessions: async_sessionmaker[AsyncSession], tenant: uuid.UUID, keys: list[str]
) -> dict[str, Any]:
    async with tenant_session(sessions, tenant) as session:
        rows = await session.execute(
            text(
                "SELECT idempotency_key, event_type, correlation_id, occurred_at, payload::text"
                " FROM events WHERE idempotency_key = ANY(:keys)"
            ),
            {"keys": keys},
        )
        return {r[0]: r for r in rows.all()}


def _check_stored(raw: dict[str, Any], row: Any) -> None:
    assert row is not None, f"accepted but not stored: {raw!r:.300}"
    assert row[1] == raw["event_type"]
    assert row[2] == raw.get("correlation_id")
    assert row[3] == datetime.fromisoformat(raw["occurred_at"])
    sent = as_json(dumps(raw.get("payload", {})).decode())
    assert same_json(as_json(row[4]), sent), "payload not stored verbatim"


@settings(
    max_examples=CASES // PER_BATCH,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
        HealthCheck.function_scoped_fixture,
    ],
)
@given(data=st.data())
@pytest.mark.timeout(size(900, 3600))
async def test_hostile_events_are_refused_or_stored_verbatim(
    data: st.DataObject,
    tenants: Tenants,
    tally: Tally,
    committed_sessions: async_sessionmaker[AsyncSession],
    owner_engine: AsyncEngine,
) -> None:
    hostiles = [data.draw(hostile_events(tenants)) for _ in range(PER_BATCH)]
    controls = [base_event(tenants, f"control-{uuid.uuid4()}") for _ in hostiles]
    activities = IngestActivities(committed_sessions)
    before = await _counts(owner_engine)
    elements = [
        element
        for hostile, control in zip(hostiles, controls, strict=True)
        for element in (hostile if isinstance(hostile, bytes) else dumps(hostile), dumps(control))
    ]
    # Every hostile thing is one element: the batch as a whole is never refused for it.
    result: IngestResult = await ActivityEnvironment().run(
        activities.ingest_batch, raw_batch(tenants.mine.id, elements)
    )
    assert len(result.outcomes) == len(elements)
    # Only keys that were not refused can be stored, and only those can be looked up (a refused
    # one may hold a NUL or a lone surrogate, which no query can carry).
    keys = [c["idempotency_key"] for c in controls] + [
        h["idempotency_key"]
        for n, h in enumerate(hostiles)
        if result.outcomes[2 * n].outcome is not Outcome.REJECTED
    ]
    rows = await _stored(committed_sessions, tenants.mine.id, keys)
    accepted = 0
    for n, (hostile, control) in enumerate(zip(hostiles, controls, strict=True)):
        first, last = result.outcomes[2 * n : 2 * n + 2]
        tally.cases += 1
        assert last.outcome is Outcome.ACCEPTED, last
        _check_stored(control, rows.get(control["idempotency_key"]))
        accepted += 1
        tally.outcomes[first.outcome.value] = tally.outcomes.get(first.outcome.value, 0) + 1
        if first.outcome is Outcome.REJECTED:
            assert names_a_field(first.reason, hostile, 2 * n), (first.reason, hostile)
            continue
        assert not isinstance(hostile, bytes), (first, hostile[:80])
        if first.outcome is Outcome.ACCEPTED:
            _check_stored(hostile, rows.get(hostile["idempotency_key"]))
            accepted += 1
        else:
            # A key seen before (an earlier case, or earlier in this batch): stored then.
            assert first.outcome in (Outcome.DUPLICATE, Outcome.CONFLICT), first
            assert hostile["idempotency_key"] in rows
    events, incidents, tenants_count, workflows = await _counts(owner_engine)
    assert events == before[0] + accepted
    assert incidents - before[1] <= accepted  # at most one new incident per new failure
    assert (tenants_count, workflows) == before[2:]


async def test_enough_cases_were_generated(tally: Tally) -> None:
    """Runs after the property above (file order): the suite really covered CASES events."""
    assert tally.cases >= CASES, tally
    assert tally.outcomes.get(Outcome.REJECTED.value, 0) > CASES // 2, tally
    record(
        "bad input",
        f"{tally.cases:,} generated hostile events (hypothesis), each followed by a valid one, "
        f"{PER_BATCH} such pairs to a batch",
        "wrong types, missing and unknown fields, oversize payloads and keys, control "
        "characters, huge numbers, NaN, invalid UTF-8, 100,000-deep nesting, SQL and JSON "
        "injection, future and odd timestamps, another tenant's ids",
        {
            "cases": tally.cases,
            **{f"outcome {k}": v for k, v in sorted(tally.outcomes.items())},
            "batches refused whole": 0,
            "rejected without naming a field": 0,
            "accepted but not stored verbatim": 0,
            "rows written beyond the accepted events": 0,
        },
    )


async def test_another_tenants_ids_are_refused(
    tenants: Tenants,
    committed_sessions: async_sessionmaker[AsyncSession],
    owner_engine: AsyncEngine,
) -> None:
    activities = IngestActivities(committed_sessions)
    mine, other = tenants.mine, tenants.other
    before = await _counts(owner_engine)

    # An event naming the other tenant, one naming its workflow: each refused on its own,
    # the control event beside them lands.
    foreign = base_event(tenants, f"foreign-{uuid.uuid4()}") | {"tenant_id": str(other.id)}
    borrowed = base_event(tenants, f"borrowed-{uuid.uuid4()}") | {
        "workflow_id": str(other.workflow_id)
    }
    control = base_event(tenants, f"control-{uuid.uuid4()}")
    result: IngestResult = await ActivityEnvironment().run(
        activities.ingest_batch, raw_batch(mine.id, [foreign, borrowed, control])
    )
    assert [(o.outcome, o.reason) for o in result.outcomes] == [
        (Outcome.REJECTED, "tenant_id: names another tenant than the one this batch is for"),
        (
            Outcome.REJECTED,
            f"workflow_id: {other.workflow_id} is not a workflow of this tenant",
        ),
        (Outcome.ACCEPTED, None),
    ]
    rows = await _stored(
        committed_sessions,
        mine.id,
        [foreign["idempotency_key"], borrowed["idempotency_key"], control["idempotency_key"]],
    )
    assert list(rows) == [control["idempotency_key"]]
    events, incidents, tenants_count, workflows = await _counts(owner_engine)
    assert (events, tenants_count, workflows) == (before[0] + 1, before[2], before[3])
    assert incidents <= before[1] + 1
    async with tenant_session(committed_sessions, other.id) as session:
        seen = await session.execute(text("SELECT count(*) FROM events"))
        assert seen.scalar_one() == 0  # nothing landed in the other tenant

    # A batch claiming a tenant that does not exist: refused whole, nothing written.
    ghost = uuid.uuid4()
    haunted = base_event(tenants, "ghost") | {"tenant_id": str(ghost)}
    after = await _counts(owner_engine)
    with pytest.raises(ApplicationError) as unknown:
        await ActivityEnvironment().run(activities.ingest_batch, raw_batch(ghost, [haunted]))
    assert unknown.value.type == "BatchRejected"
    assert unknown.value.message.startswith(f"tenant_id: tenant {ghost} is unknown")
    assert await _counts(owner_engine) == after
