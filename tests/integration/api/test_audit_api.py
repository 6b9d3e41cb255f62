"""GET /v1/audit and /v1/audit/verify on the API as a real process: the key's tenant's chain
only, for readers only."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from awfdrs.api.keys import Role, create_key, revoke_key
from awfdrs.db.repositories import AuditRepository
from awfdrs.db.session import tenant_session
from awfdrs.devstack.servers import FlakyVendor
from awfdrs.enums import IncidentStatus, Phase
from tests.integration.api.test_operator import keys_for, only_incident, open_incident
from tests.support.factories import make_tenant
from tests.support.pipeline import Stack, event, eventually

Sessions = async_sessionmaker[AsyncSession]


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def task_queue(api_queue: str) -> str:
    """The in-process worker (fixture ``stack``) polls the API process's queue."""
    return api_queue


async def test_readers_page_through_and_verify_their_own_chain(
    http: httpx.AsyncClient, committed_sessions: Sessions, owner_engine: AsyncEngine
) -> None:
    tenant = await make_tenant(committed_sessions)
    other = await make_tenant(committed_sessions)
    for n in range(5):
        async with tenant_session(committed_sessions, tenant.id) as session:
            await AuditRepository(session, tenant_id=tenant.id).record_command(
                "alice", f"cmd-{n}", ("incident", uuid.uuid4()), {"n": n}
            )
    viewer, _ = await create_key(committed_sessions, tenant.id, Role.VIEWER, name="vera")
    ingest, _ = await create_key(committed_sessions, tenant.id, Role.INGEST, name="svc")
    revoked, info = await create_key(committed_sessions, tenant.id, Role.ADMIN, name="gone")
    await revoke_key(committed_sessions, str(info.id))
    foreign, _ = await create_key(committed_sessions, other.id, Role.OPERATOR, name="eve")

    first = await http.get("/v1/audit", params={"limit": 3}, headers=auth(viewer))
    assert first.status_code == 200, first.text
    page = first.json()
    assert [r["seq"] for r in page["items"]] == [1, 2, 3]
    assert page["next_after"] == 3
    assert page["items"][0]["body"] == {"command": "cmd-0", "args": {"n": 0}}
    assert page["items"][0]["tenant_id"] == str(tenant.id)
    rest = await http.get("/v1/audit", params={"after": 3}, headers=auth(viewer))
    assert [r["seq"] for r in rest.json()["items"]] == [4, 5]
    assert rest.json()["next_after"] is None

    verdict = await http.get("/v1/audit/verify", headers=auth(viewer))
    assert verdict.status_code == 200
    assert verdict.json()["intact"] is True
    head = rest.json()["items"][-1]["hash"]
    assert verdict.json()["summary"] == f"chain intact: 5 rows, head {head}"

    for key, status in ((ingest, 403), (revoked, 401), ("awfdrs_nonsense", 401)):
        for path in ("/v1/audit", "/v1/audit/verify"):
            refused = await http.get(path, headers=auth(key))
            assert refused.status_code == status, (path, refused.text)
            assert "items" not in refused.json()
    # Another tenant's key sees its own (empty) chain, never this one.
    theirs = await http.get("/v1/audit", headers=auth(foreign))
    assert theirs.json() == {"items": [], "next_after": None}
    assert (await http.get("/v1/audit/verify", headers=auth(foreign))).json()["rows"] == 0

    async with owner_engine.begin() as connection:
        await connection.execute(text("SET LOCAL session_replication_role = replica"))
        await connection.execute(
            text("UPDATE audit_log SET actor = 'mallory' WHERE tenant_id = :t AND seq = 4"),
            {"t": tenant.id},
        )
    broken = (await http.get("/v1/audit/verify", headers=auth(viewer))).json()
    assert broken["intact"] is False
    assert (broken["broken"]["seq"], broken["broken"]["reason"]) == (4, "hash")
    assert broken["broken"]["id"] == rest.json()["items"][0]["id"]


async def test_the_openapi_document_describes_the_audit_routes(http: httpx.AsyncClient) -> None:
    paths = (await http.get("/openapi.json")).json()["paths"]
    for path, model in [("/v1/audit", "AuditPage"), ("/v1/audit/verify", "AuditVerdict")]:
        operation = paths[path]["get"]
        assert operation["security"] == [{"bearer": []}]
        schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
        assert schema["$ref"].endswith(f"/{model}"), (path, schema)
        assert {"401", "403"} <= set(operation["responses"])


async def test_a_command_through_the_api_is_recorded_with_the_keys_name(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    tenant, incident_id = await open_incident(stack)
    keys = await keys_for(stack, tenant, operator_name="olga-oncall")
    done = await http.post(
        f"/v1/incidents/{incident_id}/resolve",
        json={"reason": "handled by hand"},
        headers=auth(keys.operator),
    )
    assert done.status_code == 200, done.text

    async def recorded() -> list[dict[str, object]] | None:
        page = await http.get("/v1/audit", params={"limit": 1000}, headers=auth(keys.viewer))
        rows: list[dict[str, object]] = page.json()["items"]
        kinds = {r["kind"] for r in rows}
        return rows if {"operator.command", "incident.closed"} <= kinds else None

    rows = await eventually(recorded, 15, "the command and the closure in the audit")
    [command] = [r for r in rows if r["kind"] == "operator.command"]
    assert (command["actor"], command["subject_type"], command["subject_id"]) == (
        "olga-oncall", "incident", str(incident_id),
    )  # fmt: skip
    assert command["body"] == {"command": "resolve", "args": {"reason": "handled by hand"}}
    [closed] = [r for r in rows if r["kind"] == "incident.closed"]
    assert closed["body"]["resolution"] == "resolved by olga-oncall: handled by hand"  # type: ignore[index]
    verdict = await http.get("/v1/audit/verify", headers=auth(keys.viewer))
    assert verdict.json()["intact"] is True
    # A refused command (the incident is closed now) adds no operator.command row.
    again = await http.post(
        f"/v1/incidents/{incident_id}/resolve", json={"reason": "twice"},
        headers=auth(keys.operator),
    )  # fmt: skip
    assert again.status_code == 409
    later = await http.get("/v1/audit", params={"limit": 1000}, headers=auth(keys.viewer))
    assert [r["kind"] for r in later.json()["items"]].count("operator.command") == 1


async def test_two_principals_approving_an_irreversible_plan_are_both_recorded(
    stack: Stack, http: httpx.AsyncClient, vendor: FlakyVendor
) -> None:
    tenant = await stack.tenant()
    name = await stack.vendor()
    refund = event(
        tenant,
        "refund-1",
        error={"code": "gateway_timeout", "vendor": name},
        retry={"method": "POST", "path": "/v1/refunds", "body": {}, "reversible": False},
    )
    await stack.client.ingest(tenant.id, [refund])
    incident_id = await only_incident(stack, tenant)
    waiting = await stack.wait_snapshot(
        incident_id, lambda s: s.phase is Phase.AWAITING_APPROVAL and s.plan is not None
    )
    assert waiting.plan is not None
    keys = await keys_for(stack, tenant, operator_name="alice")
    bob, _ = await create_key(stack.sessions, tenant.id, Role.OPERATOR, name="bob")
    path = f"/v1/incidents/{incident_id}/approve"
    body = {"plan_id": waiting.plan.plan_id, "reason": "refund owed"}

    first = await http.post(path, json=body, headers=auth(keys.operator))
    assert first.status_code == 200, first.text
    assert "awaiting a second approver" in first.json()["details"]
    alone = await http.post(path, json=body, headers=auth(keys.operator))
    assert alone.status_code == 409
    assert "anyone but alice" in alone.json()["message"]
    assert "bob (operator)" in alone.json()["message"]
    assert not [r for r in vendor.requests if r.path.startswith("/v1/refunds")]

    second = await http.post(path, json=body, headers=auth(bob))
    assert second.status_code == 200, second.text
    await stack.wait_status(tenant, incident_id, IncidentStatus.RESOLVED)
    assert len([r for r in vendor.requests if r.path.startswith("/v1/refunds")]) == 1

    async def recorded() -> list[dict[str, Any]] | None:
        page = await http.get("/v1/audit", params={"limit": 1000}, headers=auth(keys.viewer))
        rows: list[dict[str, Any]] = page.json()["items"]
        approved = [r for r in rows if r["kind"] == "decision.recorded" and "alice and bob"
                    in str(r["body"])]  # fmt: skip
        return rows if approved else None

    rows = await eventually(recorded, 15, "the approval's decision in the audit")
    commands = [(r["actor"], r["body"]["command"]) for r in rows if r["kind"] == "operator.command"]
    assert commands == [("alice", "approve"), ("bob", "approve")]
    assert (await http.get("/v1/audit/verify", headers=auth(keys.viewer))).json()["intact"]
