"""The invariant checker itself, on a small run made by hand: it passes a clean run and names
each kind of breakage (a checker that cannot fail would make every fault test pass)."""

from __future__ import annotations

import dataclasses
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from temporalio.client import WorkflowExecutionStatus

from awfdrs.audit import Break, Broken, Verdict
from awfdrs.constants import incident_workflow_id
from awfdrs.contracts import EventResult, Outcome
from awfdrs.devstack.servers import Received
from awfdrs.enums import ActionStatus, ActionType, IncidentStatus, Phase, RequestStatus
from tests.e2e.reliability.invariants import (
    RESOLVED,
    WAITING,
    Figures,
    IncidentRow,
    Observed,
    RequestRow,
    State,
    assert_invariants,
    check,
)
from tests.e2e.reliability.support import Load, content
from tests.support.factories import TenantRef

CLOSED_AT = 1000.0  # when the operator's close of incident 3 was acknowledged
I1, I2, I3 = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()  # verified, waiting, closed by an operator


def call(key: str | None, order: int, arrived: float, *, status: int = 200,
         replayed: bool = False, until: float | None = None) -> Received:  # fmt: skip
    headers = {"idempotency-key": key} if key else {}
    return Received(
        at=arrived, method="POST", path="/v1/charges", headers=headers, body={"order": order},
        status=status, replayed=replayed, arrived=arrived,
        connected_until=arrived + 0.2 if until is None else until,
    )  # fmt: skip


def row(request_id: int, incident: uuid.UUID, status: RequestStatus, **more: Any) -> RequestRow:
    values: dict[str, Any] = {
        "id": uuid.UUID(int=request_id),
        "incident_id": incident,
        "status": status,
        "key": f"k{request_id}",
        "content": content("POST", "/v1/charges", {"order": request_id}),
        "attempts": 1,
        "event_count": 1,
        "sent_at": 10.0 * request_id,
        "finished_at": 10.0 * request_id + 0.5,
    }
    return RequestRow(**(values | more))


def incident(incident_id: uuid.UUID, status: IncidentStatus, phase: Phase, events: int,
             action: tuple[ActionType, ActionStatus] | None = None) -> IncidentRow:  # fmt: skip
    return IncidentRow(
        id=incident_id, status=status, phase=phase, signature=f"sig-{incident_id}",
        event_count=events, resolved_at=None, resolution=None, latest_action=action,
    )  # fmt: skip


def clean() -> tuple[Load, Observed]:
    """Incident 1 resolved after both its requests succeeded; incident 2 waiting for the human
    its permanent failure was escalated to; incident 3 closed by an operator with one request
    sent before the close and one cancelled by it."""
    tenant = TenantRef(uuid.uuid4(), uuid.uuid4(), "t")
    keys = [f"e{n}" for n in range(5)]
    load = Load(
        tenant,
        unique=[{"idempotency_key": k} for k in keys],
        deliveries=[{"idempotency_key": k} for k in keys],
        results=[EventResult(idempotency_key=k, outcome=Outcome.ACCEPTED) for k in keys],
        closed={I3: CLOSED_AT},
    )
    incidents = [
        incident(I1, IncidentStatus.RESOLVED, Phase.CLOSED, 2),
        incident(I2, IncidentStatus.ACTIONED, Phase.AWAITING_OPERATOR, 1,
                 (ActionType.ESCALATE, ActionStatus.SUCCEEDED)),
        incident(I3, IncidentStatus.RESOLVED, Phase.CLOSED, 2),
    ]  # fmt: skip
    requests = [
        row(1, I1, RequestStatus.SUCCEEDED),
        row(2, I1, RequestStatus.SUCCEEDED),
        row(3, I2, RequestStatus.HANDED_OVER, content=None, attempts=0, sent_at=None),
        # Claimed just before the close, answered just after: in flight, allowed to land.
        row(4, I3, RequestStatus.SUCCEEDED, sent_at=CLOSED_AT - 0.1, finished_at=CLOSED_AT + 1),
        row(5, I3, RequestStatus.CANCELLED, attempts=0, sent_at=None, finished_at=CLOSED_AT),
    ]
    calls = [
        call("k1", 1, 10.0, status=503),
        call("k1", 1, 11.0),
        call("k2", 2, 20.0),
        call("k4", 4, CLOSED_AT + 0.5),
    ]
    requests[0] = dataclasses.replace(requests[0], attempts=2)
    return load, Observed(
        stored_keys=keys,
        failures=Counter({i.signature: i.event_count for i in incidents}),
        state=State({i.id: i for i in incidents}, requests),
        calls=calls,
        runs=[
            (incident_workflow_id(I1), WorkflowExecutionStatus.COMPLETED),
            (incident_workflow_id(I2), WorkflowExecutionStatus.RUNNING),
            (incident_workflow_id(I3), WorkflowExecutionStatus.COMPLETED),
        ],
        audit=Verdict(rows=9, head="a" * 64, broken=None),
    )


def test_a_clean_run_passes() -> None:
    load, seen = clean()
    found = check(load, seen)
    assert_invariants(found)
    assert found.statuses == {RESOLVED: 1, WAITING: 1, "RESOLVED by an operator": 1}
    assert (found.requests, found.requests_settled, found.cancelled) == (5, 5, 1)
    assert found.vendor_calls == 4


def _request(seen: Observed, request_id: int, also: Received | None = None, **changes: Any) -> None:
    """Change one request row; ``also`` a call the vendor received."""
    if also is not None:
        seen.calls.append(also)
    rows = seen.state.requests
    index = next(i for i, r in enumerate(rows) if r.id == uuid.UUID(int=request_id))
    rows[index] = dataclasses.replace(rows[index], **changes)


def _incident(seen: Observed, incident_id: uuid.UUID, **changes: Any) -> None:
    incidents = seen.state.incidents
    incidents[incident_id] = dataclasses.replace(incidents[incident_id], **changes)


def _tampered(seen: Observed) -> None:
    seen.audit = Verdict(
        rows=3, head="a" * 64, broken=Broken(4, uuid.UUID(int=4), Break.HASH, "changed")
    )


Breakage = Callable[[Load, Observed], object]
BREAKAGES: dict[str, tuple[Breakage, Callable[[Figures], int]]] = {
    "a request left PENDING in a verified incident": (
        lambda load, seen: _request(seen, 2, status=RequestStatus.PENDING),
        lambda f: f.requests - f.requests_settled,
    ),
    "a request CANCELLED though no operator closed its incident": (
        lambda load, seen: _request(seen, 2, status=RequestStatus.CANCELLED),
        lambda f: f.requests - f.requests_settled,
    ),
    "a request FAILED in an incident waiting for an operator": (
        lambda load, seen: _request(seen, 3, status=RequestStatus.FAILED),
        lambda f: f.requests - f.requests_settled,
    ),
    "an incident open while verifying": (
        lambda load, seen: _incident(
            seen, I1, status=IncidentStatus.ACTIONED, phase=Phase.VERIFYING
        ),
        lambda f: sum(n for s, n in f.statuses.items() if s.endswith("unexplained")),
    ),
    "an incident waiting after an escalation that was not delivered": (
        lambda load, seen: _incident(
            seen, I2, latest_action=(ActionType.ESCALATE, ActionStatus.FAILED)
        ),
        lambda f: sum(n for s, n in f.statuses.items() if s.endswith("unexplained")),
    ),
    "an incident IGNORED by nobody": (
        lambda load, seen: _incident(seen, I1, status=IncidentStatus.IGNORED),
        lambda f: sum(n for s, n in f.statuses.items() if s.endswith("unexplained")),
    ),
    "a request's content sent under a second key": (
        lambda load, seen: seen.calls.append(call("k9", 1, 50.0)),
        lambda f: f.sent_under_two_keys,
    ),
    "a call whose key no request has": (
        lambda load, seen: seen.calls.append(call(None, 7, 50.0)),
        lambda f: f.unknown_keys,
    ),
    "a key sent with another request's body": (
        lambda load, seen: seen.calls.append(call("k2", 1, 50.0, replayed=True)),
        lambda f: f.unknown_keys,
    ),
    "two attempts of one key in flight at once": (
        lambda load, seen: seen.calls.append(call("k2", 2, 20.1, replayed=True)),
        lambda f: f.overlapping_attempts,
    ),
    "a request executed twice": (
        lambda load, seen: seen.calls.append(call("k2", 2, 30.0)),
        lambda f: f.executed_twice,
    ),
    "a vendor call that was no recorded attempt": (
        lambda load, seen: seen.calls.append(call("k2", 2, 30.0, replayed=True)),
        lambda f: f.calls_unrecorded,
    ),
    "a request claimed after the close": (
        lambda load, seen: _request(seen, 4, sent_at=CLOSED_AT + 0.2),
        lambda f: f.sent_after_close,
    ),
    "a second call of an in-flight request after the close": (
        lambda load, seen: _request(
            seen, 4, attempts=2, also=call("k4", 4, CLOSED_AT + 3, replayed=True)
        ),
        lambda f: f.sent_after_close,
    ),
    "a cancelled request reaching the vendor after its cancellation": (
        lambda load, seen: _request(seen, 5, attempts=1, also=call("k5", 5, CLOSED_AT + 0.01)),
        lambda f: f.sent_after_close,
    ),
    "a workflow run that failed": (
        lambda load, seen: seen.runs.append(
            (incident_workflow_id(I2), WorkflowExecutionStatus.FAILED)
        ),
        lambda f: f.workflows_failed,
    ),
    "an incident without its workflow": (
        lambda load, seen: seen.runs.pop(1),
        lambda f: f.incidents_without_workflow,
    ),
    "an event lost": (
        lambda load, seen: seen.stored_keys.pop(),
        lambda f: f.lost,
    ),
    "an event stored twice": (
        lambda load, seen: seen.stored_keys.append("e0"),
        lambda f: f.duplicated,
    ),
    "an event accepted twice": (
        lambda load, seen: load.results.append(
            EventResult(idempotency_key="e0", outcome=Outcome.ACCEPTED)
        ),
        lambda f: f.accepted_twice,
    ),
    "an incident counting an event its signature does not have": (
        lambda load, seen: _incident(seen, I1, event_count=3),
        lambda f: f.event_count_mismatches,
    ),
    "the tenant's audit chain broken": (
        lambda load, seen: _tampered(seen),
        lambda f: f.audit_broken,
    ),
    "a failed event no request row accounts for": (
        lambda load, seen: _request(seen, 1, event_count=2),
        lambda f: f.request_event_mismatches,
    ),
}


@pytest.mark.parametrize("name", sorted(BREAKAGES))
def test_each_breakage_is_named(name: str) -> None:
    load, seen = clean()
    breakage, figure = BREAKAGES[name]
    breakage(load, seen)
    found = check(load, seen)
    assert figure(found) >= 1, found.as_dict()
    with pytest.raises(AssertionError):
        assert_invariants(found)
