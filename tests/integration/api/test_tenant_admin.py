"""A tenant's admin key manages that tenant's keys and settings over HTTP, and nothing else.

Promises: only an admin key of the tenant may list, create or revoke its keys or change its
settings; every other key (viewer, operator, ingest, revoked, another tenant's admin) is refused
and changes nothing; a key created here works at once and a key revoked here is refused within
seconds; secrets (keys, the paging routing key) are never echoed back.
"""

from __future__ import annotations

import asyncio
import uuid

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from awfdrs.admin import update_tenant_settings
from awfdrs.api.keys import Role, create_key, list_keys, revoke_key
from tests.support.factories import make_tenant

Sessions = async_sessionmaker[AsyncSession]


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def _tenant_keys(sessions: Sessions) -> tuple[uuid.UUID, dict[str, str]]:
    tenant = await make_tenant(sessions)
    other = await make_tenant(sessions)
    keys: dict[str, str] = {}
    for role in Role:
        keys[role.value], _ = await create_key(sessions, tenant.id, role, name=f"{role}-holder")
    keys["revoked"], info = await create_key(sessions, tenant.id, Role.ADMIN, name="gone")
    await revoke_key(sessions, str(info.id))
    keys["foreign admin"], _ = await create_key(sessions, other.id, Role.ADMIN, name="eve")
    return tenant.id, keys


async def _key_states(sessions: Sessions, tenant_id: uuid.UUID) -> set[tuple[uuid.UUID, str]]:
    return {(k.id, k.state()) for k in await list_keys(sessions, tenant_id)}


async def test_only_the_tenants_admin_manages_its_keys(
    http: httpx.AsyncClient, committed_sessions: Sessions
) -> None:
    tenant_id, keys = await _tenant_keys(committed_sessions)
    before = await list_keys(committed_sessions, tenant_id)
    states = await _key_states(committed_sessions, tenant_id)
    refused = {"viewer": 403, "operator": 403, "ingest": 403, "revoked": 401}
    for who, status in refused.items():
        for method, path, body in [
            ("GET", "/v1/keys", None),
            ("POST", "/v1/keys", {"role": "admin", "name": who}),
            ("POST", f"/v1/keys/{before[0].id}/revoke", None),
        ]:
            answer = await http.request(method, path, json=body, headers=auth(keys[who]))
            assert answer.status_code == status, (who, path, answer.text)
    assert await _key_states(committed_sessions, tenant_id) == states

    # Another tenant's admin neither sees nor revokes this tenant's keys.
    theirs = await http.get("/v1/keys", headers=auth(keys["foreign admin"]))
    assert {k["id"] for k in theirs.json()}.isdisjoint({str(k.id) for k in before})
    stolen = await http.post(f"/v1/keys/{before[0].id}/revoke", headers=auth(keys["foreign admin"]))
    assert stolen.status_code == 404
    assert await _key_states(committed_sessions, tenant_id) == states

    # A name that would pass for the Temporal door's typed names, a key without a name, or a
    # console SSO session's subject (case and compatibility forms folded).
    for reserved in ("temporal:ops", "Key:abc", "sso:bob", "\uff33SO:bob"):
        named = await http.post("/v1/keys", json={"role": "operator", "name": reserved},
                                headers=auth(keys["admin"]))  # fmt: skip
        assert named.status_code == 400, named.text
        assert named.json()["message"].startswith("name:")
    made = await http.post("/v1/keys", json={"role": "operator", "name": "dana"},
                           headers=auth(keys["admin"]))  # fmt: skip
    assert made.status_code == 201, made.text
    new = made.json()
    assert (new["role"], new["name"], new["state"]) == ("operator", "dana", "active")
    assert (await http.get("/v1/incidents", headers=auth(new["key"]))).status_code == 200
    listed = (await http.get("/v1/keys", headers=auth(keys["admin"]))).json()
    assert new["id"] in {k["id"] for k in listed}
    assert all("key" not in k and "secret_hash" not in k for k in listed)

    revoked = await http.post(f"/v1/keys/{new['id']}/revoke", headers=auth(keys["admin"]))
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["state"] == "revoked"

    async def refused_now() -> bool:
        for _ in range(30):
            answer = await http.get("/v1/incidents", headers=auth(new["key"]))
            if answer.status_code == 401:
                return True
            await asyncio.sleep(0.25)
        return False

    assert await refused_now(), "a revoked key still worked after 7.5 s"


async def test_only_the_tenants_admin_changes_its_settings(
    http: httpx.AsyncClient, committed_sessions: Sessions
) -> None:
    tenant_id, keys = await _tenant_keys(committed_sessions)
    await update_tenant_settings(
        committed_sessions, tenant_id, {"escalation_routing_key": "R0UTING-SECRET"}
    )
    for who in ("viewer", "operator", "ingest", "revoked"):
        changed = await http.patch("/v1/settings", json={"two_person_rule": False},
                                   headers=auth(keys[who]))  # fmt: skip
        assert changed.status_code in (401, 403), (who, changed.text)

    shown = await http.get("/v1/settings", headers=auth(keys["admin"]))
    assert shown.status_code == 200, shown.text
    assert shown.json()["escalation_routing_key"] == "***"
    assert "R0UTING-SECRET" not in shown.text
    assert shown.json()["two_person_rule"] is True

    bad = await http.patch("/v1/settings", json={"two_person_rule": False, "max_attempts": 0},
                           headers=auth(keys["admin"]))  # fmt: skip
    assert bad.status_code == 400
    assert "max_attempts" in bad.json()["message"]
    unknown = await http.patch("/v1/settings", json={"tenant_id": str(uuid.uuid4())},
                               headers=auth(keys["admin"]))  # fmt: skip
    assert unknown.status_code == 400
    assert unknown.json()["message"].startswith("tenant_id:")
    unchanged = (await http.get("/v1/settings", headers=auth(keys["admin"]))).json()
    assert unchanged["two_person_rule"] is True

    done = await http.patch("/v1/settings", json={"two_person_rule": False},
                            headers=auth(keys["admin"]))  # fmt: skip
    assert done.status_code == 200, done.text
    assert done.json()["two_person_rule"] is False
    # The other tenant's admin changed nothing here by changing its own.
    await http.patch("/v1/settings", json={"max_attempts": 7},
                     headers=auth(keys["foreign admin"]))  # fmt: skip
    assert (await http.get("/v1/settings", headers=auth(keys["admin"]))).json()["max_attempts"] == 3


async def test_only_the_tenants_admin_changes_a_workflows_remediation_mode(
    http: httpx.AsyncClient, committed_sessions: Sessions
) -> None:
    from awfdrs.admin import list_workflows
    from awfdrs.db.repositories import AuditRepository
    from awfdrs.db.session import tenant_session

    tenant_id, keys = await _tenant_keys(committed_sessions)
    [workflow] = await list_workflows(committed_sessions, tenant_id)
    path = f"/v1/workflows/{workflow.name}/settings"
    by_id = f"/v1/workflows/{workflow.id}/settings"
    # Another tenant's admin names this workflow by id: unknown to its tenant (a name would be
    # its own tenant's workflow of that name).
    refused = {"viewer": 403, "operator": 403, "ingest": 403, "revoked": 401,
               "foreign admin": 400}  # fmt: skip
    for who, status in refused.items():
        answer = await http.patch(by_id, json={"remediation_mode": "off"}, headers=auth(keys[who]))
        assert answer.status_code == status, (who, answer.text)
    admin = auth(keys["admin"])
    bad = await http.patch(path, json={"remediation_mode": "sometimes"}, headers=admin)
    assert bad.status_code == 422
    [still] = await list_workflows(committed_sessions, tenant_id)
    assert still.settings == workflow.settings

    done = await http.patch(by_id, json={"remediation_mode": "shadow"}, headers=auth(keys["admin"]))
    assert done.status_code == 200, done.text
    assert done.json()["settings"] == {"remediation_mode": "shadow"}
    back = await http.patch(path, json={"remediation_mode": None}, headers=auth(keys["admin"]))
    assert back.json()["settings"] == {}
    async with tenant_session(committed_sessions, tenant_id) as session:
        rows = await AuditRepository(session, tenant_id=tenant_id).list_matching(
            kind="workflow.settings"
        )
    assert [(r.actor, r.body["args"]["remediation_mode"]) for r in rows] == [
        ("admin-holder", None), ("admin-holder", "shadow"),
    ]  # fmt: skip
