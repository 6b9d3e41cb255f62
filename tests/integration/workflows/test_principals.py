"""Who may resume automation through the Temporal door, proven against the vendor's own log.

Promises: an approval or a kill-switch release reaches the vendor only when the worker has
verified a credential signed for exactly that command (namespace access alone cannot approve);
stopping needs none; a plan that is not reversible needs two different principals, and a
switch's activator cannot release it alone. Refusals change nothing and say who may instead.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import text
from temporalio.client import WorkflowUpdateFailedError

from awfdrs.client import AwfdrsClient, KillSwitchRefused
from awfdrs.constants import kill_switch_workflow_id
from awfdrs.contracts import CloseCommand, KillSwitchRequest, KillSwitchSignal
from awfdrs.db.session import tenant_session
from awfdrs.devstack.servers import FlakyVendor, Received
from awfdrs.enums import IncidentStatus, Phase
from awfdrs.signing import (
    ACTIVATE,
    APPROVE,
    IGNORE,
    RELEASE,
    CommandSigner,
    Scope,
    kill_switch_subject,
    new_signing_key,
)
from tests.support.factories import TenantRef
from tests.support.pipeline import Stack, event, eventually
from tests.support.principals import SIGNER


def _irreversible(tenant: TenantRef, key: str, vendor: str) -> dict[str, Any]:
    """A refund: replaying it cannot be undone, so the gate holds it for approval."""
    return event(
        tenant,
        key,
        error={"code": "gateway_timeout", "vendor": vendor},
        retry={"method": "POST", "path": "/v1/refunds", "body": {"key": key}, "reversible": False},
    )


async def _awaiting(
    stack: Stack, tenant: TenantRef, key: str, vendor: str
) -> tuple[uuid.UUID, str]:
    summary = await stack.client.ingest(tenant.id, [_irreversible(tenant, key, vendor)])
    [incident_id] = {c.incident_id for c in summary.incidents}
    waiting = await stack.wait_snapshot(
        incident_id, lambda s: s.phase is Phase.AWAITING_APPROVAL and s.plan is not None
    )
    assert waiting.plan is not None
    return incident_id, waiting.plan.plan_id


def _refunds(vendor: FlakyVendor) -> list[Received]:
    return [r for r in vendor.requests if r.path.startswith("/v1/refunds")]


async def _refused(call: Any) -> str:
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await call
    cause = refused.value.cause
    return str(getattr(cause, "message", None) or cause)


async def test_an_irreversible_plan_needs_two_principals(stack: Stack, vendor: FlakyVendor) -> None:
    tenant = await stack.tenant()
    name = await stack.vendor()
    incident_id, plan_id = await _awaiting(stack, tenant, "refund-1", name)

    first = await stack.client.approve(incident_id, plan_id=plan_id, actor="alice", reason="ok")
    assert first.phase is Phase.AWAITING_APPROVAL
    assert "awaiting a second approver" in first.details
    message = await _refused(stack.client.approve(incident_id, plan_id=plan_id, actor="alice"))
    assert "two-person rule" in message
    assert "anyone but alice" in message
    assert _refunds(vendor) == []  # one person, however insistent, sent nothing

    await stack.client.approve(incident_id, plan_id=plan_id, actor="bob", reason="checked")
    await stack.wait_status(tenant, incident_id, IncidentStatus.RESOLVED)
    assert len(_refunds(vendor)) == 1
    approval = [d for d in await stack.decisions(tenant, incident_id) if d.decided_by]
    assert [d.decided_by for d in approval] == ["bob"]
    assert "approved by alice and bob" in approval[0].reasoning


async def test_the_rule_can_be_turned_off_per_tenant(stack: Stack, vendor: FlakyVendor) -> None:
    tenant = await stack.tenant(two_person_rule=False)
    name = await stack.vendor()
    incident_id, plan_id = await _awaiting(stack, tenant, "refund-1", name)
    await stack.client.approve(incident_id, plan_id=plan_id, actor="alice")
    await stack.wait_status(tenant, incident_id, IncidentStatus.RESOLVED)
    assert len(_refunds(vendor)) == 1


async def test_an_approval_without_a_valid_credential_is_refused(
    stack: Stack, vendor: FlakyVendor
) -> None:
    tenant = await stack.tenant(two_person_rule=False)
    name = await stack.vendor()
    incident_id, plan_id = await _awaiting(stack, tenant, "refund-1", name)
    # Someone with access to the namespace only: no signing key.
    bare = AwfdrsClient(stack.client.temporal, stack.client.task_queue)
    forged = CommandSigner(new_signing_key()).sign(
        Scope(tenant.id, APPROVE, str(incident_id), plan_id), "mallory"
    )
    other_plan = SIGNER.sign(Scope(tenant.id, APPROVE, str(incident_id), "plan-other"), "mallory")
    expired = SIGNER.sign(Scope(tenant.id, APPROVE, str(incident_id), plan_id), "mallory", ttl=-5)
    cases = {
        None: "needs a signed credential",
        forged: "not valid",
        other_plan: "signed for another plan",
        expired: "expired",
    }
    for credential, why in cases.items():
        message = await _refused(
            bare.approve(incident_id, plan_id=plan_id, actor="mallory", credential=credential)
        )
        assert why in message, message
    still = await stack.client.snapshot(incident_id)
    assert still.phase is Phase.AWAITING_APPROVAL
    assert _refunds(vendor) == []
    # The principal recorded is the credential's, whatever the body says.
    signed = SIGNER.sign(Scope(tenant.id, APPROVE, str(incident_id), plan_id), "carol")
    await bare.approve(incident_id, plan_id=plan_id, actor="mallory", credential=signed)
    await stack.wait_status(tenant, incident_id, IncidentStatus.RESOLVED)
    approval = [d for d in await stack.decisions(tenant, incident_id) if d.decided_by]
    assert [d.decided_by for d in approval] == ["carol"]


async def test_the_temporal_door_may_stop_but_not_resume(stack: Stack, vendor: FlakyVendor) -> None:
    tenant = await stack.tenant()
    name = await stack.vendor()
    handle_id = kill_switch_workflow_id(tenant.id)
    bare = AwfdrsClient(stack.client.temporal, stack.client.task_queue)
    # A kill switch from the Temporal side, with no credential: it stops automation.
    stopped = await bare.activate_kill_switch(tenant.id, reason="ui", activated_by="temporal-ui")
    assert stopped.outcome == "applied"
    [switch] = (await stack.client.kill_switches(tenant.id)).active
    assert switch.activated_by == "temporal:temporal-ui"  # said at the door, not a principal
    summary = await stack.client.ingest(
        tenant.id,
        [
            event(
                tenant,
                "charge-1",
                error={"code": "gateway_timeout", "vendor": name},
                retry={"method": "POST", "path": "/v1/refunds", "body": {}, "reversible": True},
            )
        ],
    )
    [incident_id] = {c.incident_id for c in summary.incidents}
    await stack.wait_snapshot(incident_id, lambda s: s.phase is Phase.HELD)

    with pytest.raises(KillSwitchRefused, match="needs a signed credential"):
        await bare.release_kill_switch(tenant.id, released_by="temporal-ui")
    assert len((await stack.client.kill_switches(tenant.id)).active) == 1
    assert _refunds(vendor) == []

    await stack.client.release_kill_switch(tenant.id, released_by="ops-lead")
    await stack.wait_status(tenant, incident_id, IncidentStatus.RESOLVED)
    assert len(_refunds(vendor)) == 1
    assert handle_id  # the switch lived in its tenant's kill-switch workflow


async def test_an_activator_cannot_release_alone(stack: Stack) -> None:
    tenant = await stack.tenant()
    await stack.client.activate_kill_switch(tenant.id, reason="incident 42", activated_by="alice")
    with pytest.raises(KillSwitchRefused, match="anyone but alice"):
        await stack.client.release_kill_switch(tenant.id, released_by="alice")
    assert len((await stack.client.kill_switches(tenant.id)).active) == 1
    released = await stack.client.release_kill_switch(tenant.id, released_by="bob")
    assert released.outcome == "applied"

    async def released_by() -> str | None:
        async with tenant_session(stack.sessions, tenant.id) as session:
            query = text("SELECT activated_by, released_by FROM kill_switches")
            row = (await session.execute(query)).one_or_none()
            return f"{row[0]}/{row[1]}" if row else None

    assert await eventually(released_by, 5, "the switch's row") == "alice/bob"


async def test_anyone_may_stop_an_incident_but_only_a_credential_names_a_principal(
    stack: Stack,
) -> None:
    bare = AwfdrsClient(stack.client.temporal, stack.client.task_queue)
    opened: list[tuple[TenantRef, uuid.UUID]] = []
    for _ in range(3):  # one incident each: a declined card waits for a person
        tenant = await stack.tenant()
        declined = event(tenant, "d-1", error={"code": "card_declined"})
        summary = await stack.client.ingest(tenant.id, [declined])
        opened.append((tenant, summary.incidents[0].incident_id))
    for _, incident_id in opened:
        await stack.wait_snapshot(incident_id, lambda s: s.phase is Phase.AWAITING_OPERATOR)
    (tenant, typed), (forged_tenant, forged), (signed_tenant, signed) = opened

    # Namespace access alone: the close happens, its actor is marked as only typed.
    await bare.resolve(typed, actor="dave", reason="fixed the BIN table")
    closed = await stack.wait_status(tenant, typed, IncidentStatus.RESOLVED)
    assert closed.resolution == "resolved by temporal:dave: fixed the BIN table"
    # A credential that does not verify never blocks a stop; it names nobody either.
    fake = CommandSigner(new_signing_key()).sign(
        Scope(forged_tenant.id, IGNORE, str(forged)), "dave"
    )
    await bare.temporal.get_workflow_handle(f"incident-{forged}").execute_update(
        "ignore", CloseCommand(actor="dave", reason="noise", credential=fake)
    )
    stopped = await stack.wait_status(forged_tenant, forged, IncidentStatus.IGNORED)
    assert stopped.resolution == "ignored by temporal:dave: noise"
    # Signed for dave: dave, a principal.
    await stack.client.ignore(signed, actor="dave", reason="noise")
    ignored = await stack.wait_status(signed_tenant, signed, IncidentStatus.IGNORED)
    assert ignored.resolution == "ignored by dave: noise"


async def test_a_release_credential_is_spent_once(stack: Stack) -> None:
    """A token read out of the kill-switch workflow's history cannot release a later switch."""
    tenant = await stack.tenant()
    bare = AwfdrsClient(stack.client.temporal, stack.client.task_queue)
    await stack.client.activate_kill_switch(tenant.id, reason="first", activated_by="alice")
    token = SIGNER.sign(Scope(tenant.id, RELEASE, kill_switch_subject(None, None)), "bob")
    released = await bare.release_kill_switch(tenant.id, released_by="bob", credential=token)
    assert released.outcome == "applied"
    await stack.client.activate_kill_switch(tenant.id, reason="again", activated_by="carol")
    with pytest.raises(KillSwitchRefused, match="already used"):
        await bare.release_kill_switch(tenant.id, released_by="mallory", credential=token)
    # The very signal copied from the history, request id and all, once the workflow has
    # forgotten that id (fifty junk requests push it out of the list it keeps).
    handle = bare.temporal.get_workflow_handle(kill_switch_workflow_id(tenant.id))
    for n in range(55):
        await handle.signal("release", KillSwitchSignal(request_id=f"junk-{n}"))
    replay = KillSwitchSignal(
        request_id=released.request_id, released_by="mallory", credential=token
    )
    await handle.signal("release", replay)

    async def answered() -> KillSwitchRequest | None:
        for request in (await stack.client.kill_switches(tenant.id)).requests:
            if request.request_id == released.request_id and request.outcome != "pending":
                return request
        return None

    replayed = await eventually(answered, 15, "the replayed release handled")
    assert replayed.outcome == "refused"
    assert "already used" in replayed.message
    [still] = (await stack.client.kill_switches(tenant.id)).active
    assert (still.reason, still.activated_by) == ("again", "carol")


async def test_a_refused_release_uses_its_credential_up(stack: Stack) -> None:
    """A release the two-person rule refused cannot be replayed once the rule no longer
    stands in its way (another switch, activated by someone else)."""
    tenant = await stack.tenant()
    bare = AwfdrsClient(stack.client.temporal, stack.client.task_queue)
    await stack.client.activate_kill_switch(tenant.id, reason="bob's", activated_by="bob")
    token = SIGNER.sign(Scope(tenant.id, RELEASE, kill_switch_subject(None, None)), "bob")
    with pytest.raises(KillSwitchRefused, match="two-person rule"):
        await bare.release_kill_switch(tenant.id, released_by="bob", credential=token)
    await stack.client.release_kill_switch(tenant.id, released_by="alice")
    await stack.client.activate_kill_switch(tenant.id, reason="dave's", activated_by="dave")
    with pytest.raises(KillSwitchRefused, match="already used"):
        await bare.release_kill_switch(tenant.id, released_by="bob", credential=token)
    [still] = (await stack.client.kill_switches(tenant.id)).active
    assert still.activated_by == "dave"
    # An activation's token replayed is a stop all the same, but it names nobody.
    stop = SIGNER.sign(Scope(tenant.id, ACTIVATE, kill_switch_subject(None, None)), "bob")
    await bare.activate_kill_switch(tenant.id, reason="x", activated_by="bob", credential=stop)
    await bare.activate_kill_switch(tenant.id, reason="y", activated_by="eve", credential=stop)
    active = (await stack.client.kill_switches(tenant.id)).active
    actors = {s.reason: s.activated_by for s in active}
    assert (actors["x"], actors["y"]) == ("bob", "temporal:eve")


async def test_a_stop_whose_credential_expired_still_stops(stack: Stack) -> None:
    """A signed activation the worker reaches only after its credential expired (the worker
    was down) is applied, with the name as typed."""
    tenant = await stack.tenant()
    bare = AwfdrsClient(stack.client.temporal, stack.client.task_queue)
    late = SIGNER.sign(Scope(tenant.id, ACTIVATE, kill_switch_subject(None, None)), "bob", ttl=-1)
    done = await bare.activate_kill_switch(
        tenant.id, reason="vendor double-charging", activated_by="bob", credential=late
    )
    assert done.outcome == "applied"
    [switch] = (await stack.client.kill_switches(tenant.id)).active
    assert switch.activated_by == "temporal:bob"
