"""IngestEvents end to end on real services: idempotency, grouping, bad input, scope."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import text
from temporalio.client import WorkflowFailureError

from awfdrs.contracts import EventIn, IngestBatch, Outcome
from awfdrs.contracts.base import canonical_json
from awfdrs.db.repositories import EventRepository, IncidentRepository, WorkflowRepository
from awfdrs.db.session import tenant_session
from awfdrs.enums import IncidentStatus
from awfdrs.intake import legacy_payload_hash, payload_hash
from tests.support.factories import TenantRef, new_event
from tests.support.pipeline import Stack, event, eventually

SLOW = {"grouping_window_seconds": 60}


def failure(tenant: TenantRef, key: str, code: str = "card_declined") -> dict[str, object]:
    return event(tenant, key, error={"code": code})


async def _stored(stack: Stack, tenant: TenantRef) -> int:
    async with tenant_session(stack.sessions, tenant.id) as session:
        return await EventRepository(session, tenant_id=tenant.id).count_events()


async def test_duplicates_and_conflicts_are_reported_and_not_written(stack: Stack) -> None:
    tenant = await stack.tenant(**SLOW)
    first = failure(tenant, "k-1")
    second = event(tenant, "k-2", "payment.started")
    changed = {**second, "payload": {"note": "different"}}
    result = await stack.client.ingest_batch(
        IngestBatch(tenant_id=tenant.id, events=[first, second, first, changed])
    )
    assert [(o.idempotency_key, o.outcome) for o in result.outcomes] == [
        ("k-1", Outcome.ACCEPTED),
        ("k-2", Outcome.ACCEPTED),
        ("k-1", Outcome.DUPLICATE),
        ("k-2", Outcome.CONFLICT),
    ]
    conflict = result.outcomes[3].reason
    assert conflict is not None
    assert conflict.count("sha256:") == 2
    again = await stack.client.ingest(tenant.id, [first, changed])
    assert [o.outcome for o in again.outcomes] == [Outcome.DUPLICATE, Outcome.CONFLICT]
    assert await _stored(stack, tenant) == 2
    async with tenant_session(stack.sessions, tenant.id) as session:
        stored = await EventRepository(session, tenant_id=tenant.id).get_by_idempotency_key("k-2")
    assert stored is not None
    assert stored.payload == {}


async def test_grouping_by_signature_counts_exactly_under_redelivery(stack: Stack) -> None:
    tenant = await stack.tenant(**SLOW)
    declined = [failure(tenant, f"d-{i}", "card_declined") for i in range(6)]
    timeouts = [failure(tenant, f"t-{i}", "insufficient_funds") for i in range(4)]
    await stack.client.ingest(tenant.id, declined + timeouts)
    # A full redelivery, then an overlapping one with two new events.
    await stack.client.ingest(tenant.id, declined + timeouts)
    summary = await stack.client.ingest(
        tenant.id,
        [
            *declined[:3],
            failure(tenant, "d-new", "card_declined"),
            failure(tenant, "t-new", "insufficient_funds"),
        ],
    )
    assert summary.count(Outcome.ACCEPTED) == 2
    assert summary.count(Outcome.DUPLICATE) == 3
    incidents = await stack.incidents(tenant)
    assert sorted(i.event_count for i in incidents) == [5, 7]
    assert all(i.status is IncidentStatus.NEW for i in incidents)
    assert await _stored(stack, tenant) == 12


async def test_one_workflow_per_incident_not_per_event(stack: Stack) -> None:
    tenant = await stack.tenant(**SLOW)
    summary = await stack.client.ingest(tenant.id, [failure(tenant, f"k-{i}") for i in range(30)])
    [incident] = {c.incident_id for c in summary.incidents}
    query = f'AwfdrsTenant = "{tenant.id}"'

    async def listed() -> list[str] | None:
        ids = [w.id async for w in stack.client.temporal.list_workflows(query)]
        return ids or None

    ids = await eventually(listed, 10, "the incident workflow to be visible")
    assert ids == [f"incident-{incident}"]


async def test_malformed_events_are_rejected_by_name_and_the_rest_lands(stack: Stack) -> None:
    tenant = await stack.tenant(**SLOW)
    good = failure(tenant, "good")
    bad_type = {**failure(tenant, "bad-type"), "event_type": "Not Valid"}
    bad_time = {**failure(tenant, "bad-time"), "occurred_at": "2026-01-01T00:00:00"}
    other_tenant = {**failure(tenant, "bad-tenant"), "tenant_id": str(uuid.uuid4())}
    result = await stack.client.ingest_batch(
        IngestBatch(
            tenant_id=tenant.id, events=[bad_type, good, "not an object", bad_time, other_tenant]
        )
    )
    outcomes = [(o.outcome, (o.reason or "").split(":")[0]) for o in result.outcomes]
    assert outcomes == [
        (Outcome.REJECTED, "event_type"),
        (Outcome.ACCEPTED, ""),
        (Outcome.REJECTED, "event"),
        (Outcome.REJECTED, "occurred_at"),
        (Outcome.REJECTED, "tenant_id"),
    ]
    assert await _stored(stack, tenant) == 1


async def test_an_unknown_tenant_rejects_the_batch_an_unknown_workflow_only_its_event(
    stack: Stack,
) -> None:
    tenant = await stack.tenant(**SLOW)
    stranger = uuid.uuid4()
    stray = {**failure(tenant, "x"), "tenant_id": str(stranger)}
    with pytest.raises(WorkflowFailureError) as caught:
        await stack.client.ingest_batch(IngestBatch(tenant_id=stranger, events=[stray]))
    assert f"tenant {stranger} is unknown" in str(caught.value.cause)

    # One bad event never harms the others: the unknown workflow's event alone is refused.
    unknown = uuid.uuid4()
    unknown_workflow = {**failure(tenant, "y"), "workflow_id": str(unknown)}
    result = await stack.client.ingest_batch(
        IngestBatch(tenant_id=tenant.id, events=[failure(tenant, "z"), unknown_workflow])
    )
    [good, bad] = result.outcomes
    assert good.outcome is Outcome.ACCEPTED
    assert bad.outcome is Outcome.REJECTED
    assert bad.reason == f"workflow_id: {unknown} is not a workflow of this tenant"

    async with tenant_session(stack.sessions, tenant.id) as session:
        await WorkflowRepository(session, tenant_id=tenant.id).update_where(
            tenant.workflow_id, is_active=False
        )
    result = await stack.client.ingest_batch(
        IngestBatch(tenant_id=tenant.id, events=[failure(tenant, "w")])
    )
    [inactive] = result.outcomes
    assert inactive.outcome is Outcome.REJECTED
    assert inactive.reason is not None
    assert inactive.reason.endswith("is inactive")
    assert await _stored(stack, tenant) == 1


async def test_a_batch_cannot_reach_into_another_tenant(stack: Stack) -> None:
    a = await stack.tenant(**SLOW)
    b = await stack.tenant(**SLOW)
    await stack.client.ingest(a.id, [failure(a, "a-1")])
    # B's batch naming A's workflow: A's workflow is invisible to B, so the event is refused.
    smuggled = {**failure(a, "b-1"), "tenant_id": str(b.id)}
    result = await stack.client.ingest_batch(IngestBatch(tenant_id=b.id, events=[smuggled]))
    [refused] = result.outcomes
    assert refused.outcome is Outcome.REJECTED
    assert refused.reason is not None
    assert "is not a workflow of this tenant" in refused.reason
    # And an event naming A inside B's batch is refused for its tenant.
    named = failure(a, "b-2")
    result = await stack.client.ingest_batch(IngestBatch(tenant_id=b.id, events=[named]))
    assert result.outcomes[0].reason is not None
    assert result.outcomes[0].reason.startswith("tenant_id: names another tenant")
    assert await stack.incidents(b) == []
    assert len(await stack.incidents(a)) == 1
    async with tenant_session(stack.sessions, b.id) as session:
        assert await IncidentRepository(session, tenant_id=b.id).list() == []
        rows = await session.execute(text("SELECT count(*) FROM incidents"))
        assert rows.scalar_one() == 0


async def test_a_malformed_batch_fails_without_retrying(stack: Stack) -> None:
    tenant = await stack.tenant(**SLOW)
    handle = await stack.client.temporal.start_workflow(
        "IngestEvents",
        {"tenant_id": str(tenant.id), "events": []},
        id=f"bad-{uuid.uuid4()}",
        task_queue=stack.client.task_queue,
    )
    with pytest.raises(WorkflowFailureError) as caught:
        await handle.result()
    assert "events" in str(caught.value.cause)


async def test_a_resend_is_judged_by_its_instant_not_its_offset(stack: Stack) -> None:
    tenant = await stack.tenant(**SLOW)
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    plus_two = at.astimezone(timezone(timedelta(hours=2)))
    sent = event(tenant, "k-offset", "payment.started", occurred_at=plus_two)
    assert sent["occurred_at"].endswith("+02:00")
    in_utc = {**sent, "occurred_at": at.isoformat().replace("+00:00", "Z")}
    later = {**sent, "occurred_at": (at + timedelta(seconds=1)).isoformat()}
    result = await stack.client.ingest(tenant.id, [sent, in_utc, later])
    assert [o.outcome for o in result.outcomes] == [
        Outcome.ACCEPTED,
        Outcome.DUPLICATE,
        Outcome.CONFLICT,
    ]
    reason = result.outcomes[2].reason
    assert reason is not None
    assert "occurred_at (as UTC)" in reason
    assert await _stored(stack, tenant) == 1


async def test_an_event_stored_with_the_legacy_hash_is_still_a_duplicate(stack: Stack) -> None:
    tenant = await stack.tenant(**SLOW)
    at = (datetime.now(UTC) - timedelta(hours=1)).astimezone(timezone(timedelta(hours=2)))
    sent = event(tenant, "k-legacy", "payment.started", occurred_at=at)
    parsed = EventIn.model_validate(sent)
    legacy = legacy_payload_hash(parsed, canonical_json(sent["payload"]))
    assert legacy != payload_hash(parsed, canonical_json(sent["payload"]))
    # As ingest stored it before the instant was hashed in UTC.
    async with tenant_session(stack.sessions, tenant.id) as session:
        await EventRepository(session, tenant_id=tenant.id).insert_new(
            [new_event(tenant, "k-legacy", occurred_at=at, payload_hash=legacy)]
        )
    changed = {**sent, "payload": {"note": "different"}}
    result = await stack.client.ingest(tenant.id, [sent, changed])
    assert [o.outcome for o in result.outcomes] == [Outcome.DUPLICATE, Outcome.CONFLICT]
    assert await _stored(stack, tenant) == 1
