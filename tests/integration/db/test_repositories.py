"""Every repository method, against the real schema, as the application role."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from awfdrs.db.repositories import (
    ActionRepository,
    DecisionRepository,
    EventRepository,
    IncidentRepository,
    KillSwitchRepository,
    TenantDirectory,
    TenantRepository,
    VendorConnectionRepository,
    VendorRepository,
    WorkflowRepository,
)
from awfdrs.db.session import make_sessionmaker, tenant_session
from awfdrs.enums import ActionStatus, ActionType, CircuitState, IncidentStatus, Severity
from awfdrs.errors import ConflictError, NotFoundError
from awfdrs.intake import FailureGroup
from tests.support.factories import TenantRef, admin_sessions, make_incident, make_tenant, new_event


def _group(
    tenant: TenantRef,
    signature: str,
    count: int = 1,
    *,
    severity: Severity = Severity.ERROR,
    at: datetime | None = None,
) -> FailureGroup:
    at = at or datetime.now(UTC)
    return FailureGroup(
        signature=signature,
        workflow_id=tenant.workflow_id,
        operation="payment",
        title=f"payment: {signature}",
        count=count,
        first_seen_at=at,
        last_seen_at=at,
        severity=severity,
        correlation_id="corr-1",
    )


# --- base behaviour, through the tenant and workflow repositories ---------------------------


async def test_get_find_list_add_update_delete(session: AsyncSession, tenant: TenantRef) -> None:
    workflows = WorkflowRepository(session, tenant_id=tenant.id)
    added = await workflows.create({"name": "invoice-sync", "description": "nightly"})
    assert added.tenant_id == tenant.id
    assert added.created_at is not None
    assert await workflows.get(added.id) is added
    assert await workflows.get_by_id(added.id) is added
    assert await workflows.find(uuid.uuid4()) is None
    with pytest.raises(NotFoundError, match="Workflow"):
        await workflows.get(uuid.uuid4())
    assert {w.name for w in await workflows.list()} == {"payments", "invoice-sync"}
    assert len(await workflows.list(limit=1)) == 1
    locked = await workflows.get_for_update(added.id)
    await workflows.update(locked, description="hourly")
    assert (await workflows.get(added.id)).description == "hourly"
    assert await workflows.update_where(added.id, is_active=False)
    assert not await workflows.update_where(uuid.uuid4(), is_active=False)
    await workflows.delete(added.id)
    assert await workflows.find(added.id) is None
    with pytest.raises(NotFoundError):
        await workflows.delete(added.id)
    with pytest.raises(NotFoundError):
        await workflows.get_for_update(added.id)


async def test_scope_and_id_cannot_be_changed(session: AsyncSession, tenant: TenantRef) -> None:
    workflows = WorkflowRepository(session, tenant_id=tenant.id)
    flow = await workflows.get(tenant.workflow_id)
    with pytest.raises(ConflictError):
        await workflows.update(flow, tenant_id=uuid.uuid4())
    with pytest.raises(ConflictError):
        await workflows.update(flow, id=uuid.uuid4())


async def test_unique_names_surface_as_conflict_with_the_constraint(
    session: AsyncSession, tenant: TenantRef
) -> None:
    with pytest.raises(ConflictError) as caught:
        await WorkflowRepository(session, tenant_id=tenant.id).add(name="payments")
    assert caught.value.constraint == "uq_workflows_tenant_id_name"


async def test_workflow_queries(session: AsyncSession, tenant: TenantRef) -> None:
    workflows = WorkflowRepository(session, tenant_id=tenant.id)
    other = await workflows.add(name="refunds")
    assert (await workflows.find_by_name("payments")) is not None
    assert await workflows.find_by_name("nope") is None
    found = await workflows.list_by_ids({tenant.workflow_id, other.id, uuid.uuid4()})
    assert {w.id for w in found} == {tenant.workflow_id, other.id}
    assert await workflows.list_by_ids([]) == []
    assert [w.name for w in await workflows.list_all()] == ["payments", "refunds"]


async def test_tenant_repository_is_scoped_by_id(session: AsyncSession, tenant: TenantRef) -> None:
    tenants = TenantRepository(session, tenant_id=tenant.id)
    current = await tenants.get_current()
    assert current.name == tenant.name
    await tenants.update(current, settings={"grouping_window_seconds": 5})
    assert (await tenants.get_current()).settings == {"grouping_window_seconds": 5}


async def test_tenant_directory_lists_every_tenant_for_the_owner(
    owner_engine: AsyncEngine, committed_sessions: async_sessionmaker[AsyncSession]
) -> None:
    a = await make_tenant(committed_sessions)
    b = await make_tenant(committed_sessions)
    async with make_sessionmaker(owner_engine)() as session:
        directory = TenantDirectory(session)
        names = {t.name for t in await directory.list()}
        found = await directory.find_by_name(b.name)
        assert await directory.find_by_name("no such tenant") is None
    assert {a.name, b.name} <= names
    assert found is not None
    assert found.id == b.id


async def test_vendor_repository_is_global(sessions: async_sessionmaker[AsyncSession]) -> None:
    name = f"stripe-{uuid.uuid4().hex[:8]}"
    # The catalog is the deployment administrator's: the owner writes it (migration 0009).
    async with admin_sessions()() as session:
        vendors = VendorRepository(session)
        added = await vendors.add(name=name, base_url="http://127.0.0.1:9/")
        assert added.rate_limit_per_minute == 60
        assert await vendors.find_by_name(name) is added
        assert name in {v.name for v in await vendors.list_all()}
        with pytest.raises(ConflictError) as caught:
            await vendors.add(name=name, base_url="http://127.0.0.1:9/")
        assert caught.value.constraint == "uq_vendors_name"
        await session.rollback()


async def test_vendor_check_constraints_are_named(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with admin_sessions()() as session:
        with pytest.raises(ConflictError) as caught:
            await VendorRepository(session).add(
                name="bad", base_url="http://x/", rate_limit_per_minute=0
            )
        await session.rollback()
    assert caught.value.constraint == "ck_vendors_rate_limit_positive"


async def test_vendor_connections_are_the_tenants_own(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    a, b = await make_tenant(sessions), await make_tenant(sessions)
    async with admin_sessions()() as session, session.begin():
        vendor = await VendorRepository(session).add(
            name=f"v-{uuid.uuid4().hex[:8]}", base_url="http://127.0.0.1:9/"
        )
    async with tenant_session(sessions, a.id) as session:
        connections = VendorConnectionRepository(session, tenant_id=a.id)
        mine = await connections.add(vendor_id=vendor.id)
        assert mine.circuit_breaker_state is CircuitState.CLOSED
        assert (await connections.get_for_vendor(vendor.id)).id == mine.id
    with pytest.raises(ConflictError) as caught:
        async with tenant_session(sessions, a.id) as session:
            await VendorConnectionRepository(session, tenant_id=a.id).add(vendor_id=vendor.id)
    assert caught.value.constraint == "uq_vendor_connections_tenant_id_vendor_id"
    async with tenant_session(sessions, b.id) as session:
        theirs = VendorConnectionRepository(session, tenant_id=b.id)
        assert await theirs.find_for_vendor(vendor.id) is None
        assert await theirs.find(mine.id) is None
        assert await theirs.list_all() == []


# --- events ---------------------------------------------------------------------------------


async def test_events_insert_once_per_key(session: AsyncSession, tenant: TenantRef) -> None:
    events = EventRepository(session, tenant_id=tenant.id)
    inserted = await events.insert_new([new_event(tenant, "a"), new_event(tenant, "b")])
    assert set(inserted) == {"a", "b"}
    again = await events.insert_new(
        [new_event(tenant, "b", payload_hash="1" * 64), new_event(tenant, "c")]
    )
    assert set(again) == {"c"}
    stored_c = await events.get_by_idempotency_key("c")
    assert stored_c is not None
    assert again["c"] == stored_c.id
    assert await events.list_payload_hashes(["a", "b", "zz"]) == {"a": "0" * 64, "b": "0" * 64}
    assert await events.list_payload_hashes([]) == {}
    assert await events.insert_new([]) == {}
    assert await events.count_events() == 3
    assert await events.count_events(tenant.workflow_id) == 3
    assert await events.count_events(uuid.uuid4()) == 0
    stored = await events.get_by_idempotency_key("a")
    assert stored is not None
    assert stored.payload == {}
    assert await events.get_by_idempotency_key("missing") is None


async def test_the_same_key_in_two_tenants_is_two_events(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    a = await make_tenant(sessions)
    b = await make_tenant(sessions)
    for tenant in (a, b):
        async with tenant_session(sessions, tenant.id) as session:
            inserted = await EventRepository(session, tenant_id=tenant.id).insert_new(
                [new_event(tenant, "shared-key")]
            )
            assert set(inserted) == {"shared-key"}


async def test_recent_events_are_newest_first_within_the_window(
    session: AsyncSession, tenant: TenantRef
) -> None:
    now = datetime.now(UTC)
    events = EventRepository(session, tenant_id=tenant.id)
    await events.insert_new(
        [
            new_event(tenant, "old", occurred_at=now - timedelta(hours=30)),
            new_event(tenant, "mid", occurred_at=now - timedelta(hours=2)),
            new_event(tenant, "new", occurred_at=now - timedelta(minutes=1)),
        ]
    )
    recent = await events.get_recent_events(tenant.workflow_id)
    assert [e.idempotency_key for e in recent] == ["new", "mid"]
    assert [
        e.idempotency_key for e in await events.get_recent_events(tenant.workflow_id, hours=1)
    ] == ["new"]
    assert len(await events.get_recent_events(tenant.workflow_id, hours=48, limit=2)) == 2


async def test_events_of_a_signature(session: AsyncSession, tenant: TenantRef) -> None:
    now = datetime.now(UTC)
    events = EventRepository(session, tenant_id=tenant.id)
    await events.insert_new(
        [
            new_event(tenant, "f1", signature="s", occurred_at=now - timedelta(minutes=2)),
            new_event(tenant, "f2", signature="s", occurred_at=now - timedelta(minutes=1)),
            new_event(tenant, "other", signature="t"),
            new_event(tenant, "neutral"),
        ]
    )
    assert [e.idempotency_key for e in await events.list_for_signature("s")] == ["f1", "f2"]
    assert await events.list_for_signature("s", since=now + timedelta(hours=1)) == []
    assert len(await events.list_for_signature("s", until=now + timedelta(hours=1))) == 2
    latest = await events.find_latest_for_signature("s")
    assert latest is not None
    assert latest.idempotency_key == "f2"
    assert await events.find_latest_for_signature("none") is None


# --- incidents ------------------------------------------------------------------------------


async def test_upsert_opens_counts_and_raises_severity(
    session: AsyncSession, tenant: TenantRef
) -> None:
    incidents = IncidentRepository(session, tenant_id=tenant.id)
    [opened] = await incidents.upsert_failures([_group(tenant, "s", 3, severity=Severity.WARNING)])
    assert opened.opened
    assert opened.event_count == 3
    assert opened.prior_severity is None
    assert opened.status is IncidentStatus.NEW
    [touched] = await incidents.upsert_failures(
        [_group(tenant, "s", 2, severity=Severity.CRITICAL)]
    )
    assert (touched.id, touched.opened, touched.event_count) == (opened.id, False, 5)
    assert (touched.prior_severity, touched.severity) == (Severity.WARNING, Severity.CRITICAL)
    [lower] = await incidents.upsert_failures([_group(tenant, "s", 1, severity=Severity.INFO)])
    assert lower.severity is Severity.CRITICAL
    assert await incidents.upsert_failures([]) == []
    stored = await incidents.get(opened.id)
    assert stored.event_count == 6
    assert stored.correlation_id == "corr-1"


async def test_upsert_after_resolution_opens_a_regression(
    session: AsyncSession, tenant: TenantRef
) -> None:
    incidents = IncidentRepository(session, tenant_id=tenant.id)
    [first] = await incidents.upsert_failures([_group(tenant, "s")])
    await incidents.transition(
        first.id,
        expected=[IncidentStatus.NEW],
        to=IncidentStatus.RESOLVED,
        resolved_at=datetime.now(UTC),
    )
    [second] = await incidents.upsert_failures([_group(tenant, "s", 4)])
    assert second.opened
    assert second.id != first.id
    assert second.regression_of == first.id
    assert (await incidents.get(first.id)).event_count == 1


async def test_upsert_on_an_ignored_signature_counts_and_opens_nothing(
    session: AsyncSession, tenant: TenantRef
) -> None:
    incidents = IncidentRepository(session, tenant_id=tenant.id)
    [first] = await incidents.upsert_failures([_group(tenant, "s")])
    await incidents.transition(
        first.id,
        expected=[IncidentStatus.NEW],
        to=IncidentStatus.IGNORED,
        resolved_at=datetime.now(UTC),
    )
    [again] = await incidents.upsert_failures([_group(tenant, "s", 2)])
    assert (again.id, again.opened, again.status, again.event_count) == (
        first.id,
        False,
        IncidentStatus.IGNORED,
        3,
    )
    assert len(await incidents.list()) == 1


async def test_incident_queries(session: AsyncSession, tenant: TenantRef) -> None:
    incidents = IncidentRepository(session, tenant_id=tenant.id)
    ids = [await make_incident(session, tenant, f"s{n}") for n in range(5)]
    await incidents.transition(ids[0], expected=[IncidentStatus.NEW], to=IncidentStatus.ANALYZING)
    page_one = await incidents.get_incidents_paginated(1, 2)
    page_three = await incidents.get_incidents_paginated(3, 2)
    assert len(page_one) == 2
    assert len(page_three) == 1
    everything = await incidents.get_incidents_paginated(1, 10)
    assert {i.id for i in everything} == set(ids)
    analyzing = await incidents.get_incidents_paginated(1, 10, status=IncidentStatus.ANALYZING)
    assert [i.id for i in analyzing] == [ids[0]]
    with pytest.raises(ValueError, match="page"):
        await incidents.get_incidents_paginated(0, 10)
    assert len(await incidents.get_incidents_by_status(IncidentStatus.NEW)) == 4
    assert len(await incidents.get_incidents_by_status(IncidentStatus.NEW, limit=3)) == 3
    counts = await incidents.count_by_status()
    assert counts[IncidentStatus.NEW] == 4
    assert counts[IncidentStatus.ANALYZING] == 1
    assert counts[IncidentStatus.RESOLVED] == 0
    open_one = await incidents.find_open_by_signature("s1")
    assert open_one is not None
    assert open_one.id == ids[1]
    assert await incidents.find_open_by_signature("none") is None
    latest = await incidents.find_latest_for_signature("s2")
    assert latest is not None
    assert latest.id == ids[2]
    assert await incidents.find_latest_for_signature("none") is None


async def test_transition_is_guarded(session: AsyncSession, tenant: TenantRef) -> None:
    incidents = IncidentRepository(session, tenant_id=tenant.id)
    incident_id = await make_incident(session, tenant)
    moved = await incidents.transition(
        incident_id, expected=[IncidentStatus.NEW], to=IncidentStatus.ANALYZING
    )
    assert moved is not None
    assert moved.status is IncidentStatus.ANALYZING
    assert (
        await incidents.transition(
            incident_id, expected=[IncidentStatus.NEW], to=IncidentStatus.ANALYZING
        )
        is None
    )
    with pytest.raises(NotFoundError):
        await incidents.transition(
            uuid.uuid4(), expected=[IncidentStatus.NEW], to=IncidentStatus.ANALYZING
        )


async def test_a_transition_breaking_a_check_is_a_conflict(
    sessions: async_sessionmaker[AsyncSession], tenant: TenantRef
) -> None:
    with pytest.raises(ConflictError) as caught:
        async with tenant_session(sessions, tenant.id) as session:
            incident_id = await make_incident(session, tenant)
            # RESOLVED without resolved_at breaks a CHECK constraint.
            await IncidentRepository(session, tenant_id=tenant.id).transition(
                incident_id, expected=[IncidentStatus.NEW], to=IncidentStatus.RESOLVED
            )
    assert caught.value.constraint == "ck_incidents_resolved_at_iff_closed"


# --- decisions and actions ------------------------------------------------------------------


async def _decision(
    session: AsyncSession, tenant: TenantRef, incident_id: uuid.UUID, *, attempt: int = 1
) -> uuid.UUID:
    decision_id = uuid.uuid4()
    await DecisionRepository(session, tenant_id=tenant.id).add_once(
        id=decision_id,
        incident_id=incident_id,
        decision_type=ActionType.RETRY,
        reasoning="transient timeout",
        confidence_score=0.9,
        ai_model="awfdrs-rules/1",
        attempt=attempt,
    )
    return decision_id


async def test_decisions_are_added_once(session: AsyncSession, tenant: TenantRef) -> None:
    incident_id = await make_incident(session, tenant)
    decisions = DecisionRepository(session, tenant_id=tenant.id)
    decision_id = await _decision(session, tenant, incident_id)
    again = await decisions.add_once(
        id=decision_id,
        incident_id=incident_id,
        decision_type=ActionType.ESCALATE,
        reasoning="second run of the same activity",
        confidence_score=0.1,
        ai_model="awfdrs-rules/1",
    )
    assert again.decision_type is ActionType.RETRY
    await decisions.add(
        incident_id=incident_id,
        decision_type=ActionType.ESCALATE,
        reasoning="operator rejected",
        confidence_score=1.0,
        ai_model="operator",
        decided_by="alice",
    )
    listed = await decisions.list_for_incident(incident_id)
    assert [d.decision_type for d in listed] == [ActionType.RETRY, ActionType.ESCALATE]
    with pytest.raises(ConflictError) as caught:
        await decisions.add(
            incident_id=incident_id,
            decision_type=ActionType.RETRY,
            reasoning="x",
            confidence_score=1.5,
            ai_model="x",
        )
    assert caught.value.constraint == "ck_decisions_confidence_in_unit_range"


async def test_action_lifecycle(session: AsyncSession, tenant: TenantRef) -> None:
    incident_id = await make_incident(session, tenant, "sig-a")
    decision_id = await _decision(session, tenant, incident_id)
    actions = ActionRepository(session, tenant_id=tenant.id)
    action_id = uuid.uuid4()
    values = {
        "id": action_id,
        "incident_id": incident_id,
        "decision_id": decision_id,
        "action_type": ActionType.RETRY,
        "parameters": {"path": "/charges"},
        "is_reversible": True,
    }
    action = await actions.add_once(**values)
    assert action.status is ActionStatus.PENDING
    assert (await actions.add_once(**values)).id == action_id
    claimed = await actions.claim(action_id)
    assert claimed is not None
    assert (claimed.status, claimed.attempts) == (ActionStatus.IN_PROGRESS, 1)
    first_start = claimed.started_at
    await actions.record_attempt_error(action_id, "503 from vendor")
    reclaimed = await actions.claim(action_id)
    assert reclaimed is not None
    assert (reclaimed.attempts, reclaimed.started_at) == (2, first_start)
    assert reclaimed.error == "503 from vendor"
    done = await actions.finish(action_id, status=ActionStatus.SUCCEEDED, result={"status": 200})
    assert done is not None
    assert done.finished_at is not None
    assert await actions.finish(action_id, status=ActionStatus.FAILED) is None
    assert await actions.claim(action_id) is None
    with pytest.raises(ValueError, match="final"):
        await actions.finish(action_id, status=ActionStatus.IN_PROGRESS)
    assert [a.id for a in await actions.list_for_incident(incident_id)] == [action_id]


async def test_action_outcomes_count_what_resolved_its_incident(
    session: AsyncSession, tenant: TenantRef
) -> None:
    actions = ActionRepository(session, tenant_id=tenant.id)
    incidents = IncidentRepository(session, tenant_id=tenant.id)

    async def incident_with(
        signature: str, *steps: ActionStatus | tuple[ActionStatus, int], close: bool
    ) -> None:
        """Retries, each of its decision's attempt (1 unless given): a higher attempt is an
        analysis after new failures, the same one another round of the same analysis."""
        incident_id = await make_incident(session, tenant, signature)
        for step in steps:
            status, attempt = step if isinstance(step, tuple) else (step, 1)
            decision_id = await _decision(session, tenant, incident_id, attempt=attempt)
            action = await actions.add(
                incident_id=incident_id,
                decision_id=decision_id,
                action_type=ActionType.RETRY,
                is_reversible=True,
            )
            await actions.finish(action.id, status=status)
        if close:
            await incidents.transition(
                incident_id,
                expected=[IncidentStatus.NEW],
                to=IncidentStatus.RESOLVED,
                resolved_at=datetime.now(UTC),
            )

    ok, failed = ActionStatus.SUCCEEDED, ActionStatus.FAILED
    # worked: one retry that resolved it
    await incident_with("s", ok, close=True)
    # analysed again after it: the first did not work; the second did
    await incident_with("s", (ok, 1), (ok, 2), close=True)
    # two rounds of one analysis (more requests than one plan holds): both worked
    await incident_with("s", (ok, 1), (ok, 1), close=True)
    # a failed retry did not work
    await incident_with("s", failed, close=True)
    # still open, nothing after it: not counted yet
    await incident_with("s", ok, close=False)
    await incident_with("t", failed, close=True)
    assert await actions.count_by_outcome("s", ActionType.RETRY) == (4, 2)
    assert await actions.count_by_outcome("t", ActionType.RETRY) == (0, 1)
    assert await actions.count_by_outcome("s", ActionType.ESCALATE) == (0, 0)
    [still_open] = await incidents.get_incidents_by_status(IncidentStatus.NEW)
    # analysed again after new failures: its own retry did not work
    assert await actions.count_by_outcome(
        "s", ActionType.RETRY, current=still_open.id, again=True
    ) == (4, 3)
    # a continuation round (more of its requests to send): its own history is left out
    assert await actions.count_by_outcome("s", ActionType.RETRY, current=still_open.id) == (4, 2)


async def test_kill_switches(session: AsyncSession, tenant: TenantRef) -> None:
    switches = KillSwitchRepository(session, tenant_id=tenant.id)
    tenant_wide = await switches.add(reason="vendor outage", activated_by="alice")
    scoped = await switches.add(
        workflow_id=tenant.workflow_id, reason="bad deploy", activated_by="bob"
    )
    assert [s.id for s in await switches.list_active()] == [tenant_wide.id, scoped.id]
    await switches.update(
        tenant_wide, is_active=False, released_by="alice", released_at=datetime.now(UTC)
    )
    assert [s.id for s in await switches.list_active()] == [scoped.id]
    with pytest.raises(ConflictError) as caught:
        await switches.add(reason="  ", activated_by="carol")
    assert caught.value.constraint == "ck_kill_switches_reason_not_blank"


async def test_incidents_by_id_prefix_are_the_tenants_own(
    sessions: async_sessionmaker[AsyncSession], tenant: TenantRef
) -> None:
    other = await make_tenant(sessions)
    shared = uuid.uuid4().hex[:8]
    mine, theirs, also_mine = (uuid.UUID(shared + uuid.uuid4().hex[8:]) for _ in range(3))
    async with tenant_session(sessions, other.id) as session:
        await make_incident(session, other, "sig-x", id=theirs)
    async with tenant_session(sessions, tenant.id) as session:
        await make_incident(session, tenant, "sig-a", id=mine)
        incidents = IncidentRepository(session, tenant_id=tenant.id)
        assert [i.id for i in await incidents.list_by_id_prefix(str(mine)[:13])] == [mine]
        assert [i.id for i in await incidents.list_by_id_prefix(shared)] == [mine]
        await make_incident(session, tenant, "sig-b", id=also_mine)
        assert {i.id for i in await incidents.list_by_id_prefix(shared.upper())} == {
            mine,
            also_mine,
        }
        assert await incidents.list_by_id_prefix(shared + "%") == []  # wildcards are literal
