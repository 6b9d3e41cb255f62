"""The incident lifecycle end to end, against a real local vendor and escalation receiver."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError

from awfdrs.contracts import IncidentSnapshot
from awfdrs.db.repositories import ActionRepository, DecisionRepository, RequestRepository
from awfdrs.db.session import tenant_session
from awfdrs.devstack.servers import EscalationReceiver, FlakyVendor, Script
from awfdrs.enums import (
    ActionStatus,
    ActionType,
    ErrorClass,
    GateControl,
    IncidentStatus,
    Phase,
    RequestStatus,
)
from tests.support.factories import TenantRef
from tests.support.pipeline import Stack, event, eventually, retryable


async def _open(stack: Stack, tenant: TenantRef, *events: dict[str, Any]) -> uuid.UUID:
    summary = await stack.client.ingest(tenant.id, list(events))
    [incident_id] = {c.incident_id for c in summary.incidents}
    return incident_id


def _retryable(tenant: TenantRef, key: str, vendor: str, **extra: Any) -> dict[str, Any]:
    return event(
        tenant,
        key,
        error={"code": "gateway_timeout", "vendor": vendor},
        retry={"method": "POST", "path": "/v1/charges", "body": {"amount": 42}, "reversible": True},
        **extra,
    )


async def _decisions(stack: Stack, tenant: TenantRef, incident_id: uuid.UUID) -> list[Any]:
    async with tenant_session(stack.sessions, tenant.id) as session:
        return list(
            await DecisionRepository(session, tenant_id=tenant.id).list_for_incident(incident_id)
        )


async def _requests(stack: Stack, tenant: TenantRef, incident_id: uuid.UUID) -> list[Any]:
    async with tenant_session(stack.sessions, tenant.id) as session:
        return list(
            await RequestRepository(session, tenant_id=tenant.id).list_for_incident(incident_id)
        )


async def _actions(stack: Stack, tenant: TenantRef, incident_id: uuid.UUID) -> list[Any]:
    async with tenant_session(stack.sessions, tenant.id) as session:
        return list(
            await ActionRepository(session, tenant_id=tenant.id).list_for_incident(incident_id)
        )


async def test_transient_failure_retry_with_idempotency_key_then_resolved(
    stack: Stack, vendor: FlakyVendor
) -> None:
    vendor.script = Script(statuses=[503])
    tenant = await stack.tenant()
    name = await stack.vendor()
    incident_id = await _open(stack, tenant, _retryable(tenant, "k-1", name))
    resolved = await stack.wait_status(tenant, incident_id, IncidentStatus.RESOLVED)
    assert resolved.resolution is not None
    assert "no new failures" in resolved.resolution

    [decision] = await _decisions(stack, tenant, incident_id)
    assert decision.decision_type is ActionType.RETRY
    assert decision.ai_model == "awfdrs-rules/1"
    assert decision.classification is ErrorClass.TRANSIENT
    assert decision.confidence_score == pytest.approx(0.81)
    assert "gateway" in decision.reasoning
    assert decision.gate is None

    [action] = await _actions(stack, tenant, incident_id)
    assert action.status is ActionStatus.SUCCEEDED
    assert action.attempts == 2
    assert action.started_at <= action.finished_at
    [request] = await _requests(stack, tenant, incident_id)
    assert request.status is RequestStatus.SUCCEEDED
    assert request.attempts == 2
    assert request.last_status_code == 200
    calls = [r for r in vendor.requests if r.path == "/v1/charges"]
    assert [r.status for r in calls] == [503, 200]
    # The key belongs to the request (tenant + failed event), not to the action.
    assert {r.idempotency_key for r in calls} == {request.idempotency_key}
    assert request.idempotency_key.startswith("awfdrs-")
    assert calls[-1].body == {"amount": 42}
    assert vendor.executions()[request.idempotency_key] == 1


async def test_recovery_evidence_after_the_retry_resolves_at_once(
    stack: Stack, vendor: FlakyVendor
) -> None:
    tenant = await stack.tenant(verification_window_seconds=600)
    name = await stack.vendor()
    failure = {**_retryable(tenant, "k-1", name), "correlation_id": "order-1"}
    incident_id = await _open(stack, tenant, failure)
    await stack.wait_snapshot(incident_id, lambda s: s.phase is Phase.VERIFYING)
    # A success of the same operation for another order proves nothing about this one.
    other = {**event(tenant, "ok-2", "payment.succeeded"), "correlation_id": "order-2"}
    await stack.client.ingest(tenant.id, [other])
    await asyncio.sleep(1.0)
    assert (await stack.incident(tenant, incident_id)).status is IncidentStatus.ACTIONED
    own = {**event(tenant, "ok-1", "payment.succeeded"), "correlation_id": "order-1"}
    await stack.client.ingest(tenant.id, [own])
    resolved = await stack.wait_status(tenant, incident_id, IncidentStatus.RESOLVED, within=10)
    assert resolved.resolution is not None
    assert "succeeded again" in resolved.resolution


async def test_permanent_failure_escalates_to_the_webhook(
    stack: Stack, receiver: EscalationReceiver
) -> None:
    receiver.fail_first = 1  # the first delivery fails: the retry must still deliver once
    tenant = await stack.tenant()
    incident_id = await _open(
        stack,
        tenant,
        event(tenant, "k-1", error={"code": "card_declined", "message": "Do not honour"}),
        event(tenant, "k-2", error={"code": "card_declined", "message": "Do not honour"}),
    )
    await stack.wait_snapshot(incident_id, lambda s: s.phase is Phase.AWAITING_OPERATOR)
    [body] = receiver.events()
    assert body["routing_key"] == "rk-test"
    assert body["event_action"] == "trigger"
    assert body["dedup_key"] == str(incident_id)
    payload = body["payload"]
    assert payload["severity"] == "error"
    assert payload["source"] == f"awfdrs/{tenant.name}/payments"
    assert "card_declined" in payload["summary"]
    details = payload["custom_details"]
    assert details["event_count"] == 2
    assert len(details["signature"]) == 64
    assert details["decision"]["type"] == "escalate"
    assert details["decision"]["ai_model"] == "awfdrs-rules/1"
    assert "Permanent" in details["decision"]["reasoning"]
    # What on-call needs: the error and each affected request (two events, two requests).
    assert details["error"]["code"] == "card_declined"
    assert details["request_counts"]["total"] == 2
    assert len(details["requests"]) == 2
    assert all(r["replayable"] is False for r in details["requests"])
    incident = await stack.incident(tenant, incident_id)
    assert incident.status is IncidentStatus.ACTIONED
    assert incident.phase is Phase.AWAITING_OPERATOR
    rows = await _requests(stack, tenant, incident_id)
    assert {r.status for r in rows} == {RequestStatus.HANDED_OVER}


async def test_manual_hand_over_waits_for_an_operator_resolve(
    stack: Stack, receiver: EscalationReceiver
) -> None:
    tenant = await stack.tenant()
    # Transient, but with no request to replay: a human has to do it.
    incident_id = await _open(stack, tenant, event(tenant, "k-1", error={"code": "timeout"}))
    await stack.wait_snapshot(incident_id, lambda s: s.phase is Phase.AWAITING_OPERATOR)
    [action] = await _actions(stack, tenant, incident_id)
    assert action.action_type is ActionType.MANUAL
    assert action.status is ActionStatus.SUCCEEDED  # the hand-over page was delivered
    [page] = receiver.events()
    assert page["payload"]["custom_details"]["kind"] == "manual"
    snapshot = await stack.client.resolve(incident_id, actor="alice", reason="replayed by hand")
    assert snapshot.status is IncidentStatus.RESOLVED
    incident = await stack.incident(tenant, incident_id)
    assert incident.status is IncidentStatus.RESOLVED
    assert incident.resolution == "resolved by alice: replayed by hand"


async def test_low_confidence_waits_then_approval_acts(stack: Stack, vendor: FlakyVendor) -> None:
    tenant = await stack.tenant(confidence_threshold=0.95)
    name = await stack.vendor()
    incident_id = await _open(stack, tenant, _retryable(tenant, "k-1", name))
    held = await stack.wait_snapshot(incident_id, lambda s: s.phase is Phase.AWAITING_APPROVAL)
    assert held.status is IncidentStatus.ANALYZING
    assert held.plan is not None
    assert held.waiting_for == f"approval of {held.plan.plan_id}"
    assert "confidence 0.81 is below the tenant's threshold 0.95" in held.details
    [decision] = await _decisions(stack, tenant, incident_id)
    assert decision.gate == "confidence"
    assert await _actions(stack, tenant, incident_id) == []
    assert vendor.requests == []
    incident = await stack.incident(tenant, incident_id)
    assert (incident.phase, incident.held_by) == (Phase.AWAITING_APPROVAL, GateControl.CONFIDENCE)

    approved = await stack.client.approve(
        incident_id, plan_id=held.plan.plan_id, actor="alice", reason="vendor is back"
    )
    assert approved.decisions[-1].decided_by == "alice"
    await stack.wait_status(tenant, incident_id, IncidentStatus.RESOLVED)
    decisions = await _decisions(stack, tenant, incident_id)
    assert [(d.decision_type, d.decided_by) for d in decisions] == [
        (ActionType.RETRY, None),
        (ActionType.RETRY, "alice"),
    ]
    assert decisions[1].reasoning.startswith(
        f"approved by alice: vendor is back (plan {held.plan.plan_id}: retry 1 request"
    )
    assert len(vendor.executions()) == 1


async def test_irreversible_retry_waits_and_rejection_escalates(
    stack: Stack, vendor: FlakyVendor, receiver: EscalationReceiver
) -> None:
    tenant = await stack.tenant()
    name = await stack.vendor()
    irreversible = event(
        tenant,
        "k-1",
        error={"code": "gateway_timeout", "vendor": name},
        retry={"method": "POST", "path": "/v1/transfers"},
    )
    incident_id = await _open(stack, tenant, irreversible)
    held = await stack.wait_snapshot(incident_id, lambda s: s.phase is Phase.AWAITING_APPROVAL)
    assert "not reversible" in held.details
    assert held.plan is not None
    await stack.client.reject(
        incident_id, plan_id=held.plan.plan_id, actor="bob", reason="would double-pay"
    )
    await stack.wait_snapshot(incident_id, lambda s: s.phase is Phase.AWAITING_OPERATOR)
    [action] = await _actions(stack, tenant, incident_id)
    assert action.action_type is ActionType.ESCALATE
    assert vendor.requests == []
    [body] = receiver.events()
    assert body["payload"]["custom_details"]["decision"]["decided_by"] == "bob"


async def test_ignore_closes_and_later_failures_count_on_it(stack: Stack) -> None:
    tenant = await stack.tenant(grouping_window_seconds=60)
    first = event(tenant, "k-1", error={"code": "card_declined"})
    incident_id = await _open(stack, tenant, first)
    snapshot = await stack.client.ignore(incident_id, actor="carol", reason="test merchant")
    assert snapshot.status is IncidentStatus.IGNORED
    summary = await stack.client.ingest(
        tenant.id, [event(tenant, "k-2", error={"code": "card_declined"})]
    )
    [change] = summary.incidents
    assert (change.incident_id, change.opened, change.status) == (
        incident_id,
        False,
        IncidentStatus.IGNORED,
    )
    incident = await stack.incident(tenant, incident_id)
    assert incident.event_count == 2
    assert incident.resolution == "ignored by carol: test merchant"
    assert len(await stack.incidents(tenant)) == 1


async def test_a_failure_after_resolution_opens_a_linked_regression(stack: Stack) -> None:
    tenant = await stack.tenant(grouping_window_seconds=60)
    first = await _open(stack, tenant, event(tenant, "k-1", error={"code": "card_declined"}))
    await stack.client.resolve(first, actor="dave", reason="fixed the BIN table")
    again = await stack.client.ingest(
        tenant.id, [event(tenant, "k-2", error={"code": "card_declined"})]
    )
    [change] = again.incidents
    assert change.opened
    assert change.regression_of == first
    snapshot = await stack.wait_snapshot(change.incident_id, lambda s: s.phase == "grouping")
    assert snapshot.status is IncidentStatus.NEW


async def test_invalid_updates_are_refused_with_their_reason(stack: Stack) -> None:
    tenant = await stack.tenant(grouping_window_seconds=60)
    incident_id = await _open(stack, tenant, event(tenant, "k-1", error={"code": "card_declined"}))
    await stack.wait_snapshot(incident_id, lambda s: s.phase == "grouping")
    with pytest.raises(WorkflowUpdateFailedError) as caught:
        await stack.client.approve(incident_id, plan_id="plan-0000000000000000", actor="alice")
    assert "is not waiting for approval (grouping)" in str(caught.value.cause)
    handle = stack.client.incident(incident_id)
    with pytest.raises(WorkflowUpdateFailedError):
        await handle.execute_update("resolve", {"actor": "alice", "reason": ""})
    with pytest.raises(WorkflowUpdateFailedError):
        await handle.execute_update("ignore", {"reason": "no actor"})
    await stack.client.resolve(incident_id, actor="alice", reason="done")
    with pytest.raises((WorkflowUpdateFailedError, RPCError)) as twice:
        await stack.client.resolve(incident_id, actor="alice", reason="twice")
    # Refused by the handler (the workflow is finishing) or by Temporal (it has completed).
    said = f"{twice.value} {getattr(twice.value, 'cause', '')}"
    assert re.search(r"already RESOLVED|already completed|not found", said), said
    assert (await stack.incident(tenant, incident_id)).status is IncidentStatus.RESOLVED


async def test_recovery_inside_the_grouping_window_resolves_as_transient(
    stack: Stack, vendor: FlakyVendor
) -> None:
    tenant = await stack.tenant(grouping_window_seconds=3)
    incident_id = await _open(stack, tenant, event(tenant, "k-1", error={"code": "timeout"}))
    await stack.client.ingest(tenant.id, [event(tenant, "k-2", "payment.completed")])
    incident = await stack.wait_status(tenant, incident_id, IncidentStatus.RESOLVED, within=10)
    assert (
        incident.resolution
        == "transient: the 1 failed request recovered within the grouping window"
    )
    [request] = await _requests(stack, tenant, incident_id)
    assert request.status is RequestStatus.RECOVERED
    assert await _decisions(stack, tenant, incident_id) == []
    assert vendor.requests == []


async def test_failures_after_the_action_reanalyse_then_escalate(
    stack: Stack, vendor: FlakyVendor, receiver: EscalationReceiver
) -> None:
    tenant = await stack.tenant(verification_window_seconds=1.5, max_attempts=2)
    name = await stack.vendor()
    incident_id = await _open(stack, tenant, retryable(tenant, "k-1", name))

    def verifying(done: int) -> Callable[[IncidentSnapshot], bool]:
        return lambda snapshot: len(snapshot.actions) == done and snapshot.phase == "verifying"

    await stack.wait_snapshot(incident_id, verifying(1))
    await stack.client.ingest(tenant.id, [retryable(tenant, "again-1", name)])
    # The first round did not stop the failures: the second is judged less likely to work.
    held = await stack.wait_snapshot(incident_id, lambda s: s.phase is Phase.AWAITING_APPROVAL)
    assert held.plan is not None
    assert held.plan.request_count == 1
    await stack.client.approve(
        incident_id, plan_id=held.plan.plan_id, actor="alice", reason="one more try"
    )
    await stack.wait_snapshot(incident_id, verifying(2))
    await stack.client.ingest(tenant.id, [retryable(tenant, "again-2", name)])
    await stack.wait_snapshot(incident_id, lambda s: s.phase is Phase.AWAITING_OPERATOR, within=20)

    decisions = await _decisions(stack, tenant, incident_id)
    assert [(d.decision_type, d.attempt, d.ai_model) for d in decisions] == [
        (ActionType.RETRY, 1, "awfdrs-rules/1"),
        (ActionType.RETRY, 2, "awfdrs-rules/1"),
        (ActionType.RETRY, 2, "operator"),
        (ActionType.ESCALATE, 2, "awfdrs-policy/1"),
    ]
    assert decisions[1].confidence_score < decisions[0].confidence_score
    assert decisions[1].gate == "confidence"
    assert "0 of 1 earlier retries" in decisions[1].reasoning
    assert "2 rounds did not stop the failures" in decisions[3].reasoning
    assert len(vendor.executions()) == 2  # k-1 and again-1, each once, each its own key
    assert len(receiver.events()) == 1
    rows = {r.body["key"]: r.status for r in await _requests(stack, tenant, incident_id)}
    assert rows == {
        "k-1": RequestStatus.SUCCEEDED,
        "again-1": RequestStatus.SUCCEEDED,
        "again-2": RequestStatus.HANDED_OVER,
    }


async def test_a_request_failing_again_after_its_replay_succeeded_is_never_sent_twice(
    stack: Stack, vendor: FlakyVendor, receiver: EscalationReceiver
) -> None:
    tenant = await stack.tenant(verification_window_seconds=30)
    name = await stack.vendor()
    incident_id = await _open(stack, tenant, _retryable(tenant, "k-1", name))
    await stack.wait_snapshot(incident_id, lambda s: s.phase is Phase.VERIFYING)
    # The same request (same vendor, method, path, body) reported failing again.
    await stack.client.ingest(tenant.id, [_retryable(tenant, "k-2", name)])
    await stack.wait_snapshot(incident_id, lambda s: s.phase is Phase.AWAITING_OPERATOR)
    assert len(vendor.requests) == 1
    [request] = await _requests(stack, tenant, incident_id)
    assert request.status is RequestStatus.HANDED_OVER
    assert request.event_count == 2
    [page] = receiver.events()
    [listed] = page["payload"]["custom_details"]["requests"]
    assert "failed again" in listed["note"] or "handed over" in listed["note"]


async def test_raised_severity_reaches_the_workflow_and_its_search_attributes(
    stack: Stack,
) -> None:
    tenant = await stack.tenant(grouping_window_seconds=60)
    warning = {**event(tenant, "k-1", error={"code": "card_declined"}), "severity": "warning"}
    incident_id = await _open(stack, tenant, warning)
    await stack.wait_snapshot(incident_id, lambda s: s.phase == "grouping")
    critical = {**event(tenant, "k-2", error={"code": "card_declined"}), "severity": "critical"}
    await stack.client.ingest(tenant.id, [critical])
    raised = await stack.wait_snapshot(incident_id, lambda s: s.severity.value == "critical")
    assert raised.status is IncidentStatus.NEW
    query = f'AwfdrsTenant = "{tenant.id}" AND AwfdrsSeverity = "critical" AND AwfdrsStatus = "NEW"'

    async def listed() -> list[str] | None:
        ids = [w.id async for w in stack.client.temporal.list_workflows(query)]
        return ids or None

    assert await eventually(listed, 10, "visibility to show the raised severity") == [
        f"incident-{incident_id}"
    ]
    history = await stack.client.incident(incident_id).fetch_history()
    signals = [
        e for e in history.events if e.HasField("workflow_execution_signaled_event_attributes")
    ]
    # Opened by a plain (eager) start with nothing to tell; one signal for the raise. Not one
    # per event.
    assert len(signals) == 1
