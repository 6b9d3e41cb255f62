"""Tenant isolation probes: tenant B asks for tenant A's rows by their ids, everywhere.

Every public method of every tenant-scoped repository is called with A's ids, twice: on a
repository built for B (the scoping in the repository base), and on a repository built for A in
a transaction set to B (row-level security alone, as if the code had scoped wrongly). Then the
activities and workflow entry points, and raw SQL as the application role. Each probe must
return nothing of A or refuse; afterwards every row of A is byte-for-byte what it was.

A coverage test fails when a repository gains a public method that has no probe here.
"""

from __future__ import annotations

import dataclasses
import inspect
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.orm.exc import StaleDataError
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from awfdrs.activities.actions import ActionActivities
from awfdrs.activities.controls import ControlActivities
from awfdrs.activities.incidents import IncidentActivities
from awfdrs.activities.ingest import IngestActivities
from awfdrs.activities.kill_switches import KillSwitchActivities
from awfdrs.analysis.rules import RulesAnalyzer
from awfdrs.client import KillSwitchRefused
from awfdrs.constants import INCIDENT_WORKFLOW, incident_workflow_id
from awfdrs.contracts import (
    AbandonCommand,
    AnalyzeCommand,
    CloseIncident,
    DecideCommand,
    EpisodeEscalation,
    ExecuteCommand,
    GateProbe,
    IncidentInput,
    IncidentParams,
    IngestBatch,
    Outcome,
    TenantSettings,
    VerifyCommand,
)
from awfdrs.contracts.kill_switches import (
    ActivateCommand,
    ActivateKillSwitch,
    ReleaseCommand,
    ReleaseKillSwitch,
)
from awfdrs.contracts.kill_switches import TenantRef as SwitchTenant
from awfdrs.db import repositories
from awfdrs.db.base import BaseModel
from awfdrs.db.models import (
    Action,
    Decision,
    Event,
    FuseEpisode,
    Incident,
    KillSwitch,
    Tenant,
    Workflow,
)
from awfdrs.db.repositories import (
    ActionRepository,
    DecisionRepository,
    EventRepository,
    FailureGroup,
    FuseEpisodeRepository,
    IncidentDirectory,
    IncidentRepository,
    KillSwitchRepository,
    TenantDirectory,
    TenantRepository,
    WorkflowRepository,
)
from awfdrs.db.repositories.base import BaseRepository
from awfdrs.db.session import tenant_session
from awfdrs.enums import (
    ActionStatus,
    ActionType,
    EventOutcome,
    GateControl,
    IncidentStatus,
    Severity,
)
from awfdrs.errors import ConflictError, InvalidTransitionError, NotFoundError
from awfdrs.remediation.executors import EscalateExecutor, build_executors
from awfdrs.remediation.gate import default_gate
from tests.reliability.support import record
from tests.support.factories import TenantRef, make_incident, make_tenant, new_event
from tests.support.pipeline import Stack

TABLES = (
    "tenants",
    "workflows",
    "events",
    "workflow_event_counts",
    "incidents",
    "decisions",
    "actions",
    "kill_switches",
    "fuse_episodes",
)
REFUSALS = (
    NotFoundError,
    ConflictError,
    InvalidTransitionError,
    DBAPIError,
    StaleDataError,
    asyncpg.PostgresError,  # the set-based statements run on the raw connection
)
# Shared by design, named here so the coverage test knows they were considered.
NOT_TENANT_SCOPED = {
    "VendorRepository": "vendors are global configuration, no tenant's rows",
    "VendorCallRepository": "the vendors' rate-limit ledger, no tenant's rows",
    "MetricsRepository": "aggregate counts only, through SECURITY DEFINER functions",
}


@dataclass(frozen=True)
class World:
    """Tenant A with a row in every table; tenant B with only its tenant and workflow."""

    a: TenantRef
    b: TenantRef
    incident: uuid.UUID
    decision: uuid.UUID
    action: uuid.UUID
    switch: uuid.UUID
    episode: uuid.UUID
    event: uuid.UUID
    event_key: str
    signature: str

    @property
    def ids(self) -> set[uuid.UUID]:
        return {
            self.a.id,
            self.a.workflow_id,
            self.incident,
            self.decision,
            self.action,
            self.switch,
            self.episode,
            self.event,
        }

    @property
    def strings(self) -> set[str]:
        return {self.event_key, self.signature, self.a.name}


@dataclass
class Passed:
    repository: int = 0
    activity: int = 0
    entry_points: int = 0
    sql: int = 0


@pytest.fixture(scope="module")
def passed() -> Iterator[Passed]:
    """Counts the probes that passed; written to the reliability record when all of them did."""
    tally = Passed()
    yield tally
    if (tally.repository, tally.activity, tally.entry_points, tally.sql) == (
        len(CASES),
        len(ACTIVITY_NAMES),
        1,
        2,
    ):
        record(
            "tenant isolation probes",
            f"{len(PROBES)} repositories, {len(CASES) // 2} public methods, "
            f"{len(ACTIVITY_NAMES)} activities, 3 workflow entry points, raw SQL",
            "tenant B calling each with tenant A's ids; repositories both scoped to B and "
            "scoped to A inside B's transaction (row-level security alone)",
            {
                "repository probes": tally.repository,
                "activity probes": tally.activity,
                "workflow entry point probes": 3,
                "raw SQL probes": len(TABLES) + 2,
                "rows of A returned": 0,
                "rows of A changed": 0,
            },
        )


@pytest.fixture(scope="module")
async def world(committed_sessions: async_sessionmaker[AsyncSession]) -> World:
    a = await make_tenant(committed_sessions)
    b = await make_tenant(committed_sessions)
    signature = f"sig-{uuid.uuid4().hex}"
    key = f"secret-{uuid.uuid4().hex}"
    async with tenant_session(committed_sessions, a.id) as session:
        events = EventRepository(session, tenant_id=a.id)
        await events.insert_new([new_event(a, key, signature=signature)])
        event = await events.get_by_idempotency_key(key)
        assert event is not None
        incident = await make_incident(session, a, signature)
        decision = await DecisionRepository(session, tenant_id=a.id).add(
            incident_id=incident,
            decision_type=ActionType.RETRY,
            reasoning="r",
            confidence_score=0.9,
            ai_model="rules",
        )
        action = await ActionRepository(session, tenant_id=a.id).add(
            incident_id=incident,
            decision_id=decision.id,
            action_type=ActionType.RETRY,
            is_reversible=True,
            parameters={},
        )
        switch = await KillSwitchRepository(session, tenant_id=a.id).activate(
            switch_id=uuid.uuid4(),
            workflow_id=a.workflow_id,
            reason="probe",
            activated_by="probe",
            expires_at=datetime.now(UTC) - timedelta(seconds=1),
        )
        episode, _ = await FuseEpisodeRepository(session, tenant_id=a.id).open(
            incident_count=9, threshold=5, window_seconds=60, now=datetime.now(UTC)
        )
        return World(
            a, b, incident, decision.id, action.id, switch.id, episode.id, event.id, key, signature
        )


async def rows_of_a(owner_engine: AsyncEngine, world: World) -> dict[str, list[str]]:
    """Every row of tenant A as JSON text, read as the owner (no row-level security)."""
    found: dict[str, list[str]] = {}
    async with owner_engine.connect() as connection:
        for table in TABLES:
            column = "id" if table == "tenants" else "tenant_id"
            result = await connection.execute(
                text(f"SELECT to_jsonb(t)::text FROM {table} t WHERE {column} = :a ORDER BY 1"),  # noqa: S608
                {"a": world.a.id},
            )
            found[table] = [r[0] for r in result.all()]
    return found


def leaks(value: Any, world: World) -> list[str]:
    """What in a result belongs to A: its rows, ids or strings, or a count above zero (B has no
    events, incidents, decisions, actions or switches of its own to count)."""
    if value is None or isinstance(value, bool):
        return []
    if isinstance(value, BaseModel):
        owner = getattr(value, "tenant_id", None) or (
            value.id if isinstance(value, Tenant) else None
        )
        return [f"{type(value).__name__} of A"] if owner == world.a.id else []
    if isinstance(value, uuid.UUID):
        return [f"A's id {value}"] if value in world.ids else []
    if isinstance(value, str):
        return [f"A's string {value}"] if value in world.strings else []
    if isinstance(value, int | float):
        return [f"a count of {value}"] if value else []
    if isinstance(value, datetime):
        return [f"a time {value}"]
    if isinstance(value, dict):
        return [x for k, v in value.items() for x in leaks(k, world) + leaks(v, world)]
    if isinstance(value, list | tuple | set | frozenset):
        return [x for item in value for x in leaks(item, world)]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return leaks([getattr(value, f.name) for f in dataclasses.fields(value)], world)
    return [f"unexpected {type(value).__name__}"]


Probe = Callable[[Any, AsyncSession, World], Awaitable[Any]]


def common(
    model: type[BaseModel], a_id: Callable[[World], uuid.UUID], **new: Any
) -> dict[str, Probe]:
    """Probes of the methods every repository inherits."""

    async def add(repo: Any, session: AsyncSession, world: World) -> Any:
        return await repo.add(**new, **_parent(world))

    async def add_once(repo: Any, session: AsyncSession, world: World) -> Any:
        return await repo.add_once(id=a_id(world), **new, **_parent(world))

    async def create(repo: Any, session: AsyncSession, world: World) -> Any:
        return await repo.create({repo.scope_column: world.a.id, **new, **_parent(world)})

    def _parent(world: World) -> dict[str, Any]:
        parents = {
            "incident_id": world.incident,
            "decision_id": world.decision,
            "workflow_id": world.a.workflow_id,
        }
        return {k: v for k, v in parents.items() if k in model.__table__.columns}

    return {
        "find": lambda r, s, w: r.find(a_id(w)),
        "get": lambda r, s, w: r.get(a_id(w)),
        "get_by_id": lambda r, s, w: r.get_by_id(a_id(w)),
        "get_for_update": lambda r, s, w: r.get_for_update(a_id(w)),
        "list": lambda r, s, w: _without_own(r.list(limit=1000), w),
        "add": add,
        "add_once": add_once,
        "create": create,
    }


async def _without_own(listing: Awaitable[Any], world: World) -> Any:
    """B's own tenant row and workflow are B's to see; anything else listed is a leak."""
    rows = await listing
    return [r for r in rows if getattr(r, "id", None) not in (world.b.id, world.b.workflow_id)]


def mutable(a_id: Callable[[World], uuid.UUID], **change: Any) -> dict[str, Probe]:
    async def update(repo: Any, session: AsyncSession, world: World) -> Any:
        # The repository can never hand B an A row; one smuggled in from elsewhere is refused:
        # its UPDATE matches no row under row-level security and the ORM refuses the flush.
        assert await session.get(repo.model, a_id(world)) is None
        smuggled = repo.model(id=a_id(world))
        make_transient_to_detached(smuggled)
        session.add(smuggled)
        await repo.update(smuggled, **change)
        return None

    return {
        "update": update,
        "update_where": lambda r, s, w: r.update_where(a_id(w), **change),
    }


FAR_PAST = datetime(2000, 1, 1, tzinfo=UTC)


def failure_group(world: World) -> FailureGroup:
    now = datetime.now(UTC)
    return FailureGroup(
        signature=world.signature,
        workflow_id=world.a.workflow_id,
        operation="payment",
        title="t",
        count=1,
        first_seen_at=now,
        last_seen_at=now,
        severity=Severity.CRITICAL,
        correlation_id=None,
    )


PROBES: dict[type, dict[str, Probe]] = {
    TenantRepository: {
        **common(Tenant, lambda w: w.a.id, name="stolen"),
        **mutable(lambda w: w.a.id, name="pwned"),
        "current": lambda r, s, w: _own(r.current(), w),
    },
    WorkflowRepository: {
        **common(Workflow, lambda w: w.a.workflow_id, name=f"stolen-{uuid.uuid4().hex}"),
        **mutable(lambda w: w.a.workflow_id, name="pwned"),
        "delete": lambda r, s, w: r.delete(w.a.workflow_id),
        "find_by_name": lambda r, s, w: r.find_by_name("payments"),
        "find_many": lambda r, s, w: r.find_many({w.a.workflow_id}),
        "list_all": lambda r, s, w: _without_own(r.list_all(), w),
    },
    EventRepository: {
        **common(
            Event,
            lambda w: w.event,
            event_type="payment.failed",
            outcome=EventOutcome.FAILURE,
            payload={},
            idempotency_key="stolen",
            occurred_at=FAR_PAST,
            payload_hash="0" * 64,
        ),
        "insert_new": lambda r, s, w: r.insert_new(
            [new_event(w.a, w.event_key, workflow_id=w.a.workflow_id, signature=w.signature)]
        ),
        "payload_hashes": lambda r, s, w: r.payload_hashes({w.event_key}),
        "get_by_idempotency_key": lambda r, s, w: r.get_by_idempotency_key(w.event_key),
        "get_recent_events": lambda r, s, w: r.get_recent_events(w.a.workflow_id),
        "count_events": lambda r, s, w: r.count_events(w.a.workflow_id),
        "list_for_signature": lambda r, s, w: r.list_for_signature(w.signature),
        "count_received_since": lambda r, s, w: r.count_received_since(w.signature, FAR_PAST),
        "latest_for_signature": lambda r, s, w: r.latest_for_signature(w.signature),
    },
    IncidentRepository: {
        **common(
            Incident,
            lambda w: w.incident,
            signature="s",
            operation="o",
            title="t",
            severity=Severity.ERROR,
            event_count=1,
            first_seen_at=FAR_PAST,
            last_seen_at=FAR_PAST,
        ),
        **mutable(lambda w: w.incident, title="pwned"),
        "upsert_failures": lambda r, s, w: r.upsert_failures([failure_group(w)]),
        "find_recoveries": lambda r, s, w: r.find_recoveries(
            [(w.a.workflow_id, "payment", datetime.now(UTC))]
        ),
        "search": lambda r, s, w: r.search(),
        "find_many": lambda r, s, w: r.find_many({w.incident}),
        "find_open_by_signatures": lambda r, s, w: r.find_open_by_signatures({w.signature}),
        "open_count_since": lambda r, s, w: r.open_count_since(FAR_PAST),
        "held_by": lambda r, s, w: r.held_by(GateControl.KILL_SWITCH, w.a.workflow_id),
        "find_open_by_signature": lambda r, s, w: r.find_open_by_signature(w.signature),
        "latest_for_signature": lambda r, s, w: r.latest_for_signature(w.signature),
        "get_incidents_paginated": lambda r, s, w: r.get_incidents_paginated(),
        "get_incidents_by_status": lambda r, s, w: r.get_incidents_by_status(IncidentStatus.NEW),
        "count_by_status": lambda r, s, w: r.count_by_status(),
        "transition": lambda r, s, w: r.transition(
            w.incident, expected={IncidentStatus.NEW}, to=IncidentStatus.IGNORED
        ),
    },
    DecisionRepository: {
        **common(
            Decision,
            lambda w: w.decision,
            decision_type=ActionType.RETRY,
            reasoning="r",
            confidence_score=1.0,
            ai_model="m",
        ),
        "list_for_incident": lambda r, s, w: r.list_for_incident(w.incident),
    },
    ActionRepository: {
        **common(
            Action,
            lambda w: w.action,
            action_type=ActionType.RETRY,
            is_reversible=True,
            parameters={},
        ),
        **mutable(lambda w: w.action, error="pwned"),
        "list_for_incident": lambda r, s, w: r.list_for_incident(w.incident),
        "claim": lambda r, s, w: r.claim(w.action),
        "finish": lambda r, s, w: r.finish(w.action, status=ActionStatus.FAILED, error="pwned"),
        "count_automatic_since": lambda r, s, w: r.count_automatic_since(FAR_PAST),
        "note_deferral": lambda r, s, w: r.note_deferral(w.action),
        "record_attempt_error": lambda r, s, w: r.record_attempt_error(w.action, "pwned"),
        "outcome_counts": lambda r, s, w: r.outcome_counts(w.signature, ActionType.RETRY),
    },
    KillSwitchRepository: {
        **common(KillSwitch, lambda w: w.switch, reason="r", activated_by="x"),
        **mutable(lambda w: w.switch, reason="pwned"),
        "delete": lambda r, s, w: r.delete(w.switch),
        "lock_for_activation": lambda r, s, w: r.lock_for_activation(),
        "lock_for_enforcement": lambda r, s, w: r.lock_for_enforcement(),
        "activate": lambda r, s, w: r.activate(
            switch_id=uuid.uuid4(),
            workflow_id=w.a.workflow_id,
            reason="r",
            activated_by="x",
            expires_at=None,
        ),
        "covering": lambda r, s, w: r.covering(w.a.workflow_id),
        "list_active": lambda r, s, w: r.list_active(),
        "release": lambda r, s, w: r.release(released_by="x", reason=None, switch_id=w.switch),
        "expire_due": lambda r, s, w: r.expire_due(),
        "next_expiry": lambda r, s, w: r.next_expiry(),
    },
    FuseEpisodeRepository: {
        **common(
            FuseEpisode,
            lambda w: w.episode,
            opened_at=FAR_PAST,
            incident_count=1,
            threshold=1,
            window_seconds=1.0,
        ),
        "find_open": lambda r, s, w: r.find_open(),
        "open": lambda r, s, w: _opened_for(r, w),
        "close": lambda r, s, w: r.close(w.episode),
        "mark_escalated": lambda r, s, w: r.mark_escalated(w.episode),
        "unescalated": lambda r, s, w: r.unescalated(),
    },
}


async def _own(current: Awaitable[Tenant], world: World) -> Any:
    row = await current
    assert row.id == world.b.id
    return None


async def _opened_for(repo: FuseEpisodeRepository, world: World) -> Any:
    """Opening an episode opens B's own (A's open one must not be returned or touched)."""
    episode, _ = await repo.open(
        incident_count=1, threshold=1, window_seconds=1.0, now=datetime.now(UTC)
    )
    assert episode.id != world.episode
    return None if episode.tenant_id == world.b.id else episode


def tenant_scoped_repositories() -> set[type]:
    exported = {getattr(repositories, name) for name in repositories.__all__}
    return {
        cls
        for cls in exported
        if inspect.isclass(cls) and issubclass(cls, BaseRepository) and cls is not BaseRepository
    }


def public_methods(cls: type) -> set[str]:
    return {
        name
        for name, member in inspect.getmembers(cls)
        if not name.startswith("_") and inspect.iscoroutinefunction(member)
    }


def test_every_public_repository_method_has_a_probe() -> None:
    scoped = tenant_scoped_repositories()
    assert set(PROBES) == scoped
    for cls in scoped:
        assert set(PROBES[cls]) == public_methods(cls), cls.__name__
    others = (
        {
            getattr(repositories, n).__name__
            for n in repositories.__all__
            if n.endswith(("Repository", "Directory"))
        }
        - {c.__name__ for c in scoped}
        - {"TenantDirectory", "IncidentDirectory"}
    )
    assert others == set(NOT_TENANT_SCOPED)


CASES = [
    (cls, method, layer)
    for cls in sorted(PROBES, key=lambda c: c.__name__)
    for method in sorted(PROBES[cls])
    for layer in ("scoped to B", "scoped to A in B's transaction")
]


@pytest.mark.parametrize(
    ("cls", "method", "layer"),
    CASES,
    ids=[f"{c.__name__}.{m}-{layer[:11]}" for c, m, layer in CASES],
)
async def test_repository_method_with_another_tenants_ids(
    cls: type,
    method: str,
    layer: str,
    world: World,
    committed_sessions: async_sessionmaker[AsyncSession],
    owner_engine: AsyncEngine,
    passed: Passed,
) -> None:
    before = await rows_of_a(owner_engine, world)
    scope = world.b.id if layer == "scoped to B" else world.a.id
    try:
        async with tenant_session(committed_sessions, world.b.id) as session:
            result = await PROBES[cls][method](cls(session, tenant_id=scope), session, world)
            found = leaks(result, world)
            assert not found, f"{cls.__name__}.{method} returned A's data: {found}"
    except REFUSALS:
        pass  # refused: the whole transaction rolled back
    assert await rows_of_a(owner_engine, world) == before
    passed.repository += 1


async def test_directories_on_the_application_role_see_only_the_current_tenant(
    world: World, committed_sessions: async_sessionmaker[AsyncSession], passed: Passed
) -> None:
    async with tenant_session(committed_sessions, world.b.id) as session:
        tenants = await TenantDirectory(session).list()
        assert [t.id for t in tenants] == [world.b.id]
        assert await TenantDirectory(session).find_by_name(world.a.name) is None
        assert await IncidentDirectory(session).search() == []
        assert await IncidentDirectory(session).tenant_of(world.incident) is None
    passed.sql += 1


async def test_raw_sql_as_the_application_role(
    world: World, committed_sessions: async_sessionmaker[AsyncSession], passed: Passed
) -> None:
    async with tenant_session(committed_sessions, world.b.id) as session:
        for table in TABLES:
            column = "id" if table == "tenants" else "tenant_id"
            stmt = text(f"SELECT count(*) FROM {table} WHERE {column} = :a")  # noqa: S608
            assert (await session.execute(stmt, {"a": world.a.id})).scalar_one() == 0, table
        # Changing the tenant setting inside the transaction does not make A's rows writable
        # to a statement that names them: each is checked again against the policy.
        changed = await session.execute(
            text("UPDATE incidents SET title = 'pwned' WHERE id = :id"), {"id": world.incident}
        )
        assert changed.rowcount == 0  # type: ignore[attr-defined]
    async with tenant_session(committed_sessions, world.b.id) as session:
        with pytest.raises(DBAPIError, match="row-level security"):
            await session.execute(
                text(
                    "INSERT INTO kill_switches (id, tenant_id, reason, activated_by)"
                    " VALUES (:id, :a, 'r', 'x')"
                ),
                {"id": uuid.uuid4(), "a": world.a.id},
            )
    passed.sql += 1


@pytest.fixture
async def activities(
    committed_sessions: async_sessionmaker[AsyncSession], temporal_env: Any
) -> AsyncIterator[dict[str, Any]]:
    async with httpx.AsyncClient(base_url="http://127.0.0.1:9") as http:
        executors = build_executors(http)
        yield {
            "ingest": IngestActivities(committed_sessions, temporal_env.client, "unused"),
            "incidents": IncidentActivities(
                committed_sessions, RulesAnalyzer(), executors, default_gate()
            ),
            "actions": ActionActivities(committed_sessions, executors),
            "controls": ControlActivities(
                committed_sessions, default_gate(), EscalateExecutor(http)
            ),
            "switches": KillSwitchActivities(committed_sessions, temporal_env.client),
        }


def activity_probes(world: World, acts: dict[str, Any]) -> dict[str, Callable[[], Awaitable[Any]]]:
    b = world.b.id
    env = ActivityEnvironment()
    incidents, actions, controls = acts["incidents"], acts["actions"], acts["controls"]
    switches = acts["switches"]
    return {
        "analyze_incident": lambda: env.run(
            incidents.analyze,
            AnalyzeCommand(
                tenant_id=b,
                incident_id=world.incident,
                attempt=1,
                decision_id=uuid.uuid4(),
                action_id=uuid.uuid4(),
            ),
        ),
        "record_decision": lambda: env.run(
            incidents.decide,
            DecideCommand(
                tenant_id=b,
                incident_id=world.incident,
                decision_id=uuid.uuid4(),
                action_id=uuid.uuid4(),
                action_type=ActionType.ESCALATE,
                attempt=1,
                reasoning="r",
                confidence=1,
                ai_model="m",
            ),
        ),
        "conclude_verification": lambda: env.run(
            incidents.conclude_verification,
            VerifyCommand(
                tenant_id=b,
                incident_id=world.incident,
                signature=world.signature,
                since=datetime.now(UTC),
                window_seconds=0,
            ),
        ),
        "close_incident": lambda: env.run(
            incidents.close,
            CloseIncident(
                tenant_id=b,
                incident_id=world.incident,
                status=IncidentStatus.IGNORED,
                resolution="pwned",
            ),
        ),
        "execute_action": lambda: env.run(
            actions.execute,
            ExecuteCommand(
                tenant_id=b, incident_id=world.incident, action_id=world.action, max_attempts=1
            ),
        ),
        "abandon_action": lambda: env.run(
            actions.abandon,
            AbandonCommand(
                tenant_id=b, incident_id=world.incident, action_id=world.action, reason="pwned"
            ),
        ),
        "probe_gate": lambda: env.run(
            controls.probe,
            GateProbe(tenant_id=b, incident_id=world.incident, control=GateControl.KILL_SWITCH),
        ),
        "escalate_episode": lambda: env.run(
            controls.escalate_episode,
            EpisodeEscalation(tenant_id=b, episode_id=world.episode, incident_id=world.incident),
        ),
        "activate_kill_switch": lambda: env.run(
            switches.activate,
            ActivateCommand(
                tenant_id=b,
                switch_id=uuid.uuid4(),
                activation=ActivateKillSwitch(
                    reason="r", activated_by="x", workflow_id=world.a.workflow_id
                ),
            ),
        ),
        "release_kill_switch": lambda: env.run(
            switches.release,
            ReleaseCommand(
                tenant_id=b, release=ReleaseKillSwitch(released_by="x", switch_id=world.switch)
            ),
        ),
        "expire_kill_switches": lambda: env.run(switches.expire, SwitchTenant(tenant_id=b)),
        "list_kill_switches": lambda: env.run(switches.list_active, SwitchTenant(tenant_id=b)),
        "ingest_batch": lambda: env.run(
            acts["ingest"].ingest_batch,
            IngestBatch(
                tenant_id=b,
                events=[
                    {
                        "tenant_id": str(world.a.id),
                        "workflow_id": str(world.a.workflow_id),
                        "event_type": "payment.failed",
                        "idempotency_key": world.event_key,
                        "occurred_at": datetime.now(UTC).isoformat(),
                    }
                ],
            ),
        ),
    }


# dispatch_incidents is not an entry point: it is fed only by ingest_batch's own result, whose
# incident ids come from rows read under the batch's tenant.
ACTIVITY_NAMES = {
    "analyze_incident",
    "record_decision",
    "conclude_verification",
    "close_incident",
    "execute_action",
    "abandon_action",
    "probe_gate",
    "escalate_episode",
    "activate_kill_switch",
    "release_kill_switch",
    "expire_kill_switches",
    "list_kill_switches",
    "ingest_batch",
}


def test_every_activity_has_a_probe() -> None:
    registered = set()
    for obj in (
        IngestActivities,
        IncidentActivities,
        ActionActivities,
        ControlActivities,
        KillSwitchActivities,
    ):
        for _, member in inspect.getmembers(obj):
            definition = getattr(member, "__temporal_activity_definition", None)
            if definition is not None:
                registered.add(definition.name)
    assert registered - {"dispatch_incidents"} == ACTIVITY_NAMES


@pytest.mark.parametrize("name", sorted(ACTIVITY_NAMES))
async def test_activity_with_another_tenants_ids(
    name: str,
    world: World,
    activities: dict[str, Any],
    owner_engine: AsyncEngine,
    passed: Passed,
) -> None:
    before = await rows_of_a(owner_engine, world)
    try:
        result = await activity_probes(world, activities)[name]()
    except (*REFUSALS, ApplicationError):
        pass
    else:
        found = leaks(result.model_dump(), world)
        assert not found or _only_refused(result, name), f"{name} returned A's data: {found}"
    assert await rows_of_a(owner_engine, world) == before
    passed.activity += 1


def _only_refused(result: Any, name: str) -> bool:
    """ingest_batch answers per event: A's key comes back only as the key of a refusal."""
    return name == "ingest_batch" and all(
        o.outcome is Outcome.REJECTED for o in result.result.outcomes
    )


async def test_workflow_entry_points_with_another_tenants_ids(
    world: World, stack: Stack, owner_engine: AsyncEngine, passed: Passed
) -> None:
    before = await rows_of_a(owner_engine, world)
    b = world.b

    # IngestEvents for B naming A's tenant, then A's workflow.
    event = {
        "tenant_id": str(world.a.id),
        "workflow_id": str(world.a.workflow_id),
        "event_type": "payment.failed",
        "idempotency_key": f"x-{uuid.uuid4()}",
        "occurred_at": datetime.now(UTC).isoformat(),
    }
    result = await stack.client.ingest_batch(IngestBatch(tenant_id=b.id, events=[event]))
    assert [o.outcome for o in result.outcomes] == [Outcome.REJECTED]
    with pytest.raises(WorkflowFailureError):
        await stack.client.ingest_batch(
            IngestBatch(tenant_id=b.id, events=[event | {"tenant_id": str(b.id)}])
        )

    # A kill switch for B over A's workflow.
    with pytest.raises(KillSwitchRefused, match="workflow_id"):
        await stack.client.activate_kill_switch(
            b.id, reason="probe", activated_by="probe", workflow_id=world.a.workflow_id
        )

    # An incident workflow claiming B's tenant for A's incident: it fails without touching it.
    handle = await stack.client.temporal.start_workflow(
        INCIDENT_WORKFLOW,
        IncidentInput(
            tenant_id=b.id,
            incident_id=world.incident,
            signature=world.signature,
            workflow_id=b.workflow_id,
            workflow_name="payments",
            title="probe",
            severity=Severity.ERROR,
            params=IncidentParams.from_settings(
                TenantSettings.model_validate({"grouping_window_seconds": 0})
            ),
        ),
        id=incident_workflow_id(world.incident),
        task_queue=stack.client.task_queue,
    )
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    assert await rows_of_a(owner_engine, world) == before
    passed.entry_points += 1
