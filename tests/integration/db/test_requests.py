"""The affected requests of incidents: joining, keys, evidence, guarded claims, as SQL does them."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from awfdrs.db.repositories import EventRepository, IncidentRepository, RequestRepository
from awfdrs.enums import IncidentStatus, Phase, RequestStatus
from awfdrs.intake import Evidence, FailedRequest, request_key
from tests.support.factories import TenantRef, make_incident, new_event


def failed(
    tenant: TenantRef,
    key: str,
    request_hash: str,
    *,
    correlation: str | None = None,
    at: datetime | None = None,
    replayable: bool = True,
) -> FailedRequest:
    at = at or datetime.now(UTC)
    return FailedRequest(
        signature="sig",
        event_key=key,
        request_hash=request_hash,
        candidate_key=request_key(tenant.id, key),
        replayable=replayable,
        vendor="stripe" if replayable else None,
        method="POST" if replayable else None,
        path="/v1/charges" if replayable else None,
        body_json='{"order":1}' if replayable else None,
        headers_json="{}",
        reversible=True,
        correlation_ids=(correlation,) if correlation else (),
        error_code="timeout",
        error_message="gateway timeout",
        event_count=1,
        first_failed_at=at,
        last_failed_at=at,
    )


async def join(
    session: AsyncSession, tenant: TenantRef, incident_id: uuid.UUID, *requests: FailedRequest
) -> set[uuid.UUID]:
    events = EventRepository(session, tenant_id=tenant.id)
    ids = await events.insert_new(
        [new_event(tenant, r.event_key, signature="sig") for r in requests]
    )
    stored = dict(ids)
    for r in requests:
        if r.event_key not in stored:
            found = await events.get_by_idempotency_key(r.event_key)
            assert found is not None
            stored[r.event_key] = found.id
    return await RequestRepository(session, tenant_id=tenant.id).upsert_failed(
        [(incident_id, stored[r.event_key], r) for r in requests]
    )


async def test_a_failed_request_joins_once_and_repeats_count_on_it(
    session: AsyncSession, tenant: TenantRef
) -> None:
    incident = await make_incident(session, tenant, "sig")
    requests = RequestRepository(session, tenant_id=tenant.id)
    assert await join(session, tenant, incident, failed(tenant, "e1", "h1", correlation="o-1")) == {
        incident
    }
    # The same request again (a resend under a new event key): no news, one row, counted.
    again = failed(tenant, "e2", "h1", correlation="o-1b")
    assert await join(session, tenant, incident, again) == set()
    [row] = await requests.list_for_incident(incident)
    assert row.event_count == 2
    assert row.correlation_ids == ["o-1", "o-1b"]
    assert row.idempotency_key == request_key(tenant.id, "e1")  # the first event's
    assert row.status is RequestStatus.PENDING
    counts, unreplayable, proven = await requests.count_by_state(incident)
    assert (counts[RequestStatus.PENDING], unreplayable, proven) == (1, 0, 0)


async def test_a_request_keeps_its_key_in_a_later_incident_and_is_never_sent_twice(
    session: AsyncSession, tenant: TenantRef
) -> None:
    first = await make_incident(session, tenant, "sig")
    await join(session, tenant, first, failed(tenant, "e1", "h1"))
    requests = RequestRepository(session, tenant_id=tenant.id)
    [row] = await requests.list_for_incident(first)
    claimed = await requests.claim(row.id, action_id=uuid.uuid4(), lease_seconds=5)
    assert claimed is not None
    await requests.finish(
        row.id, status=RequestStatus.SUCCEEDED, status_code=200, response="{}", error=None
    )
    await IncidentRepository(session, tenant_id=tenant.id).transition(
        first, expected=[IncidentStatus.NEW], to=IncidentStatus.RESOLVED,
        resolved_at=datetime.now(UTC),
    )  # fmt: skip
    # A late copy of the failure that success answered (not later on the sender's clock): it
    # is done, by the first incident, and is not sent again.
    copy = await make_incident(session, tenant, "sig")
    await join(session, tenant, copy, failed(tenant, "e8", "h1", at=row.last_failed_at))
    [done] = await requests.list_for_incident(copy)
    assert done.idempotency_key == row.idempotency_key
    assert done.status is RequestStatus.SUCCEEDED
    assert done.note is not None
    assert str(first) in done.note
    # A failure after it: a new failure of a request already done, for a human.
    second = await make_incident(session, tenant, "sig2")
    later_at = row.last_failed_at + timedelta(minutes=1)
    await join(session, tenant, second, failed(tenant, "e9", "h1", at=later_at))
    [later] = await requests.list_for_incident(second)
    assert later.idempotency_key == row.idempotency_key
    assert later.status is RequestStatus.FAILED
    assert later.note is not None
    assert "already succeeded" in later.note
    assert str(first) in later.note
    # What that success answered is fixed when it was sent: a later failure of the first
    # incident's row does not stretch it over failures it never saw.
    await IncidentRepository(session, tenant_id=tenant.id).transition(
        second, expected=[IncidentStatus.NEW], to=IncidentStatus.RESOLVED,
        resolved_at=datetime.now(UTC),
    )  # fmt: skip
    original, row_id = row.last_failed_at, row.id
    bump = failed(tenant, "e11", "h1", at=original + timedelta(minutes=2))
    await join(session, tenant, first, bump)
    session.expire_all()
    assert (await requests.get(row_id)).last_failed_at == original + timedelta(minutes=2)
    third = await make_incident(session, tenant, "sig3")
    between = original + timedelta(seconds=30)
    await join(session, tenant, third, failed(tenant, "e10", "h1", at=between))
    [unanswered] = await requests.list_for_incident(third)
    assert unanswered.status is RequestStatus.FAILED


async def test_a_failure_after_the_replay_succeeded_is_for_a_human(
    session: AsyncSession, tenant: TenantRef
) -> None:
    incident = await make_incident(session, tenant, "sig")
    await join(session, tenant, incident, failed(tenant, "e1", "h1"))
    requests = RequestRepository(session, tenant_id=tenant.id)
    [row] = await requests.list_for_incident(incident)
    row_id = row.id
    await requests.claim(row_id, action_id=uuid.uuid4(), lease_seconds=0)
    await requests.finish(
        row_id, status=RequestStatus.SUCCEEDED, status_code=200, response=None, error=None
    )
    # A late copy of the original failure (it happened before the success) changes nothing.
    early = failed(tenant, "e2", "h1", at=datetime.now(UTC) - timedelta(minutes=5))
    assert await join(session, tenant, incident, early) == set()
    session.expire_all()
    assert (await requests.get(row_id)).status is RequestStatus.SUCCEEDED
    # A failure after the success: it failed again.
    late = failed(tenant, "e3", "h1", at=datetime.now(UTC) + timedelta(seconds=1))
    assert await join(session, tenant, incident, late) == {incident}
    session.expire_all()  # the statement ran as raw SQL: read the row again
    again = await requests.get(row_id)
    assert again.status is RequestStatus.FAILED
    assert again.note is not None
    assert again.note.startswith("was SUCCEEDED, then failed again")
    assert await requests.count_failures_since(incident, datetime.now(UTC) - timedelta(1)) == 1


async def test_evidence_needs_the_same_correlation_or_the_grouping_window(
    session: AsyncSession, tenant: TenantRef
) -> None:
    incident = await make_incident(session, tenant, "sig")
    now = datetime.now(UTC)
    await join(
        session,
        tenant,
        incident,
        failed(tenant, "e1", "h1", correlation="o-1", at=now),
        failed(tenant, "e2", "h2", at=now, replayable=False),
    )
    requests = RequestRepository(session, tenant_id=tenant.id)
    incidents = IncidentRepository(session, tenant_id=tenant.id)
    # Past the grouping window, only a success naming the same correlation id is evidence.
    await session.execute(
        text("UPDATE incidents SET created_at = now() - interval '1 hour' WHERE id = :id"),
        {"id": incident},
    )
    wf = tenant.workflow_id
    later = now + timedelta(seconds=1)

    async def evidence(*successes: Evidence) -> set[uuid.UUID]:
        return await requests.apply_evidence(list(successes), grouping_window_seconds=60)

    assert await evidence(Evidence(wf, "payment", "o-2", later)) == set()
    assert await evidence(Evidence(wf, "refund", "o-1", later)) == set()
    earlier = now - timedelta(seconds=1)
    assert await evidence(Evidence(wf, "payment", "o-1", earlier)) == set()
    assert await evidence(Evidence(wf, "payment", "o-1", later)) == {incident}
    session.expire_all()
    rows = {r.request_hash: r for r in await requests.list_for_incident(incident)}
    assert rows["h1"].status is RequestStatus.RECOVERED
    assert rows["h1"].evidence_at == later
    assert rows["h2"].status is RequestStatus.PENDING
    # The uncorrelated failure: only inside its incident's grouping window (a blip), by the
    # database's clock, whatever phase the workflow has reached.
    await incidents.note_phase(incident, Phase.AWAITING_OPERATOR, None)
    assert await evidence(Evidence(wf, "payment", None, later)) == set()
    await session.execute(
        text("UPDATE incidents SET created_at = now() - interval '30 s' WHERE id = :id"),
        {"id": incident},
    )
    assert await evidence(Evidence(wf, "payment", None, later)) == {incident}
    counts, _, proven = await requests.count_by_state(incident)
    assert (counts[RequestStatus.RECOVERED], proven) == (2, 2)


async def test_claims_are_guarded_by_status_lease_and_an_open_incident(
    session: AsyncSession, tenant: TenantRef
) -> None:
    incident = await make_incident(session, tenant, "sig")
    await join(session, tenant, incident, failed(tenant, "e1", "h1"), failed(tenant, "e2", "h2"))
    requests = RequestRepository(session, tenant_id=tenant.id)
    one, two = await requests.list_for_incident(incident)
    action = uuid.uuid4()
    claimed = await requests.claim(one.id, action_id=action, lease_seconds=60)
    assert claimed is not None
    assert (claimed.status, claimed.attempts, claimed.action_id) == (RequestStatus.SENT, 1, action)
    # In flight under a running lease: no second attempt.
    assert await requests.claim(one.id, action_id=action, lease_seconds=60) is None
    # The lease ran out (its worker died mid-call): the same request may be claimed again.
    await session.execute(
        text("UPDATE remediation_requests SET lease_until = now() - interval '1 s' WHERE id = :id"),
        {"id": one.id},
    )
    again = await requests.claim(one.id, action_id=action, lease_seconds=60)
    assert again is not None
    assert again.attempts == 2
    # A transient failure puts it back to PENDING; a final answer ends it.
    back = await requests.finish(
        one.id, status=RequestStatus.PENDING, status_code=503, response="", error="attempt 2"
    )
    assert back is not None
    assert back.status is RequestStatus.PENDING
    assert back.finished_at is None
    # The incident closes: pending requests are cancelled and nothing can be claimed after.
    cancelled = await requests.settle_unsent(
        incident, to=RequestStatus.CANCELLED, note="resolved by alice"
    )
    assert {r.id for r in cancelled} == {one.id, two.id}
    assert all(r.note == "resolved by alice" for r in cancelled)
    assert await requests.claim(two.id, action_id=action, lease_seconds=60) is None
    assert await requests.count_sent_since(datetime.now(UTC) - timedelta(hours=1)) == 1


async def test_no_claim_once_the_incident_is_closed(
    session: AsyncSession, tenant: TenantRef
) -> None:
    incident = await make_incident(session, tenant, "sig")
    await join(session, tenant, incident, failed(tenant, "e1", "h1"))
    requests = RequestRepository(session, tenant_id=tenant.id)
    [row] = await requests.list_for_incident(incident)
    await IncidentRepository(session, tenant_id=tenant.id).transition(
        incident, expected=[IncidentStatus.NEW], to=IncidentStatus.IGNORED,
        resolved_at=datetime.now(UTC),
    )  # fmt: skip
    assert await requests.claim(row.id, action_id=uuid.uuid4(), lease_seconds=60) is None


async def test_a_new_note_keeps_the_earlier_one(session: AsyncSession, tenant: TenantRef) -> None:
    incident = await make_incident(session, tenant, "sig")
    await join(session, tenant, incident, failed(tenant, "e1", "h1"))
    requests = RequestRepository(session, tenant_id=tenant.id)
    [row] = await requests.list_for_incident(incident)
    await requests.settle_unsent(incident, to=RequestStatus.FAILED, note="vendor unknown")
    [handed] = await requests.settle_unsent(
        incident,
        to=RequestStatus.HANDED_OVER,
        from_statuses=[RequestStatus.FAILED],
        note="escalated",
    )
    assert handed.id == row.id
    assert handed.note == "escalated (before: vendor unknown)"


def test_failed_requests_are_frozen_values() -> None:
    tenant = TenantRef(uuid.uuid4(), uuid.uuid4(), "t")
    request = failed(tenant, "e", "h")
    assert replace(request, event_count=2).event_count == 2
