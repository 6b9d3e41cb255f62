"""The invariants checked after every fault test, and how each is computed.

After each run, from SQL (as the application role, in the load's tenant), the vendor's own
request log (``FlakyVendor.requests``) and the Temporal visibility store:

Events
- no event lost: every distinct key sent is stored;
- none duplicated: each key is stored once, and was reported ``accepted`` exactly once;
- ``event_count`` of the incidents of a signature equals its distinct failure events, and the
  affected requests of an incident account for its events (``sum(request.event_count) ==
  incident.event_count``; on an IGNORED incident, later failures are counted but not remediated,
  so there it is ``<=``).

Requests (one row of ``remediation_requests`` per distinct failed request an incident groups)
- every affected request of every incident is settled, by its incident's end state:
  RESOLVED by verification: each request SUCCEEDED or RECOVERED; closed by an operator (the test
  records every resolve / ignore it makes): SUCCEEDED, RECOVERED, HANDED_OVER or CANCELLED;
  still open: only *legitimately waiting*, i.e. ACTIONED in phase AWAITING_OPERATOR, its latest
  action an escalation or hand-over that was delivered (SUCCEEDED), at least one request
  HANDED_OVER (that is what the human must decide about) and every other one SUCCEEDED or
  RECOVERED. Nothing else is settled: no PENDING, SENT, FAILED or SHADOWED request at the end,
  no open incident in any other phase, no incident IGNORED unless an operator did it;
- no request content (method, path, canonical body) reached the vendor under two different
  Idempotency-Keys, and every call's key is a stored request's key with that same content;
- no two attempts of one key were in flight at the vendor at once (the vendor's arrival and
  hang-up times);
- no request content was executed twice (at most one non-replayed 2xx per content);
- every vendor call was a recorded attempt (calls per key <= the attempts of its rows);
- nothing reached the vendor after an operator's resolve / ignore was acknowledged, except the
  one attempt per request already claimed before it (in flight); a request CANCELLED by the close
  has no call arriving after its cancellation (its ``finished_at``, written in the closing
  transaction);
- no incident workflow ended FAILED, TERMINATED, TIMED_OUT or CANCELED, and every incident has
  its workflow (the outbox was delivered).

Audit
- the tenant's audit chain verifies (``awfdrs audit verify``): every decision, transition,
  switch and close the run made was appended, under its faults, as one gap-free chain.

A limit of "after the close": the rows record when a request was first claimed (``sent_at``), not
each later attempt's claim, so for a request with several attempts the one call allowed after
the acknowledgment is not proven to be the in-flight one. Every other call after it still
counts, and the operator-close run asserts one attempt per request, where the check is exact.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, true
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client, WorkflowExecutionStatus

from awfdrs.audit import Verdict
from awfdrs.constants import incident_workflow_id
from awfdrs.contracts import Outcome
from awfdrs.db.models import Action, Event, Incident, RemediationRequest
from awfdrs.db.repositories import AuditRepository
from awfdrs.db.session import tenant_session
from awfdrs.devstack.servers import FlakyVendor, Received
from awfdrs.enums import ActionStatus, ActionType, IncidentStatus, Phase, RequestStatus
from tests.e2e.reliability.support import Content, Load, content

# --- the state after a run, as plain values ---------------------------------------------------


@dataclass(frozen=True)
class RequestRow:
    id: uuid.UUID
    incident_id: uuid.UUID
    status: RequestStatus
    key: str
    content: Content | None  # None: nothing to replay
    attempts: int
    event_count: int
    sent_at: float | None
    finished_at: float | None
    # Why it stands where it does, for the failure message.
    note: str | None = None
    last_error: str | None = None


@dataclass(frozen=True)
class IncidentRow:
    id: uuid.UUID
    status: IncidentStatus
    phase: Phase
    signature: str
    event_count: int
    resolved_at: float | None
    resolution: str | None
    # The latest action: (type, status), None when it has none.
    latest_action: tuple[ActionType, ActionStatus] | None


@dataclass
class State:
    incidents: dict[uuid.UUID, IncidentRow]
    requests: list[RequestRow]

    def requests_of(self) -> dict[uuid.UUID, list[RequestRow]]:
        found: dict[uuid.UUID, list[RequestRow]] = defaultdict(list)
        for row in self.requests:
            found[row.incident_id].append(row)
        return found


def _epoch(at: datetime | None) -> float | None:
    return at.timestamp() if at is not None else None


async def load_state(sessions: async_sessionmaker[AsyncSession], tenant: uuid.UUID) -> State:
    """Every incident (with its latest action) and request of ``tenant``, in one transaction."""
    latest = (
        select(Action.action_type, Action.status)
        .where(Action.incident_id == Incident.id, Action.tenant_id == Incident.tenant_id)
        .order_by(Action.created_at.desc(), Action.id.desc())
        .limit(1)
        .lateral()
    )
    r = RemediationRequest
    async with tenant_session(sessions, tenant) as session:
        incidents = (
            await session.execute(
                select(
                    Incident.id,
                    Incident.status,
                    Incident.phase,
                    Incident.signature,
                    Incident.event_count,
                    Incident.resolved_at,
                    Incident.resolution,
                    latest.c.action_type,
                    latest.c.status,
                ).outerjoin(latest, true())
            )
        ).all()
        requests = (
            await session.execute(
                select(
                    r.id,
                    r.incident_id,
                    r.status,
                    r.idempotency_key,
                    r.replayable,
                    r.method,
                    r.path,
                    r.body,
                    r.attempts,
                    r.event_count,
                    r.sent_at,
                    r.finished_at,
                    r.note,
                    r.last_error,
                )
            )
        ).all()
    return State(
        incidents={
            row[0]: IncidentRow(
                id=row[0],
                status=IncidentStatus(row[1]),
                phase=Phase(row[2]),
                signature=row[3],
                event_count=row[4],
                resolved_at=_epoch(row[5]),
                resolution=row[6],
                latest_action=(ActionType(row[7]), ActionStatus(row[8])) if row[7] else None,
            )
            for row in incidents
        },
        requests=[
            RequestRow(
                id=row[0],
                incident_id=row[1],
                status=RequestStatus(row[2]),
                key=row[3],
                content=content(row[5], row[6], row[7]) if row[4] else None,
                attempts=row[8],
                event_count=row[9],
                sent_at=_epoch(row[10]),
                finished_at=_epoch(row[11]),
                note=row[12],
                last_error=row[13],
            )
            for row in requests
        ],
    )


# --- where each incident and request stands ---------------------------------------------------

WAITING = "ACTIONED, escalated: waiting for an operator"
RESOLVED = "RESOLVED (verified)"
BY_OPERATOR = "{status} by an operator"
WORKED = frozenset({RequestStatus.SUCCEEDED, RequestStatus.RECOVERED})
WITH_A_HUMAN = WORKED | {RequestStatus.HANDED_OVER}
CLOSED_BY_OPERATOR = WITH_A_HUMAN | {RequestStatus.CANCELLED}
FAILED_RUNS = frozenset(
    {
        WorkflowExecutionStatus.FAILED,
        WorkflowExecutionStatus.TERMINATED,
        WorkflowExecutionStatus.TIMED_OUT,
        WorkflowExecutionStatus.CANCELED,
    }
)


def legitimately_waiting(incident: IncidentRow, requests: Sequence[RequestRow]) -> bool:
    """Open at the end for a reason: a human was paged about requests only a human can settle
    (permanent failures, transient ones still failing after ``max_attempts``), and the rest
    worked."""
    return (
        incident.status is IncidentStatus.ACTIONED
        and incident.phase is Phase.AWAITING_OPERATOR
        and incident.latest_action is not None
        and incident.latest_action[0] in (ActionType.ESCALATE, ActionType.MANUAL)
        and incident.latest_action[1] is ActionStatus.SUCCEEDED
        and any(r.status is RequestStatus.HANDED_OVER for r in requests)
        and all(r.status in WITH_A_HUMAN for r in requests)
    )


def label(
    incident: IncidentRow, requests: Sequence[RequestRow], closed: Iterable[uuid.UUID]
) -> str:
    """The incident's end state in words; anything not named here is unexplained."""
    if incident.id in set(closed) and not incident.status.is_open:
        return BY_OPERATOR.format(status=incident.status.value)
    if incident.status is IncidentStatus.RESOLVED:
        return RESOLVED
    if legitimately_waiting(incident, requests):
        return WAITING
    return f"{incident.status.value} in phase {incident.phase.value}: unexplained"


def allowed(state: str) -> frozenset[RequestStatus]:
    """The request statuses that count as settled in an incident ending in ``state``."""
    if state == RESOLVED:
        return WORKED
    if state == WAITING:
        return WITH_A_HUMAN
    if state.endswith("by an operator"):
        return CLOSED_BY_OPERATOR
    return frozenset()


def in_motion(state: State, closed: Iterable[uuid.UUID]) -> Counter[str]:
    """What may still change by itself: open incidents not (yet) legitimately waiting, and
    requests in flight anywhere."""
    closed = set(closed)
    requests = state.requests_of()
    moving: Counter[str] = Counter()
    for incident in state.incidents.values():
        name = label(incident, requests[incident.id], closed)
        if incident.status.is_open and name != WAITING:
            moving[f"{incident.status.value} {incident.phase.value}"] += 1
    moving["requests in flight"] = sum(r.status is RequestStatus.SENT for r in state.requests)
    return +moving


async def settle(
    sessions: async_sessionmaker[AsyncSession], load: Load, *, within: float = 120
) -> State:
    """Wait until nothing is in motion (see :func:`in_motion`), twice in a row: an incident
    verifying may still go back to analysing, a request in flight still land."""
    deadline = asyncio.get_running_loop().time() + within
    quiet = 0
    while True:
        state = await load_state(sessions, load.tenant.id)
        moving = in_motion(state, load.closed)
        quiet = quiet + 1 if not moving else 0
        if quiet >= 2:
            return state
        if moving and asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not settled within {within}s: {dict(moving)}")
        await asyncio.sleep(1.0 if not moving else 0.5)


# --- the figures ------------------------------------------------------------------------------


@dataclass
class Figures:
    events_in: int
    distinct: int
    stored: int
    duplicated: int
    lost: int
    accepted_twice: int
    event_count_mismatches: int
    incidents: int
    statuses: dict[str, int]
    requests: int
    requests_per_incident: float
    request_statuses: dict[str, int]
    requests_settled: int
    request_event_mismatches: int
    vendor_calls: int
    sent_under_two_keys: int
    unknown_keys: int
    overlapping_attempts: int
    executed_twice: int
    calls_unrecorded: int
    sent_after_close: int
    cancelled: int
    workflows: int
    workflows_failed: int
    incidents_without_workflow: int
    audit_rows: int = 0
    audit_broken: int = 0
    # Examples of what broke, for the assertion message; not recorded.
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        found = asdict(self)
        del found["problems"]
        return found


def overlapping(calls: Sequence[Received]) -> int:
    """Pairs of calls with the same key in flight at once: ``FlakyVendor.overlapping()``
    grouped by key first (that one compares every pair of the log, too slow at soak sizes)."""
    by_key: dict[str | None, list[Received]] = defaultdict(list)
    for call in calls:
        by_key[call.idempotency_key].append(call)
    pairs = 0
    for same in by_key.values():
        same.sort(key=lambda c: c.arrived)
        for i, first in enumerate(same):
            for second in same[i + 1 :]:
                if second.arrived >= first.connected_until:
                    break
                pairs += 1
    return pairs


def _sent_after_close(
    state: State, load: Load, by_key: dict[str, list[Received]], problems: list[str]
) -> int:
    """Vendor calls of an operator-closed incident's requests that the close should have
    stopped (see the module docstring)."""
    rows_by_key: dict[str, list[RequestRow]] = defaultdict(list)
    for row in state.requests:
        rows_by_key[row.key].append(row)
    late = 0
    for row in state.requests:
        acknowledged = load.closed.get(row.incident_id)
        if acknowledged is None:
            continue
        calls = by_key.get(row.key, [])
        # Calls another incident's row with the same key (a regression of this request) made.
        others = sum(o.attempts for o in rows_by_key[row.key] if o.incident_id != row.incident_id)
        if row.status is RequestStatus.CANCELLED:
            assert row.finished_at is not None
            after = [c for c in calls if c.arrived > row.finished_at]
            found = max(0, len(after) - others)
        else:
            after = [c for c in calls if c.arrived > acknowledged]
            in_flight = 1 if row.sent_at is not None and row.sent_at <= acknowledged else 0
            found = max(0, len(after) - in_flight - others)
        if found:
            late += found
            problems.append(f"request {row.id} ({row.status.value}): {found} call(s) after close")
    return late


async def workflow_runs(
    temporal: Client, tenant: uuid.UUID
) -> list[tuple[str, WorkflowExecutionStatus | None]]:
    """(workflow id, status) of every incident workflow run of ``tenant``."""
    query = f'AwfdrsTenant = "{tenant}"'
    return [(w.id, w.status) async for w in temporal.list_workflows(query)]


@dataclass
class Observed:
    """Everything the checks read, gathered once after a run: the stored event keys and failure
    events per signature (SQL), incidents and requests (SQL), the vendor's log, and the incident
    workflow runs (Temporal's visibility store)."""

    stored_keys: list[str]
    failures: Counter[str]
    state: State
    calls: list[Received]
    runs: list[tuple[str, WorkflowExecutionStatus | None]]
    # The tenant's audit chain, verified; None where a check is run on made-up state.
    audit: Verdict | None = None


async def observe(
    sessions: async_sessionmaker[AsyncSession],
    temporal: Client,
    load: Load,
    vendor: FlakyVendor,
    state: State | None = None,
) -> Observed:
    tenant = load.tenant.id
    async with tenant_session(sessions, tenant) as session:
        keys = (await session.execute(select(Event.idempotency_key))).scalars().all()
        rows = await session.execute(select(Event.signature).where(Event.signature.is_not(None)))
        failures: Counter[str] = Counter(str(sig) for sig in rows.scalars().all())
        audit = await AuditRepository(session, tenant_id=tenant).verify()
    return Observed(
        stored_keys=list(keys),
        failures=failures,
        state=state or await load_state(sessions, tenant),
        calls=list(vendor.requests),
        runs=await workflow_runs(temporal, tenant),
        audit=audit,
    )


async def figures(
    sessions: async_sessionmaker[AsyncSession],
    temporal: Client,
    load: Load,
    vendor: FlakyVendor,
    state: State | None = None,
) -> Figures:
    return check(load, await observe(sessions, temporal, load, vendor, state))


def check(load: Load, seen: Observed) -> Figures:
    """The figures of a run and the examples of what broke (pure: see the module docstring)."""
    problems: list[str] = []
    state, keys, by_signature = seen.state, seen.stored_keys, seen.failures
    requests = state.requests_of()

    # Events.
    counted: Counter[str] = Counter()
    for incident in state.incidents.values():
        counted[incident.signature] += incident.event_count
    stored = Counter(keys)
    accepted = Counter(r.idempotency_key for r in load.results if r.outcome is Outcome.ACCEPTED)
    request_event_mismatches = 0
    for incident in state.incidents.values():
        total = sum(r.event_count for r in requests[incident.id])
        ok = (
            total <= incident.event_count
            if incident.status is IncidentStatus.IGNORED
            else total == incident.event_count
        )
        if not ok:
            request_event_mismatches += 1
            problems.append(
                f"incident {incident.id}: {incident.event_count} events, requests count {total}"
            )

    # Incidents and requests.
    statuses: Counter[str] = Counter()
    settled = 0
    for incident in state.incidents.values():
        name = label(incident, requests[incident.id], load.closed)
        statuses[name] += 1
        for row in requests[incident.id]:
            if row.status in allowed(name):
                settled += 1
            else:
                problems.append(
                    f"request {row.id} {row.status.value} in an incident {name} "
                    f"(incident {incident.id}: {incident.resolution}; {row.attempts} attempts, "
                    f"note {row.note!r}, last error {row.last_error!r})"
                )
    with_requests = [rows for rows in requests.values() if any(r.content for r in rows)]

    # The vendor's log.
    calls = seen.calls
    by_key: dict[str, list[Received]] = defaultdict(list)
    keys_of: dict[Content, set[str | None]] = defaultdict(set)
    executions: Counter[Content] = Counter()
    row_content = {r.key: r.content for r in state.requests}
    unknown = 0
    for call in calls:
        what = content(call.method, call.path, call.body)
        keys_of[what].add(call.idempotency_key)
        if 200 <= call.status < 300 and not call.replayed:
            executions[what] += 1
        key = call.idempotency_key
        if key is None or key not in row_content or row_content[key] != what:
            unknown += 1
            problems.append(f"a call with key {key} that no request row sends: {what}")
            continue
        by_key[key].append(call)
    two_keys = [what for what, found in keys_of.items() if len(found) > 1]
    problems += [f"sent under keys {sorted(map(str, keys_of[w]))}: {w}" for w in two_keys[:5]]
    twice = [what for what, n in executions.items() if n > 1]
    problems += [f"executed {executions[w]} times: {w}" for w in twice[:5]]
    attempts: Counter[str] = Counter()
    for row in state.requests:
        attempts[row.key] += row.attempts
    unrecorded = sum(max(0, len(found) - attempts[key]) for key, found in by_key.items())

    # Temporal.
    runs = seen.runs
    failed = [(wid, status) for wid, status in runs if status in FAILED_RUNS]
    problems += [f"workflow {wid} ended {status}" for wid, status in failed[:5]]
    listed = {wid for wid, _ in runs}
    orphans = [i for i in state.incidents if incident_workflow_id(i) not in listed]
    problems += [f"incident {i} has no workflow" for i in orphans[:5]]

    # The audit.
    audit = seen.audit
    if audit is not None and not audit.intact:
        problems.append(f"the tenant's audit: {audit.describe()}")

    return Figures(
        events_in=len(load.deliveries),
        distinct=len(load.keys),
        stored=len(stored),
        duplicated=sum(n - 1 for n in stored.values() if n > 1),
        lost=len(load.keys - set(stored)),
        accepted_twice=sum(1 for n in accepted.values() if n > 1),
        event_count_mismatches=sum(
            1 for signature, n in by_signature.items() if counted[signature] != n
        ),
        incidents=len(state.incidents),
        statuses=dict(statuses),
        requests=len(state.requests),
        requests_per_incident=round(
            sum(len(rows) for rows in with_requests) / max(1, len(with_requests)), 1
        ),
        request_statuses=dict(Counter(r.status.value for r in state.requests)),
        requests_settled=settled,
        request_event_mismatches=request_event_mismatches,
        vendor_calls=len(calls),
        sent_under_two_keys=len(two_keys),
        unknown_keys=unknown,
        overlapping_attempts=overlapping(calls),
        executed_twice=len(twice),
        calls_unrecorded=unrecorded,
        sent_after_close=_sent_after_close(state, load, by_key, problems),
        cancelled=sum(r.status is RequestStatus.CANCELLED for r in state.requests),
        workflows=len(runs),
        workflows_failed=len(failed),
        incidents_without_workflow=len(orphans),
        audit_rows=audit.rows if audit is not None else 0,
        audit_broken=int(audit is not None and not audit.intact),
        problems=problems,
    )


def assert_invariants(found: Figures) -> None:
    """Every invariant of the module docstring; the message names what broke."""
    broken = {
        name: value
        for name, value in (
            ("lost", found.lost),
            ("duplicated", found.duplicated),
            ("stored ≠ distinct", found.stored - found.distinct),
            ("accepted twice", found.accepted_twice),
            ("event_count mismatches", found.event_count_mismatches),
            ("requests ≠ their incident's events", found.request_event_mismatches),
            ("requests not settled", found.requests - found.requests_settled),
            ("sent under two keys", found.sent_under_two_keys),
            ("calls with a key no request has", found.unknown_keys),
            ("overlapping attempts", found.overlapping_attempts),
            ("executed twice", found.executed_twice),
            ("calls that were no recorded attempt", found.calls_unrecorded),
            ("sent after close", found.sent_after_close),
            ("workflows failed", found.workflows_failed),
            ("incidents without a workflow", found.incidents_without_workflow),
            ("audit chain broken", found.audit_broken),
            (
                "unexplained incidents",
                sum(n for s, n in found.statuses.items() if s.endswith("unexplained")),
            ),
        )
        if value
    }
    assert not broken, f"{broken}; {found.problems[:20]}; {found.as_dict()}"


__all__ = [
    "RESOLVED",
    "WAITING",
    "Figures",
    "IncidentRow",
    "Observed",
    "RequestRow",
    "State",
    "assert_invariants",
    "check",
    "figures",
    "load_state",
    "observe",
    "settle",
]
