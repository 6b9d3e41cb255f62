"""Migration 0005's foreign keys: every other tenant-owned child points at its parent through
``(tenant_id, id)``, so a row cannot point into another tenant (docs/ARCHITECTURE.md, "The data
layer"). ``remediation_requests.first_event_id`` references ``events(id)`` alone, and
foreign-key checks do not apply row-level security: a tenant's request row may name another
tenant's event."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from awfdrs.db.repositories import EventRepository, RequestRepository
from awfdrs.db.session import tenant_session
from awfdrs.intake import FailedRequest, request_key
from tests.support.factories import make_incident, make_tenant, new_event


async def test_a_request_row_cannot_name_another_tenants_event(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    mine = await make_tenant(sessions)
    theirs = await make_tenant(sessions)
    async with tenant_session(sessions, theirs.id) as session:
        inserted = await EventRepository(session, tenant_id=theirs.id).insert_new(
            [new_event(theirs, "their-event", signature="sig")]
        )
        their_event = inserted["their-event"]
    now = datetime.now(UTC)
    refused = None
    async with tenant_session(sessions, mine.id) as session:
        incident_id = await make_incident(session, mine)
        try:
            async with session.begin_nested():
                await RequestRepository(session, tenant_id=mine.id).upsert_failed(
                    [
                        (
                            incident_id,
                            their_event,  # another tenant's event
                            FailedRequest(
                                signature="sig",
                                event_key="x",
                                request_hash="h" * 64,
                                candidate_key=request_key(mine.id, "x"),
                                replayable=False,
                                vendor=None,
                                method=None,
                                path=None,
                                body_json=None,
                                headers_json="{}",
                                reversible=None,
                                correlation_ids=(),
                                error_code="e",
                                error_message=None,
                                event_count=1,
                                first_failed_at=now,
                                last_failed_at=now,
                            ),
                        )
                    ]
                )
        except Exception as error:  # a foreign-key violation is what isolation means here
            refused = error
    assert refused is not None, (
        f"tenant {mine.id}'s request row points at event {their_event} of tenant {theirs.id}"
    )
