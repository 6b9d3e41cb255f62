"""Tenant isolation probes: tenant B asks for tenant A's rows by their ids, everywhere.

Every public method of every tenant-scoped repository is called with A's ids, twice: on a
repository built for B (the scoping in the repository base), and on a repository built for A in
a transaction set to B (row-level security alone, as if the code had scoped wrongly). Then every
activity and the workflow entry points, and raw SQL as the application role. Each probe must
return nothing of A or refuse; afterwards every row of A is byte-for-byte what it was.

Some activities are probed twice: once with A's incident, and once by a third tenant C naming
its own incident together with A's request, action or episode ids, so that an activity which
scoped the incident but trusted the other ids would be caught.

Coverage tests fail when a repository gains a public method, or the worker an activity, that
has no probe here, and when ``awfdrs.db.repositories`` exports a class nobody classified.

Shared by design, and so not probed for isolation: the vendor catalog (global configuration;
each tenant's connection to a vendor, its breaker, credentials and rate-limit ledger are
probed), the metrics functions (aggregate counts), and the dispatcher's side of
the outbox, ``OutboxQueue``: it claims, deletes and defers rows of every tenant, only through the
SECURITY DEFINER functions of migration 0005. What is probed instead is that the application
role cannot read, change or delete the ``outbox`` table directly, not even its own tenant's rows
(``test_the_application_role_cannot_touch_the_outbox``), and that ``OutboxRepository`` (ingest's
side, row-level security applies) cannot write a notice for another tenant's incident.

The audit chain (``audit_log``, ``audit_heads``) is probed like every table: a probe that made
the database append to A's chain would change A's rows. ``AuditRepository.record_command`` as B
appends to B's own chain; the database refuses it for any tenant but the transaction's.

Temporal itself is not tenant-aware: tenants never get Temporal access (docs/DESIGN.md), so
signals and updates to a workflow id are trusted internal calls, not probed here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import inspect
import pkgutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from pydantic import BaseModel as Contract
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.orm.exc import StaleDataError
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

import awfdrs.activities
from awfdrs.activities.actions import ActionActivities
from awfdrs.activities.controls import ControlActivities
from awfdrs.activities.incidents import IncidentActivities
from awfdrs.activities.ingest import IngestActivities
from awfdrs.activities.kill_switches import KillSwitchActivities
from awfdrs.activities.principals import PrincipalActivities
from awfdrs.activities.requests import RequestActivities
from awfdrs.analysis.rules import RulesAnalyzer
from awfdrs.api.keys import Role, create_key
from awfdrs.client import KillSwitchRefused
from awfdrs.constants import INCIDENT_WORKFLOW, incident_workflow_id
from awfdrs.contracts import (
    AbandonCommand,
    AnalyzeCommand,
    CloseIncident,
    CredentialCheck,
    DecideCmd,
    DecideCommand,
    EpisodeEscalation,
    ExecuteCommand,
    GateProbe,
    IncidentInput,
    IngestBatch,
    IngestResult,
    Outcome,
    PhaseNote,
    RequestOutcome,
    ReviewCommand,
    SendCommand,
    SettleRound,
    TenantSettings,
    VerifyCommand,
    canonical_json,
    incident_params,
)
from awfdrs.contracts.kill_switches import (
    ActivateCommand,
    ActivateKillSwitch,
    ReleaseCommand,
    ReleaseKillSwitch,
)
from awfdrs.contracts.kill_switches import TenantRef as SwitchTenant
from awfdrs.db import repositories
from awfdrs.db.base import Base
from awfdrs.db.models import (
    Action,
    ApiKey,
    Decision,
    Event,
    FuseEpisode,
    Incident,
    KillSwitch,
    RemediationRequest,
    SpentCredential,
    Tenant,
    VendorCall,
    VendorConnection,
    Workflow,
)
from awfdrs.db.repositories import (
    ActionRepository,
    ApiKeyRepository,
    AuditRepository,
    DecisionRepository,
    EventRepository,
    FuseEpisodeRepository,
    IncidentDirectory,
    IncidentRepository,
    KillSwitchRepository,
    Notice,
    OutboxRepository,
    RequestRepository,
    SpentCredentialRepository,
    TenantDirectory,
    TenantRepository,
    VendorCallRepository,
    VendorConnectionRepository,
    VendorRepository,
    WorkflowRepository,
)
from awfdrs.db.session import tenant_session
from awfdrs.enums import (
    ActionStatus,
    ActionType,
    EventOutcome,
    GateControl,
    IncidentStatus,
    Phase,
    RequestStatus,
    Severity,
)
from awfdrs.errors import ConflictError, InvalidTransitionError, NotFoundError
from awfdrs.intake import Evidence, FailedRequest, FailureGroup, request_key
from awfdrs.lifecycle import plan_id
from awfdrs.remediation.credentials import CredentialCipher
from awfdrs.remediation.executors import EscalateExecutor, RetryExecutor, build_executors
from awfdrs.remediation.gate import default_gate
from awfdrs.signing import APPROVE, RELEASE, Scope, kill_switch_subject
from awfdrs.vendor_connections import connect
from tests.e2e.reliability.support import raw_batch, record
from tests.support.factories import (
    TenantRef,
    admin_sessions,
    make_incident,
    make_tenant,
    new_event,
)
from tests.support.pipeline import Stack
from tests.support.principals import SIGNER
from tests.support.processes import CREDENTIALS_KEY

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
    "remediation_requests",
    "request_keys",
    "api_keys",
    "vendor_connections",
    "vendor_calls",
    "outbox",
    "audit_log",
    "audit_heads",
    "spent_credentials",
)
# The application role may not even read the outbox (only ingest's INSERT is granted).
READABLE = tuple(t for t in TABLES if t != "outbox")
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
    "MetricsRepository": "aggregate counts only, through SECURITY DEFINER functions",
    "OutboxQueue": "the dispatcher works across tenants by design, only through the SECURITY "
    "DEFINER functions of migration 0005; the table itself is probed below",
    "ApiKeyDirectory": "a presented key is looked up before its tenant is known, only by its "
    "exact public prefix or id, through the SECURITY DEFINER functions of migration 0006; the "
    "table itself is probed with ApiKeyRepository",
}
# Read across tenants on the owner connection (the CLI); probed on the application role.
DIRECTORIES = {"TenantDirectory": {"list", "find_by_name"}, "IncidentDirectory": {"list_matching",
               "find_tenant_of", "list_by_id_prefix"}}  # fmt: skip


@dataclass(frozen=True)
class World:
    """Tenant A with a row in every table; tenant B with only its tenant and workflow; tenant C
    with an incident of its own (for the probes that mix its ids with A's)."""

    a: TenantRef
    b: TenantRef
    c: TenantRef
    c_incident: uuid.UUID
    incident: uuid.UUID
    decision: uuid.UUID
    action: uuid.UUID
    switch: uuid.UUID
    episode: uuid.UUID
    event: uuid.UUID
    request: uuid.UUID
    event_key: str
    signature: str
    request_key: str
    request_hash: str
    correlation_id: str
    queue: str
    api_key: uuid.UUID
    key_prefix: str
    audit_head: str
    vendor: uuid.UUID
    connection: uuid.UUID
    call: uuid.UUID
    call_at: datetime
    spent: uuid.UUID
    spent_jti: str

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
            self.request,
            self.connection,
            self.call,
            self.spent,
        }

    @property
    def strings(self) -> set[str]:
        return {
            self.event_key,
            self.signature,
            self.a.name,
            self.request_key,
            self.request_hash,
            self.correlation_id,
            self.key_prefix,
            self.audit_head,
            self.spent_jti,
        }


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
    activities = len(ACTIVITY_NAMES) + len(MIXED_NAMES)
    if (tally.repository, tally.activity, tally.entry_points, tally.sql) == (
        len(CASES),
        activities,
        1,
        SQL_TESTS,
    ):
        record(
            "tenant isolation probes",
            f"{len(PROBES)} repositories, {len(CASES) // 2} public methods, "
            f"{len(ACTIVITY_NAMES)} activities ({len(MIXED_NAMES)} also with a third tenant's "
            "own incident), 3 workflow entry points, raw SQL",
            "tenant B calling each with tenant A's ids; repositories both scoped to B and "
            "scoped to A inside B's transaction (row-level security alone)",
            {
                "repository probes": tally.repository,
                "activity probes": tally.activity,
                "workflow entry point probes": 3,
                "raw SQL probes": len(READABLE) + 2 + len(OUTBOX_STATEMENTS) * 2 + 1,
                "rows of A returned": 0,
                "rows of A changed": 0,
            },
        )


def failed_request(tenant: TenantRef, key: str, signature: str) -> FailedRequest:
    """A replayable failed request, as intake makes it from the failure ``key``."""
    now = datetime.now(UTC)
    return FailedRequest(
        signature=signature,
        event_key=key,
        request_hash=hashlib.sha256(f"probe\x1f{key}".encode()).hexdigest(),
        candidate_key=request_key(tenant.id, key),
        replayable=True,
        vendor=None,
        method="POST",
        path="/v1/charges/capture",
        body_json=canonical_json({"order": key}),
        headers_json="{}",
        reversible=True,
        correlation_ids=(f"corr-{key}",),
        error_code="timeout",
        error_message=None,
        event_count=1,
        first_failed_at=now,
        last_failed_at=now,
    )


@pytest.fixture(scope="module")
async def world(
    committed_sessions: async_sessionmaker[AsyncSession], owner_engine: AsyncEngine
) -> AsyncIterator[World]:
    a = await make_tenant(committed_sessions)
    b = await make_tenant(committed_sessions)
    c = await make_tenant(committed_sessions)
    signature = f"sig-{uuid.uuid4().hex}"
    key = f"secret-{uuid.uuid4().hex}"
    # A queue no dispatcher serves: A's notice stays in the outbox, to be probed.
    queue = f"probe-{uuid.uuid4()}"
    async with tenant_session(committed_sessions, c.id) as session:
        c_incident = await make_incident(session, c, signature)
    async with tenant_session(committed_sessions, a.id) as session:
        events = EventRepository(session, tenant_id=a.id)
        await events.insert_new([new_event(a, key, signature=signature)])
        event = await events.get_by_idempotency_key(key)
        assert event is not None
        incident = await make_incident(session, a, signature)
        requests = RequestRepository(session, tenant_id=a.id)
        failed = failed_request(a, key, signature)
        assert await requests.upsert_failed([(incident, event.id, failed)]) == {incident}
        [request] = await requests.list_for_incident(incident)
        # Claimed by an attempt whose lease ran out (its worker died): sent, claimable again.
        claimed = await requests.claim(request.id, action_id=uuid.uuid4(), lease_seconds=-86400)
        assert claimed is not None
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
        await OutboxRepository(session, tenant_id=a.id).add(
            [Notice(incident_id=incident, start={"probe": key}, joined=True)], task_queue=queue
        )
    _, api_key = await create_key(committed_sessions, a.id, Role.OPERATOR, name="probe")
    async with admin_sessions()() as session, session.begin():
        vendor = await VendorRepository(session).add(
            name=f"probe-{uuid.uuid4().hex[:8]}", base_url="http://127.0.0.1:9"
        )
    # A's connection carries credentials and has a slot in its rate-limit window.
    connected = await connect(
        committed_sessions, a.id, vendor.name, cipher=CredentialCipher(CREDENTIALS_KEY),
        credentials={"Authorization": f"Bearer {key}"},
    )  # fmt: skip
    call_at = datetime.now(UTC)
    spent_jti = f"jti-{key}"
    async with tenant_session(committed_sessions, a.id) as session:
        call = await VendorCallRepository(session, tenant_id=a.id).add(
            vendor_id=vendor.id, called_at=call_at
        )
        # A credential A's operator spent (valid for another hour).
        await SpentCredentialRepository(session, tenant_id=a.id).spend(
            jti=spent_jti, use_key=f"use-{key}", command="release", principal="alice",
            expires_at=call_at + timedelta(hours=1),
        )  # fmt: skip
    async with owner_engine.connect() as connection:
        spent = (
            await connection.execute(
                text("SELECT id FROM spent_credentials WHERE jti = :j"), {"j": spent_jti}
            )
        ).scalar_one()
    yield World(
        a, b, c, c_incident, incident, decision.id, action.id, switch.id, episode.id, event.id,
        request.id, key, signature, request.idempotency_key, request.request_hash,
        failed.correlation_ids[0], queue, api_key.id, api_key.prefix,
        await _audit_head(a, owner_engine), vendor.id, connected.id, call.id, call_at, spent,
        spent_jti,
    )  # fmt: skip
    # The outbox is shared by every test of the run (its depth is a metric): leave it empty.
    async with owner_engine.begin() as connection:
        await connection.execute(text("DELETE FROM outbox WHERE task_queue = :q"), {"q": queue})


async def _audit_head(tenant: TenantRef, owner_engine: AsyncEngine) -> str:
    """The hash A's chain ends with: a verification that returned it would have read A's rows."""
    async with owner_engine.connect() as connection:
        head = await connection.execute(
            text("SELECT hash FROM audit_heads WHERE tenant_id = :a"), {"a": tenant.id}
        )
        found: str = head.scalar_one()
    return found


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
    assert all(found.values()), {t: len(rows) for t, rows in found.items()}  # A has every kind
    return found


def leaks(value: Any, world: World, *, counts: bool = True) -> list[str]:
    """What in a result belongs to A: its rows, ids or strings, or (with ``counts``) a count
    above zero or a time: the caller has nothing of its own to count or date."""
    if value is None or isinstance(value, bool):
        return []
    if isinstance(value, Base):
        owner = getattr(value, "tenant_id", None) or (
            value.id if isinstance(value, Tenant) else None
        )
        return [f"{type(value).__name__} of A"] if owner == world.a.id else []
    if isinstance(value, Contract):
        return leaks(value.model_dump(), world, counts=counts)
    if isinstance(value, uuid.UUID):
        return [f"A's id {value}"] if value in world.ids else []
    if isinstance(value, str):
        return [f"A's string {value}"] if value in world.strings else []
    if isinstance(value, int | float):
        return [f"a count of {value}"] if value and counts else []
    if isinstance(value, datetime):
        return [f"a time {value}"] if counts else []
    if isinstance(value, dict):
        return [x for k, v in value.items() for x in leaks(k, world, counts=counts)
                + leaks(v, world, counts=counts)]  # fmt: skip
    if isinstance(value, list | tuple | set | frozenset):
        return [x for item in value for x in leaks(item, world, counts=counts)]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = [getattr(value, f.name) for f in dataclasses.fields(value)]
        return leaks(fields, world, counts=counts)
    return [f"unexpected {type(value).__name__}"]


Probe = Callable[[Any, AsyncSession, World], Awaitable[Any]]


def common(model: type[Base], a_id: Callable[[World], uuid.UUID], **new: Any) -> dict[str, Probe]:
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
            "first_event_id": world.event,
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


async def _deferral(repo: RequestRepository, world: World) -> Any:
    """``note_deferral`` of a row it cannot see fails an ``assert`` inside: a refusal too."""
    try:
        return await repo.note_deferral(world.request)
    except AssertionError:
        raise NotFoundError("RemediationRequest", world.request) from None


async def _add_connection(repo: VendorConnectionRepository, session: AsyncSession, w: World) -> Any:
    """B may connect itself to the vendor A uses; it gets its own row, never A's. Undone, so
    the other probes find B without a connection."""
    async with session.begin_nested() as savepoint:
        row = await repo.add(vendor_id=w.vendor)
        owner = row.tenant_id
        await savepoint.rollback()
    return None if owner == w.b.id else owner


async def _count_window(repo: VendorCallRepository, session: AsyncSession, w: World) -> Any:
    """Counting A's window (A's slot inside it), then pruning it (A's slot before ``since``):
    nothing of A is seen, nothing of A is deleted."""
    inside = await repo.find_nth_newest(w.vendor, w.call_at - timedelta(seconds=1), 1)
    pruned = await repo.find_nth_newest(w.vendor, w.call_at + timedelta(seconds=1), 1)
    return [inside, pruned]


PROBES: dict[type, dict[str, Probe]] = {
    TenantRepository: {
        **common(Tenant, lambda w: w.a.id, name="stolen"),
        **mutable(lambda w: w.a.id, name="pwned"),
        "get_current": lambda r, s, w: _own(r.get_current(), w),
    },
    WorkflowRepository: {
        **common(Workflow, lambda w: w.a.workflow_id, name=f"stolen-{uuid.uuid4().hex}"),
        **mutable(lambda w: w.a.workflow_id, name="pwned"),
        "delete": lambda r, s, w: r.delete(w.a.workflow_id),
        "find_by_name": lambda r, s, w: r.find_by_name("payments"),
        "list_by_ids": lambda r, s, w: r.list_by_ids({w.a.workflow_id}),
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
        "list_payload_hashes": lambda r, s, w: r.list_payload_hashes({w.event_key}),
        "get_by_idempotency_key": lambda r, s, w: r.get_by_idempotency_key(w.event_key),
        "get_recent_events": lambda r, s, w: r.get_recent_events(w.a.workflow_id),
        "count_events": lambda r, s, w: r.count_events(w.a.workflow_id),
        "list_for_signature": lambda r, s, w: r.list_for_signature(w.signature),
        "count_received_since": lambda r, s, w: r.count_received_since(w.signature, FAR_PAST),
        "find_latest_for_signature": lambda r, s, w: r.find_latest_for_signature(w.signature),
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
        "list_by_id_prefix": lambda r, s, w: r.list_by_id_prefix(str(w.incident)[:8]),
        "upsert_failures": lambda r, s, w: r.upsert_failures([failure_group(w)]),
        "list_matching": lambda r, s, w: r.list_matching(),
        "list_by_ids": lambda r, s, w: r.list_by_ids({w.incident}),
        "find_open_by_signatures": lambda r, s, w: r.find_open_by_signatures({w.signature}),
        "count_open_since": lambda r, s, w: r.count_open_since(FAR_PAST),
        "list_held": lambda r, s, w: r.list_held(w.a.workflow_id),
        "note_phase": lambda r, s, w: r.note_phase(
            w.incident, Phase.HELD, "pwned", GateControl.KILL_SWITCH
        ),
        "find_open_by_signature": lambda r, s, w: r.find_open_by_signature(w.signature),
        "find_latest_for_signature": lambda r, s, w: r.find_latest_for_signature(w.signature),
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
        "record_attempt_error": lambda r, s, w: r.record_attempt_error(w.action, "pwned"),
        "count_by_outcome": lambda r, s, w: r.count_by_outcome(w.signature, ActionType.RETRY),
    },
    RequestRepository: {
        **common(
            RemediationRequest,
            lambda w: w.request,
            request_hash="stolen",
            idempotency_key="stolen",
            replayable=False,
            first_failed_at=FAR_PAST,
            last_failed_at=FAR_PAST,
        ),
        # A's exact request again: joining A's row would count onto it.
        "upsert_failed": lambda r, s, w: r.upsert_failed(
            [(w.incident, w.event, failed_request(w.a, w.event_key, w.signature))]
        ),
        # A success carrying A's correlation id: proving A's request recovered would change it.
        "apply_evidence": lambda r, s, w: r.apply_evidence(
            [Evidence(w.a.workflow_id, "payment", w.correlation_id, datetime.now(UTC))],
            grouping_window_seconds=3600,
        ),
        "list_for_incident": lambda r, s, w: r.list_for_incident(w.incident),
        "list_by_ids": lambda r, s, w: r.list_by_ids({w.request}),
        "count_failures_since": lambda r, s, w: r.count_failures_since(w.incident, FAR_PAST),
        "count_by_state": lambda r, s, w: r.count_by_state(w.incident),
        "count_sent_since": lambda r, s, w: r.count_sent_since(FAR_PAST),
        "claim": lambda r, s, w: r.claim(w.request, action_id=w.action, lease_seconds=3600),
        "finish": lambda r, s, w: r.finish(
            w.request,
            status=RequestStatus.SUCCEEDED,
            status_code=200,
            response="pwned",
            error=None,
        ),
        "note_deferral": lambda r, s, w: _deferral(r, w),
        # A's content: its key state (when it succeeded, which attempt is in flight).
        "get_key_state": lambda r, s, w: r.get_key_state(
            RemediationRequest(
                id=uuid.uuid4(),
                request_hash=failed_request(w.a, w.event_key, w.signature).request_hash,
                last_failed_at=FAR_PAST,
            )
        ),
        "lock_key": lambda r, s, w: r.lock_key(w.request),
        "cancel_pending": lambda r, s, w: r.cancel_pending(w.incident, "pwned", limit=10),
        "settle_unsent": lambda r, s, w: r.settle_unsent(
            w.incident,
            to=RequestStatus.CANCELLED,
            note="pwned",
            ids=[w.request],
            from_statuses=tuple(RequestStatus),
        ),
    },
    ApiKeyRepository: {
        **common(
            ApiKey,
            lambda w: w.api_key,
            name="stolen",
            role=Role.ADMIN,
            prefix="stolenprefix",
            secret_hash="0" * 64,
        ),
        **mutable(lambda w: w.api_key, revoked_at=datetime.now(UTC)),
        "list_all": lambda r, s, w: r.list_all(),
        "find_by_prefix": lambda r, s, w: r.find_by_prefix(w.key_prefix),
        "list_by_id_prefix": lambda r, s, w: r.list_by_id_prefix(str(w.api_key)[:8]),
    },
    SpentCredentialRepository: {
        **common(
            SpentCredential,
            lambda w: w.spent,
            jti="stolen",
            use_key="u",
            command="release",
            principal="mallory",
            expires_at=datetime.now(UTC) + timedelta(hours=1),
        ),
        "find_use": lambda r, s, w: r.find_use(w.spent_jti),
        # B spending the jti A spent: B's own row (its tenant's namespace), A's untouched.
        "spend": lambda r, s, w: r.spend(
            jti=w.spent_jti,
            use_key="mallory",
            command="release",
            principal="mallory",
            expires_at=datetime.now(UTC) + timedelta(hours=1),
        ),
    },
    AuditRepository: {
        "list": lambda r, s, w: r.list(limit=1000),
        "list_matching": lambda r, s, w: r.list_matching(limit=1000),
        "find_head": lambda r, s, w: r.find_head(),
        "list_chain": lambda r, s, w: r.list_chain(),
        "verify": lambda r, s, w: _verified(r),
        # A command about A's incident lands in B's own chain, or (scoped to A inside B's
        # transaction) is refused: the database appends only to the transaction's tenant.
        "record_command": lambda r, s, w: _recorded(r, w),
    },
    OutboxRepository: {
        # A notice for A's incident: its workflow would be told (started, even) by B.
        "add": lambda r, s, w: r.add(
            [Notice(incident_id=w.incident, start={"pwned": True}, opened=True)],
            task_queue=w.queue,
        ),
    },
    KillSwitchRepository: {
        **common(KillSwitch, lambda w: w.switch, reason="r", activated_by="x"),
        "list_by_id_prefix": lambda r, s, w: r.list_by_id_prefix(str(w.switch)[:8]),
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
        "find_covering": lambda r, s, w: r.find_covering(w.a.workflow_id),
        "list_active": lambda r, s, w: r.list_active(),
        "release": lambda r, s, w: r.release(released_by="x", reason=None, switch_id=w.switch),
        "list_releasable": lambda r, s, w: r.list_releasable(switch_id=w.switch),
        "expire_due": lambda r, s, w: r.expire_due(),
        "find_next_expiry": lambda r, s, w: r.find_next_expiry(),
    },
    VendorConnectionRepository: {
        **common(VendorConnection, lambda w: w.connection),
        **mutable(lambda w: w.connection, forced_open=True, forced_by="pwned"),
        "add": _add_connection,
        "create": lambda r, s, w: r.create({"tenant_id": w.a.id, "vendor_id": w.vendor}),
        "add_once": lambda r, s, w: r.add_once(id=w.connection, vendor_id=w.vendor),
        "delete": lambda r, s, w: r.delete(w.connection),
        "find_for_vendor": lambda r, s, w: r.find_for_vendor(w.vendor),
        "get_for_vendor": lambda r, s, w: r.get_for_vendor(w.vendor, lock=True),
        "list_all": lambda r, s, w: r.list_all(),
    },
    VendorCallRepository: {
        **common(VendorCall, lambda w: w.call),
        # A slot on A's connection: it would fill A's window (refused: the key names B's
        # connection, which B does not have, or the row is A's and the policy refuses it).
        "add": lambda r, s, w: r.add(vendor_id=w.vendor, called_at=datetime.now(UTC)),
        "create": lambda r, s, w: r.create(
            {"tenant_id": w.a.id, "vendor_id": w.vendor, "called_at": datetime.now(UTC)}
        ),
        "add_once": lambda r, s, w: r.add_once(
            id=uuid.uuid4(), vendor_id=w.vendor, called_at=datetime.now(UTC)
        ),
        # Counting (and pruning) A's window: it must see and delete nothing of A.
        "find_nth_newest": _count_window,
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
        "claim_escalation": lambda r, s, w: r.claim_escalation(w.episode, w.incident),
        "note_escalation_error": lambda r, s, w: r.note_escalation_error(w.episode, "pwned"),
    },
}


async def _own(current: Awaitable[Tenant], world: World) -> Any:
    row = await current
    assert row.id == world.b.id
    return None


async def _verified(repo: AuditRepository) -> Any:
    """B's own chain may have rows (``record_command`` adds one): the hash it ends with and
    whether it is intact are what must not be A's."""
    verdict = await repo.verify()
    return [verdict.head, verdict.broken]


async def _recorded(repo: AuditRepository, world: World) -> Any:
    entry = await repo.record_command("mallory", "approve", ("incident", world.incident))
    assert entry.tenant_id == world.b.id
    return None


async def _opened_for(repo: FuseEpisodeRepository, world: World) -> Any:
    """Opening an episode opens B's own (A's open one must not be returned or touched)."""
    episode, _ = await repo.open(
        incident_count=1, threshold=1, window_seconds=1.0, now=datetime.now(UTC)
    )
    assert episode.id != world.episode
    return None if episode.tenant_id == world.b.id else episode


def public_methods(cls: type) -> set[str]:
    return {
        name
        for name, member in inspect.getmembers(cls)
        if not name.startswith("_") and inspect.iscoroutinefunction(member)
    }


def test_every_public_repository_method_has_a_probe() -> None:
    """Every class ``awfdrs.db.repositories`` exports is classified: tenant-scoped (built with
    a ``tenant_id``: every public method probed), shared by design, a directory, or plain data."""
    exported = {name: getattr(repositories, name) for name in repositories.__all__}
    classes = {name: cls for name, cls in exported.items() if inspect.isclass(cls)}
    values = {name for name, cls in classes.items() if dataclasses.is_dataclass(cls)}
    scoped = {
        cls
        for name, cls in classes.items()
        if name not in values and "tenant_id" in inspect.signature(cls.__init__).parameters
    }
    assert set(PROBES) == scoped
    for cls in scoped:
        assert set(PROBES[cls]) == public_methods(cls), cls.__name__
    others = set(classes) - {c.__name__ for c in scoped} - values
    assert others == set(NOT_TENANT_SCOPED) | set(DIRECTORIES)
    for name, methods in DIRECTORIES.items():
        assert public_methods(classes[name]) == methods, name


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
        assert await IncidentDirectory(session).list_matching() == []
        assert await IncidentDirectory(session).find_tenant_of(world.incident) is None
        assert await IncidentDirectory(session).list_by_id_prefix(str(world.incident)[:8]) == []
    passed.sql += 1


async def test_raw_sql_as_the_application_role(
    world: World,
    committed_sessions: async_sessionmaker[AsyncSession],
    owner_engine: AsyncEngine,
    passed: Passed,
) -> None:
    before = await rows_of_a(owner_engine, world)
    async with tenant_session(committed_sessions, world.b.id) as session:
        for table in READABLE:
            column = "id" if table == "tenants" else "tenant_id"
            stmt = text(f"SELECT count(*) FROM {table} WHERE {column} = :a")  # noqa: S608
            assert (await session.execute(stmt, {"a": world.a.id})).scalar_one() == 0, table
        # Changing the tenant setting inside the transaction does not make A's rows writable
        # to a statement that names them: each is checked again against the policy.
        for statement in (
            "UPDATE incidents SET title = 'pwned' WHERE id = :id",
            "UPDATE remediation_requests SET status = 'CANCELLED', attempts = 99 WHERE id = :id",
            "UPDATE vendor_connections SET forced_open = true, credentials = NULL, "
            "credential_names = '{}' WHERE id = :id",
        ):
            ids = {
                "id": world.incident
                if "incidents" in statement
                else world.connection
                if "vendor_connections" in statement
                else world.request
            }
            changed = await session.execute(text(statement), ids)
            assert changed.rowcount == 0, statement  # type: ignore[attr-defined]
    with pytest.raises(DBAPIError, match="row-level security"):
        async with tenant_session(committed_sessions, world.b.id) as session:
            await session.execute(
                text(
                    "INSERT INTO kill_switches (id, tenant_id, reason, activated_by)"
                    " VALUES (:id, :a, 'r', 'x')"
                ),
                {"id": uuid.uuid4(), "a": world.a.id},
            )
    # Nor may B append to A's audit chain, even naming A's tenant to the function itself.
    with pytest.raises(DBAPIError, match="not the transaction's"):
        async with tenant_session(committed_sessions, world.b.id) as session:
            await session.execute(
                text("SELECT audit_record_command(:a, 'mallory', 'approve', NULL, NULL, '{}')"),
                {"a": world.a.id},
            )
    # The audit trail is never deleted by the application: not even granted.
    with pytest.raises(DBAPIError, match="permission denied"):
        async with tenant_session(committed_sessions, world.b.id) as session:
            await session.execute(
                text("DELETE FROM remediation_requests WHERE id = :id"), {"id": world.request}
            )
    assert await rows_of_a(owner_engine, world) == before
    passed.sql += 1


# Everything but ingest's INSERT goes through the dispatcher's SECURITY DEFINER functions.
OUTBOX_STATEMENTS = (
    "SELECT count(*) FROM outbox",
    "SELECT start FROM outbox WHERE tenant_id = :a",
    "UPDATE outbox SET available_at = now() + interval '1 day' WHERE tenant_id = :a",
    "UPDATE outbox SET attempts = attempts + 1",
    "DELETE FROM outbox WHERE tenant_id = :a",
    "DELETE FROM outbox",
)


async def test_the_application_role_cannot_touch_the_outbox(
    world: World,
    committed_sessions: async_sessionmaker[AsyncSession],
    owner_engine: AsyncEngine,
    passed: Passed,
) -> None:
    """Not another tenant's notices, and not its own either: B and A alike are refused."""
    before = await rows_of_a(owner_engine, world)
    for tenant in (world.b.id, world.a.id):
        for statement in OUTBOX_STATEMENTS:
            with pytest.raises(DBAPIError, match="permission denied for table outbox"):
                async with tenant_session(committed_sessions, tenant) as session:
                    await session.execute(text(statement), {"a": world.a.id})
    # Writing a notice for A's incident as B: row-level security refuses it.
    with pytest.raises(DBAPIError, match="row-level security"):
        async with tenant_session(committed_sessions, world.b.id) as session:
            await session.execute(
                text(
                    "INSERT INTO outbox (tenant_id, incident_id, task_queue, start)"
                    " VALUES (:a, :incident, :queue, '{}')"
                ),
                {"a": world.a.id, "incident": world.incident, "queue": world.queue},
            )
    assert await rows_of_a(owner_engine, world) == before
    passed.sql += 1


SQL_TESTS = 3


@pytest.fixture
async def activities(
    committed_sessions: async_sessionmaker[AsyncSession], temporal_env: Any
) -> AsyncIterator[dict[str, Any]]:
    # Nothing listens there: a probe that got as far as calling out would fail, not leak.
    async with httpx.AsyncClient(base_url="http://127.0.0.1:9") as http:
        gate = default_gate()
        yield {
            "ingest": IngestActivities(committed_sessions),
            "incidents": IncidentActivities(committed_sessions, RulesAnalyzer(), gate),
            "requests": RequestActivities(committed_sessions, RetryExecutor(http), gate),
            "actions": ActionActivities(committed_sessions, build_executors(http)),
            "controls": ControlActivities(committed_sessions, gate, EscalateExecutor(http)),
            "switches": KillSwitchActivities(committed_sessions, temporal_env.client, SIGNER),
            "principals": PrincipalActivities(committed_sessions, SIGNER),
        }


Calls = dict[str, Callable[[], Awaitable[Any]]]


def activity_probes(world: World, acts: dict[str, Any]) -> Calls:
    """Each activity called as B with A's incident (and its other ids)."""
    b = world.b.id
    env = ActivityEnvironment()
    ref: dict[str, Any] = {"tenant_id": b, "incident_id": world.incident}
    incidents, requests, actions = acts["incidents"], acts["requests"], acts["actions"]
    controls, switches = acts["controls"], acts["switches"]
    now = datetime.now(UTC)
    foreign = {
        "tenant_id": str(world.a.id),
        "workflow_id": str(world.a.workflow_id),
        "event_type": "payment.failed",
        "idempotency_key": world.event_key,
        "occurred_at": now.isoformat(),
        "payload": {"error": {"code": "timeout"}},
    }
    return {
        "ingest_batch": lambda: env.run(
            acts["ingest"].ingest_batch,
            # A's tenant named inside B's batch; then B's tenant with A's workflow and key.
            raw_batch(b, [foreign, foreign | {"tenant_id": str(b)}]),
        ),
        "analyze_incident": lambda: env.run(
            incidents.analyze,
            AnalyzeCommand(**ref, attempt=1, decision_id=uuid.uuid4(), action_id=uuid.uuid4()),
        ),
        "record_decision": lambda: env.run(
            incidents.decide,
            DecideCommand(
                **ref,
                decision_id=uuid.uuid4(),
                action_id=uuid.uuid4(),
                attempt=1,
                decision=DecideCmd(action_type=ActionType.ESCALATE, reasoning="r", ai_model="m"),
            ),
        ),
        "settle_round": lambda: env.run(
            incidents.settle_round,
            SettleRound(
                **ref,
                action_id=world.action,
                request_ids=[world.request],
                outcomes=[RequestOutcome(request_id=world.request, status=RequestStatus.FAILED)],
            ),
        ),
        "conclude_verification": lambda: env.run(
            incidents.conclude_verification,
            VerifyCommand(**ref, since=FAR_PAST, window_seconds=0, final=True),
        ),
        "review_requests": lambda: env.run(
            incidents.review, ReviewCommand(**ref, hand_over_to=world.action)
        ),
        "close_incident": lambda: env.run(
            incidents.close,
            CloseIncident(**ref, status=IncidentStatus.IGNORED, resolution="pwned"),
        ),
        "note_phase": lambda: env.run(
            incidents.note_phase,
            PhaseNote(**ref, phase=Phase.AWAITING_OPERATOR, reason="pwned"),
        ),
        "send_request": lambda: env.run(
            requests.send,
            SendCommand(
                **ref,
                request_id=world.request,
                action_id=world.action,
                max_attempts=1,
                timeout_seconds=3,
                max_deferral_seconds=0,
            ),
        ),
        "execute_action": lambda: env.run(
            actions.execute, ExecuteCommand(**ref, action_id=world.action, max_attempts=1)
        ),
        "abandon_action": lambda: env.run(
            actions.abandon, AbandonCommand(**ref, action_id=world.action, reason="pwned")
        ),
        "probe_gate": lambda: env.run(
            controls.probe, GateProbe(**ref, control=GateControl.KILL_SWITCH)
        ),
        "escalate_episode": lambda: env.run(
            controls.escalate_episode, EpisodeEscalation(**ref, episode_id=world.episode)
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
        # Tenant B holds a valid credential of its own, naming A's switch: still nothing.
        "release_kill_switch": lambda: env.run(
            switches.release,
            ReleaseCommand(
                tenant_id=b,
                release=ReleaseKillSwitch(
                    released_by="x",
                    switch_id=world.switch,
                    credential=SIGNER.sign(
                        Scope(b, RELEASE, kill_switch_subject(world.switch, None)), "x"
                    ),
                ),
            ),
        ),
        # A credential B signed cannot pass as one for A's incident.
        "verify_credential": lambda: env.run(
            acts["principals"].verify,
            CredentialCheck(
                tenant_id=world.a.id,
                command=APPROVE,
                subject=str(world.incident),
                plan_id="plan-0",
                credential=SIGNER.sign(Scope(b, APPROVE, str(world.incident), "plan-0"), "x"),
            ),
        ),
        "expire_kill_switches": lambda: env.run(switches.expire, SwitchTenant(tenant_id=b)),
        "list_kill_switches": lambda: env.run(switches.list_active, SwitchTenant(tenant_id=b)),
    }


def mixed_probes(world: World, acts: dict[str, Any]) -> Calls:
    """Tenant C, naming its own incident, with A's request, action or episode ids."""
    env = ActivityEnvironment()
    ref: dict[str, Any] = {"tenant_id": world.c.id, "incident_id": world.c_incident}
    incidents, requests = acts["incidents"], acts["requests"]
    # An approval of a plan made of A's request, as if C had reviewed it.
    approved = DecideCmd(
        action_type=ActionType.RETRY,
        reasoning="approved",
        ai_model="operator",
        decided_by="x",
        plan_id=plan_id(ActionType.RETRY, [(world.request, world.request_hash)]),
        request_ids=(world.request,),
    )
    return {
        "send_request": lambda: env.run(
            requests.send,
            SendCommand(
                **ref,
                request_id=world.request,
                action_id=world.action,
                max_attempts=1,
                timeout_seconds=3,
                max_deferral_seconds=0,
            ),
        ),
        "settle_round": lambda: env.run(
            incidents.settle_round,
            SettleRound(
                **ref,
                action_id=world.action,
                request_ids=[world.request],
                outcomes=[RequestOutcome(request_id=world.request, status=RequestStatus.FAILED)],
            ),
        ),
        "record_decision": lambda: env.run(
            incidents.decide,
            DecideCommand(
                **ref,
                decision_id=uuid.uuid4(),
                action_id=uuid.uuid4(),
                attempt=1,
                decision=approved,
            ),
        ),
        "review_requests": lambda: env.run(
            incidents.review, ReviewCommand(**ref, hand_over_to=world.action)
        ),
        "execute_action": lambda: env.run(
            acts["actions"].execute, ExecuteCommand(**ref, action_id=world.action, max_attempts=1)
        ),
        "escalate_episode": lambda: env.run(
            acts["controls"].escalate_episode, EpisodeEscalation(**ref, episode_id=world.episode)
        ),
    }


def registered_activities() -> set[str]:
    """Every activity defined anywhere in ``awfdrs.activities``, by its registered name."""
    names = set()
    for info in pkgutil.iter_modules(awfdrs.activities.__path__):
        module = importlib.import_module(f"{awfdrs.activities.__name__}.{info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != module.__name__:
                continue
            for _, member in inspect.getmembers(cls):
                definition = getattr(member, "__temporal_activity_definition", None)
                if definition is not None:
                    names.add(definition.name)
    return names


ACTIVITY_NAMES = {
    "ingest_batch",
    "analyze_incident",
    "record_decision",
    "settle_round",
    "conclude_verification",
    "review_requests",
    "close_incident",
    "note_phase",
    "send_request",
    "execute_action",
    "abandon_action",
    "probe_gate",
    "escalate_episode",
    "activate_kill_switch",
    "release_kill_switch",
    "expire_kill_switches",
    "list_kill_switches",
    "verify_credential",
}
MIXED_NAMES = {
    "send_request",
    "settle_round",
    "record_decision",
    "review_requests",
    "execute_action",
    "escalate_episode",
}


def test_every_activity_has_a_probe() -> None:
    registered = registered_activities()
    assert "send_request" in registered  # the discovery found the activities at all
    assert registered == ACTIVITY_NAMES


@pytest.mark.parametrize("name", sorted(ACTIVITY_NAMES))
async def test_activity_with_another_tenants_ids(
    name: str,
    world: World,
    activities: dict[str, Any],
    owner_engine: AsyncEngine,
    passed: Passed,
) -> None:
    probes = activity_probes(world, activities)
    assert set(probes) == ACTIVITY_NAMES
    before = await rows_of_a(owner_engine, world)
    try:
        result = await probes[name]()
    except (*REFUSALS, ApplicationError):
        pass
    else:
        found = leaks(result, world)
        assert not found or _only_refused(result, name), f"{name} returned A's data: {found}"
    assert await rows_of_a(owner_engine, world) == before
    passed.activity += 1


@pytest.mark.parametrize("name", sorted(MIXED_NAMES))
async def test_activity_with_own_incident_and_another_tenants_ids(
    name: str,
    world: World,
    activities: dict[str, Any],
    owner_engine: AsyncEngine,
    passed: Passed,
) -> None:
    probes = mixed_probes(world, activities)
    assert set(probes) == MIXED_NAMES
    before = await rows_of_a(owner_engine, world)
    try:
        result = await probes[name]()
    except (*REFUSALS, ApplicationError, ValueError):
        pass  # ValueError: an approval naming a plan its requests do not make
    else:
        # C's own incident may be counted and dated; nothing of A may appear.
        found = leaks(result, world, counts=False)
        assert not found, f"{name} returned A's data: {found}"
    assert await rows_of_a(owner_engine, world) == before
    passed.activity += 1


def _only_refused(result: Any, name: str) -> bool:
    """ingest_batch answers per event: A's key comes back only as the key of a refusal."""
    return (
        name == "ingest_batch"
        and isinstance(result, IngestResult)
        and all(o.outcome is Outcome.REJECTED for o in result.outcomes)
    )


async def test_workflow_entry_points_with_another_tenants_ids(
    world: World, stack: Stack, owner_engine: AsyncEngine, passed: Passed
) -> None:
    before = await rows_of_a(owner_engine, world)
    b = world.b

    # IngestEvents for B naming A's tenant, then A's workflow: each event refused.
    event = {
        "tenant_id": str(world.a.id),
        "workflow_id": str(world.a.workflow_id),
        "event_type": "payment.failed",
        "idempotency_key": f"x-{uuid.uuid4()}",
        "occurred_at": datetime.now(UTC).isoformat(),
    }
    result = await stack.client.ingest_batch(
        IngestBatch(tenant_id=b.id, events=[event, event | {"tenant_id": str(b.id)}])
    )
    assert [(o.outcome, (o.reason or "").split(":")[0]) for o in result.outcomes] == [
        (Outcome.REJECTED, "tenant_id"),
        (Outcome.REJECTED, "workflow_id"),
    ]
    assert result.incidents == []

    # A kill switch for B over A's workflow.
    with pytest.raises(KillSwitchRefused, match="workflow_id"):
        await stack.client.activate_kill_switch(
            b.id, reason="probe", activated_by="probe", workflow_id=world.a.workflow_id
        )

    # An incident workflow claiming B's tenant for A's incident: every step it tries is refused
    # (A's incident does not exist for B), so it waits and retries without touching A.
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
            params=incident_params(TenantSettings.model_validate({"grouping_window_seconds": 0})),
        ),
        id=incident_workflow_id(world.incident),
        task_queue=stack.client.task_queue,
    )
    try:
        snapshot = await stack.wait_snapshot(
            world.incident, lambda s: "not found" in s.details, within=20
        )
        assert snapshot.decisions == []
        assert snapshot.plan is None
        assert snapshot.tally.total == 0
        shown = snapshot.model_dump(exclude={"incident_id"})
        assert not leaks(shown, world, counts=False), shown
    finally:
        await handle.terminate("isolation probe over")
    assert await rows_of_a(owner_engine, world) == before
    passed.entry_points += 1
