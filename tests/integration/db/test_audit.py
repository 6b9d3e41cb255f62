"""The audit chain: what lands in it, that it stays one gap-free chain per tenant under
concurrency, that nobody may change it, and that a change made anyway is found.

Rows are appended at commit (deferred triggers), so these tests commit, each in tenants of its
own, as the application role; the tampering is done as the owner.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import itertools
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError, ProgrammingError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from awfdrs.audit import GENESIS, Break, ChainRow, Verdict, row_hash
from awfdrs.db.models import AuditEntry
from awfdrs.db.repositories import (
    ActionRepository,
    AuditRepository,
    DecisionRepository,
    EventRepository,
    IncidentRepository,
    KillSwitchRepository,
    RequestRepository,
)
from awfdrs.db.repositories.base import constraint_name
from awfdrs.db.session import tenant_session
from awfdrs.enums import ActionStatus, ActionType, IncidentStatus, RequestStatus
from awfdrs.intake import FailedRequest, request_key
from tests.support.factories import TenantRef, make_incident, make_tenant, new_event

Sessions = async_sessionmaker[AsyncSession]


async def entries(sessions: Sessions, tenant: uuid.UUID) -> list[AuditEntry]:
    async with tenant_session(sessions, tenant) as session:
        return list(await AuditRepository(session, tenant_id=tenant).list(limit=1000))


async def verify(sessions: Sessions, tenant: uuid.UUID, page: int = 1000) -> Verdict:
    async with tenant_session(sessions, tenant) as session:
        return await AuditRepository(session, tenant_id=tenant).verify(page=page)


def failed(tenant: TenantRef, key: str, signature: str) -> FailedRequest:
    now = datetime.now(UTC)
    return FailedRequest(
        signature=signature,
        event_key=key,
        request_hash=hashlib.sha256(key.encode()).hexdigest(),
        candidate_key=request_key(tenant.id, key),
        replayable=True,
        vendor=None,
        method="POST",
        path="/v1/charges",
        body_json='{"order": 1}',
        headers_json='{"Authorization": "Bearer secret-in-headers"}',
        reversible=True,
        correlation_ids=(f"corr-{key}",),
        error_code="timeout",
        error_message=None,
        event_count=1,
        first_failed_at=now,
        last_failed_at=now,
    )


async def record(sessions: Sessions, tenant: uuid.UUID, command: str, actor: str = "alice") -> None:
    async with tenant_session(sessions, tenant) as session:
        await AuditRepository(session, tenant_id=tenant).record_command(
            actor, command, ("incident", uuid.uuid4()), {"reason": command}
        )


async def test_decisions_transitions_switches_and_closes_are_chained(
    committed_sessions: Sessions,
) -> None:
    tenant = await make_tenant(committed_sessions)
    t = tenant.id
    assert await entries(committed_sessions, t) == []  # a tenant is not audited by existing
    async with tenant_session(committed_sessions, t) as session:
        events = EventRepository(session, tenant_id=t)
        await events.insert_new([new_event(tenant, "k-1", signature="sig-a")])
        event = await events.get_by_idempotency_key("k-1")
        assert event is not None
        incident = await make_incident(session, tenant, "sig-a")
        requests = RequestRepository(session, tenant_id=t)
        await requests.upsert_failed([(incident, event.id, failed(tenant, "k-1", "sig-a"))])
        [request] = await requests.list_for_incident(incident)
    # Ingest's hot path pays nothing for the audit: not the events, not the incident and its
    # counts, not a new PENDING request (its first transition is recorded).
    assert await entries(committed_sessions, t) == []

    async with tenant_session(committed_sessions, t) as session:
        decision = await DecisionRepository(session, tenant_id=t).add(
            incident_id=incident,
            decision_type=ActionType.RETRY,
            reasoning="timeouts are transient",
            confidence_score=0.9,
            ai_model="rules",
        )
        actions = ActionRepository(session, tenant_id=t)
        action = await actions.add(
            incident_id=incident, decision_id=decision.id, action_type=ActionType.RETRY,
            is_reversible=True, parameters={},
        )  # fmt: skip
        assert await actions.claim(action.id) is not None
        claimed = await RequestRepository(session, tenant_id=t).claim(
            request.id, action_id=action.id, lease_seconds=60
        )
        assert claimed is not None
        await RequestRepository(session, tenant_id=t).finish(
            request.id, status=RequestStatus.SUCCEEDED, status_code=200, response="ok", error=None
        )
        await actions.finish(action.id, status=ActionStatus.SUCCEEDED)
    async with tenant_session(committed_sessions, t) as session:
        switches = KillSwitchRepository(session, tenant_id=t)
        switch = await switches.activate(
            switch_id=uuid.uuid4(), workflow_id=None, reason="vendor outage",
            activated_by="alice", expires_at=None,
        )  # fmt: skip
    async with tenant_session(committed_sessions, t) as session:
        await KillSwitchRepository(session, tenant_id=t).release(
            released_by="bob", reason="vendor back", switch_id=switch.id
        )
        closed = await IncidentRepository(session, tenant_id=t).transition(
            incident,
            expected=set(IncidentStatus),
            to=IncidentStatus.RESOLVED,
            resolved_at=datetime.now(UTC),
            resolution="resolved by carol: fixed upstream",
        )
        assert closed is not None
    async with tenant_session(committed_sessions, t) as session:
        await AuditRepository(session, tenant_id=t).record_command(
            "erin", "approve", ("incident", incident), {"plan_id": "p-1"}
        )
    # A request created already judged (failed again after a success under its key) is
    # recorded; with no actor column, the transaction's app.actor is the actor.
    async with tenant_session(committed_sessions, t) as session:
        await session.execute(text("SET LOCAL app.actor = 'dave'"))
        await RequestRepository(session, tenant_id=t).add(
            incident_id=incident, first_event_id=event.id, request_hash="again",
            idempotency_key="again", replayable=False, first_failed_at=datetime.now(UTC),
            last_failed_at=datetime.now(UTC), status=RequestStatus.FAILED,
        )  # fmt: skip

    rows = await entries(committed_sessions, t)
    assert [(r.seq, r.kind, r.actor) for r in rows] == [
        (1, "decision.recorded", "system"),
        (2, "action.state_changed", "system"),
        (3, "action.state_changed", "system"),
        (4, "request.state_changed", "system"),
        (5, "request.state_changed", "system"),
        (6, "action.state_changed", "system"),
        (7, "kill_switch.activated", "alice"),
        (8, "kill_switch.released", "bob"),
        (9, "incident.closed", "system"),
        (10, "operator.command", "erin"),
        (11, "request.state_changed", "dave"),
    ]
    by_seq = {r.seq: r for r in rows}
    assert [(by_seq[s].body["from"], by_seq[s].body["to"]) for s in (4, 5, 11)] == [
        ("PENDING", "SENT"), ("SENT", "SUCCEEDED"), (None, "FAILED"),
    ]  # fmt: skip
    assert [(by_seq[s].body["from"], by_seq[s].body["to"]) for s in (2, 3, 6)] == [
        (None, "PENDING"), ("PENDING", "IN_PROGRESS"), ("IN_PROGRESS", "SUCCEEDED"),
    ]  # fmt: skip
    # The audit is kept forever: a request's headers (credentials) never go into it.
    assert "secret-in-headers" not in str([r.body for r in rows])
    assert (by_seq[1].subject_type, by_seq[1].subject_id) == ("decision", str(decision.id))
    assert by_seq[1].body["reasoning"] == "timeouts are transient"
    assert by_seq[8].body["reason"] == "vendor back"
    assert by_seq[9].body["resolution"] == "resolved by carol: fixed upstream"
    assert by_seq[10].body == {"command": "approve", "args": {"plan_id": "p-1"}}
    assert by_seq[10].subject_id == str(incident)
    assert [r.prev_hash for r in rows] == [GENESIS, *(r.hash for r in rows[:-1])]
    assert all(r.occurred_at <= n.occurred_at for r, n in itertools.pairwise(rows))
    verdict = await verify(committed_sessions, t)
    assert verdict.describe() == f"chain intact: 11 rows, head {rows[-1].hash}"


async def test_a_transaction_that_rolls_back_leaves_no_row_and_no_gap(
    committed_sessions: Sessions,
) -> None:
    tenant = await make_tenant(committed_sessions)
    await record(committed_sessions, tenant.id, "first")
    with pytest.raises(RuntimeError):
        async with tenant_session(committed_sessions, tenant.id) as session:
            await KillSwitchRepository(session, tenant_id=tenant.id).activate(
                switch_id=uuid.uuid4(), workflow_id=None, reason="r", activated_by="alice",
                expires_at=None,
            )  # fmt: skip
            await AuditRepository(session, tenant_id=tenant.id).record_command("a", "x")
            raise RuntimeError("the command failed after all")
    await record(committed_sessions, tenant.id, "second")
    rows = await entries(committed_sessions, tenant.id)
    assert [(r.seq, r.body["command"]) for r in rows] == [(1, "first"), (2, "second")]
    assert (await verify(committed_sessions, tenant.id)).intact


async def test_concurrent_appends_make_one_gap_free_chain(committed_sessions: Sessions) -> None:
    tenant = await make_tenant(committed_sessions)

    async def one(n: int) -> None:
        async with tenant_session(committed_sessions, tenant.id) as session:
            if n % 2:
                await KillSwitchRepository(session, tenant_id=tenant.id).add(
                    reason=f"r{n}", activated_by=f"op{n}", workflow_id=tenant.workflow_id
                )
            else:
                await AuditRepository(session, tenant_id=tenant.id).record_command(
                    f"op{n}", f"cmd{n}"
                )

    await asyncio.gather(*(one(n) for n in range(20)))
    rows = await entries(committed_sessions, tenant.id)
    assert [r.seq for r in rows] == list(range(1, 21))
    assert {r.actor for r in rows} == {f"op{n}" for n in range(20)}
    verdict = await verify(committed_sessions, tenant.id)
    assert verdict.intact, verdict.describe()


async def test_each_tenant_has_its_own_chain_and_sees_only_it(
    committed_sessions: Sessions,
) -> None:
    a = await make_tenant(committed_sessions)
    b = await make_tenant(committed_sessions)
    for n in range(3):
        await record(committed_sessions, a.id, f"a{n}")
    await record(committed_sessions, b.id, "b0")
    assert [r.seq for r in await entries(committed_sessions, a.id)] == [1, 2, 3]
    [only] = await entries(committed_sessions, b.id)
    assert (only.seq, only.prev_hash) == (1, GENESIS)
    async with tenant_session(committed_sessions, b.id) as session:
        for table in ("audit_log", "audit_heads"):
            stmt = text(f"SELECT count(*) FROM {table} WHERE tenant_id = :a")  # noqa: S608
            assert (await session.execute(stmt, {"a": a.id})).scalar_one() == 0, table
        # A repository built for A inside B's transaction: row-level security shows nothing.
        assert await AuditRepository(session, tenant_id=a.id).list() == []
        assert await AuditRepository(session, tenant_id=a.id).find_head() is None
    # Nor may B append to A's chain, whatever the repository was built with.
    with pytest.raises(DBAPIError, match="not the transaction's"):
        async with tenant_session(committed_sessions, b.id) as session:
            await AuditRepository(session, tenant_id=a.id).record_command("mallory", "approve")
    assert len(await entries(committed_sessions, a.id)) == 3


STATEMENTS = {
    "UPDATE": "UPDATE audit_log SET actor = 'mallory' WHERE tenant_id = :t",
    "DELETE": "DELETE FROM audit_log WHERE tenant_id = :t",
    "TRUNCATE": "TRUNCATE audit_log",
}


@pytest.mark.parametrize("verb", sorted(STATEMENTS))
async def test_nobody_may_change_the_audit(
    committed_sessions: Sessions, owner_engine: AsyncEngine, verb: str
) -> None:
    tenant = await make_tenant(committed_sessions)
    await record(committed_sessions, tenant.id, "keep")
    with pytest.raises(ProgrammingError, match="permission denied"):
        async with tenant_session(committed_sessions, tenant.id) as session:
            await session.execute(text(STATEMENTS[verb]), {"t": tenant.id})
    async with owner_engine.connect() as connection:
        with pytest.raises(IntegrityError) as caught:
            await connection.execute(text(STATEMENTS[verb]), {"t": tenant.id})
        await connection.rollback()
    assert constraint_name(caught.value) == "append_only_audit_log"
    [row] = await entries(committed_sessions, tenant.id)
    assert row.actor == "alice"


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO audit_log (tenant_id, seq, actor, kind, prev_hash, hash) "
        "VALUES (:t, 99, 'mallory', 'decision.recorded', repeat('0', 64), repeat('0', 64))",
        "SELECT audit_append(:t, 'mallory', 'decision.recorded', NULL, NULL, '{}')",
        "UPDATE audit_heads SET seq = 0 WHERE tenant_id = :t",
    ],
    ids=["insert", "audit_append", "head"],
)
async def test_the_application_role_appends_only_operator_commands(
    committed_sessions: Sessions, statement: str
) -> None:
    tenant = await make_tenant(committed_sessions)
    await record(committed_sessions, tenant.id, "keep")
    with pytest.raises(ProgrammingError, match="permission denied"):
        async with tenant_session(committed_sessions, tenant.id) as session:
            await session.execute(text(statement), {"t": tenant.id})
    assert len(await entries(committed_sessions, tenant.id)) == 1


async def tamper(owner_engine: AsyncEngine, statement: str, **params: object) -> None:
    """As the owner, with the append-only triggers out of the way, as an attacker would."""
    async with owner_engine.begin() as connection:
        await connection.execute(text("SET LOCAL session_replication_role = replica"))
        await connection.execute(text(statement), params)


async def test_a_changed_body_is_found(
    committed_sessions: Sessions, owner_engine: AsyncEngine
) -> None:
    tenant = await make_tenant(committed_sessions)
    for n in range(4):
        await record(committed_sessions, tenant.id, f"c{n}")
    rows = await entries(committed_sessions, tenant.id)
    await tamper(
        owner_engine,
        'UPDATE audit_log SET body = \'{"command": "c9"}\' WHERE tenant_id = :t AND seq = 2',
        t=tenant.id,
    )
    verdict = await verify(committed_sessions, tenant.id)
    broken = verdict.broken
    assert broken is not None
    assert (broken.seq, broken.id, broken.reason) == (2, rows[1].id, Break.HASH)


async def test_a_removed_row_and_a_removed_tail_are_found(
    committed_sessions: Sessions, owner_engine: AsyncEngine
) -> None:
    tenant = await make_tenant(committed_sessions)
    for n in range(5):
        await record(committed_sessions, tenant.id, f"c{n}")
    rows = await entries(committed_sessions, tenant.id)
    await tamper(
        owner_engine, "DELETE FROM audit_log WHERE tenant_id = :t AND seq = 5", t=tenant.id
    )
    broken = (await verify(committed_sessions, tenant.id)).broken
    assert broken is not None
    assert (broken.seq, broken.reason) == (5, Break.HEAD)
    await tamper(
        owner_engine, "DELETE FROM audit_log WHERE tenant_id = :t AND seq = 3", t=tenant.id
    )
    broken = (await verify(committed_sessions, tenant.id)).broken
    assert broken is not None
    assert (broken.seq, broken.id, broken.reason) == (4, rows[3].id, Break.SEQ_GAP)
    assert broken.detail == "seq 3 missing"


async def test_a_row_changed_and_rehashed_breaks_the_next_row(
    committed_sessions: Sessions, owner_engine: AsyncEngine
) -> None:
    """An attacker who knows the formula rehashes the changed row: the next row still names
    the old hash. (Rewriting every later row and the head too is what the chain alone cannot
    catch: docs/AUDIT.md.)"""
    tenant = await make_tenant(committed_sessions)
    for n in range(3):
        await record(committed_sessions, tenant.id, f"c{n}")
    async with tenant_session(committed_sessions, tenant.id) as session:
        [_, second, third] = await AuditRepository(session, tenant_id=tenant.id).list_chain()
    forged = dataclasses.replace(second, actor="mallory")
    await tamper(
        owner_engine,
        "UPDATE audit_log SET actor = 'mallory', hash = :h WHERE tenant_id = :t AND seq = 2",
        h=row_hash(forged),
        t=tenant.id,
    )
    broken = (await verify(committed_sessions, tenant.id)).broken
    assert broken is not None
    assert (broken.seq, broken.id, broken.reason) == (3, third.id, Break.PREV_HASH)


async def test_python_and_postgresql_hash_the_same_text(owner_engine: AsyncEngine) -> None:
    """Awkward values: separators, lengths, NULL against empty, unicode, a time of day with
    and without microseconds, jsonb whose text PostgreSQL normalises."""
    cases = [
        ("a|b", "c", None, "", '{"z": 1, "a": [1, 2.50, "é|"]}', "2026-12-03 10:00:00+00"),
        ("a", "b|c", "", None, "{}", "2026-12-03 10:00:00.000001+05:30"),
        ("ключ", "✓ ok", "t", "42", '{"nested": {"b": null, "a": true}}', "1999-01-01 00:00:00Z"),
    ]
    async with owner_engine.connect() as connection:
        for seq, (kind, actor, subject_type, subject_id, body, at) in enumerate(cases, 1):
            row = (
                await connection.execute(
                    text(
                        "SELECT CAST(CAST(:at AS text) AS timestamptz) AS occurred_at, "
                        "CAST(CAST(:body AS jsonb) AS text) AS body_text, awfdrs_audit_hash("
                        ":prev, :seq, :tenant, :id, CAST(CAST(:at AS text) AS timestamptz), "
                        ":kind, :actor, :subject_type, :subject_id, CAST(:body AS jsonb)) AS hash"
                    ),
                    params := {
                        "prev": "a" * 64, "seq": seq, "tenant": uuid.uuid4(), "id": uuid.uuid4(),
                        "at": at, "kind": kind, "actor": actor, "subject_type": subject_type,
                        "subject_id": subject_id, "body": body,
                    },
                )
            ).one()  # fmt: skip
            mine = ChainRow(
                seq=seq,
                id=params["id"],  # type: ignore[arg-type]
                tenant_id=params["tenant"],  # type: ignore[arg-type]
                occurred_at=row.occurred_at,
                kind=kind,
                actor=actor,
                subject_type=subject_type,
                subject_id=subject_id,
                body_text=row.body_text,
                prev_hash="a" * 64,
                hash=row.hash,
            )
            assert row_hash(mine) == row.hash, (kind, actor)


async def test_verify_pages_through_a_long_chain(committed_sessions: Sessions) -> None:
    tenant = await make_tenant(committed_sessions)
    for n in range(8):
        await record(committed_sessions, tenant.id, f"c{n}")
    verdict = await verify(committed_sessions, tenant.id, page=3)
    assert (verdict.intact, verdict.rows) == (True, 8)
