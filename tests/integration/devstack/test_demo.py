"""The bundled demo, played against the test stack: it must settle the way the README says."""

from __future__ import annotations

import re
import uuid

from rich.console import Console
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from awfdrs.admin import create_tenant, ensure_workflow, find_tenant_by_name
from awfdrs.db.repositories import IncidentRepository
from awfdrs.db.session import make_sessionmaker, tenant_session
from awfdrs.devstack.demo import DEMO_KEYS, TENANT, Demo
from awfdrs.enums import IncidentStatus
from awfdrs.ingest_core import store_events
from tests.support.factories import TenantRef
from tests.support.pipeline import Stack, event


async def _leftovers(
    committed_sessions: async_sessionmaker[AsyncSession],
    owner_sessions: async_sessionmaker[AsyncSession],
    queue: str,
) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    """An earlier demo run's open incident and one of a person's own event, in the demo
    tenant; their workflows never ran (nothing serves ``queue``), as after a Temporal restart."""
    tenant = await find_tenant_by_name(owner_sessions, TENANT) or await create_tenant(
        owner_sessions, TENANT
    )
    flow = await ensure_workflow(committed_sessions, tenant.id, "payments")
    ref = TenantRef(id=tenant.id, workflow_id=flow.id, name=TENANT)
    ids = []
    for key, code in ((f"{DEMO_KEYS}earlier-{uuid.uuid4().hex[:6]}", "expired_card"),
                      (f"mine-{uuid.uuid4().hex[:6]}", "do_not_honor")):  # fmt: skip
        stored = await store_events(
            committed_sessions,
            tenant.id,
            [event(ref, key, error={"code": code})],
            task_queue=queue,
        )
        [incident_id] = {c.incident_id for c in stored.incidents}
        ids.append(incident_id)
    return tenant.id, ids[0], ids[1]


async def test_the_demo_settles_every_incident(
    stack: Stack,
    committed_sessions: async_sessionmaker[AsyncSession],
    owner_engine: AsyncEngine,
    undelivered_queue: str,
) -> None:
    owner_sessions = make_sessionmaker(owner_engine)
    tenant_id, earlier, mine = await _leftovers(
        committed_sessions, owner_sessions, undelivered_queue
    )
    console = Console(record=True, width=400)
    demo = Demo(stack.client, committed_sessions, owner_sessions, None, console)
    try:
        assert await demo.play()
    finally:
        demo.close()
    text = console.export_text()
    # The earlier run's incident is closed; the person's own stays open for that person. (Other
    # tests of this run may have left demo incidents open too: the count is not asserted.)
    assert re.search(r"resolved \d+ incident\(s\) an earlier demo run left open", text)
    async with tenant_session(committed_sessions, tenant_id) as session:
        incidents = IncidentRepository(session, tenant_id=tenant_id)
        closed, kept = await incidents.get(earlier), await incidents.get(mine)
    assert closed.status is IncidentStatus.RESOLVED
    assert closed.resolution == "closed by the demo: its workflow no longer exists"
    assert kept.status is IncidentStatus.NEW
    assert "2 duplicate" in text
    assert "escalation received by the webhook: [demo/invoicing]" in text
    assert "within the grouping window" in text
    # Three payments, three requests, three keys, each executed once at the vendor.
    executed = demo.vendor.executions()
    assert len(executed) == 3
    assert set(executed.values()) == {1}
    bodies = sorted(r.body["order_id"] for r in demo.vendor.requests if r.status == 200)
    assert bodies == [1000, 1001, 1002]
    assert text.count("SUCCEEDED after 2 attempt(s), Idempotency-Key awfdrs-") == 3
    assert "3 payment request(s) retried under 3 key(s), all succeeded (6 attempts in all)" in text
    assert "2 invoice.sync failure(s) escalated to on-call" in text
    assert "the inventory.sync failure recovered by itself" in text
