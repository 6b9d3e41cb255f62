"""The operator API against the API as a real process, with a worker on its task queue: every
endpoint refuses a key of another tenant, a viewer (for acts), an ingest key and a revoked key
without changing anything, and records the key's name as the actor when an operator acts."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.service import RPCError

from awfdrs.api.keys import Role, create_key, revoke_key
from awfdrs.db.models import VendorConnection
from awfdrs.db.repositories import VendorConnectionRepository, VendorRepository
from awfdrs.db.session import tenant_session
from awfdrs.enums import IncidentStatus, Phase
from tests.support.factories import TenantRef
from tests.support.pipeline import Stack, event, eventually, retryable

Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture
def task_queue(api_queue: str) -> str:
    """The in-process worker (fixture ``stack``) polls the API process's queue, so the kill
    switch workflows the API starts are run."""
    return api_queue


@dataclass(frozen=True)
class Keys:
    """Keys of one tenant, by role, and an operator key of another tenant."""

    tenant: TenantRef
    operator: str
    viewer: str
    ingest: str
    revoked: str
    admin: str
    foreign: str


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def keys_for(stack: Stack, tenant: TenantRef, operator_name: str = "alice@ops") -> Keys:
    sessions = stack.sessions
    operator, _ = await create_key(sessions, tenant.id, Role.OPERATOR, name=operator_name)
    viewer, _ = await create_key(sessions, tenant.id, Role.VIEWER, name="vera-viewer")
    ingest, _ = await create_key(sessions, tenant.id, Role.INGEST, name="payments-service")
    admin, _ = await create_key(sessions, tenant.id, Role.ADMIN, name="root-admin")
    # Revoked before its first use: the API has never cached it, so it is refused at once.
    revoked, info = await create_key(sessions, tenant.id, Role.OPERATOR, name="mallory")
    await revoke_key(sessions, str(info.id))
    other = await stack.tenant()
    foreign, _ = await create_key(sessions, other.id, Role.OPERATOR, name="eve-other-tenant")
    return Keys(tenant, operator, viewer, ingest, revoked, admin, foreign)


async def refusals(
    http: httpx.AsyncClient,
    keys: Keys,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    *,
    viewer_refused: bool = True,
    foreign_status: int | None = 404,
) -> None:
    """Each key that may not do this is refused with the status that says why."""
    expected: list[tuple[str, str, int]] = [
        ("ingest", keys.ingest, 403),
        ("revoked", keys.revoked, 401),
    ]
    if viewer_refused:
        expected.append(("viewer", keys.viewer, 403))
    if foreign_status is not None:
        expected.append(("another tenant's operator", keys.foreign, foreign_status))
    for who, key, status in expected:
        response = await http.request(method, path, json=body, headers=auth(key))
        assert response.status_code == status, f"{who}: {response.status_code} {response.text}"
        assert response.json()["error"], response.text
    missing = await http.request(method, path, json=body)
    assert missing.status_code == 401


async def awaiting_approval(stack: Stack) -> tuple[TenantRef, uuid.UUID, str]:
    """An incident whose retry needs approval (confidence under the tenant's threshold)."""
    tenant = await stack.tenant(confidence_threshold=0.95)
    vendor = await stack.vendor()
    await stack.client.ingest(tenant.id, [retryable(tenant, "k-1", vendor)])
    incident_id = await only_incident(stack, tenant)
    waiting = await stack.wait_snapshot(
        incident_id, lambda s: s.phase is Phase.AWAITING_APPROVAL and s.plan is not None
    )
    assert waiting.plan is not None
    return tenant, incident_id, waiting.plan.plan_id


async def open_incident(stack: Stack) -> tuple[TenantRef, uuid.UUID]:
    tenant = await stack.tenant()
    # A declined card: nothing to retry, so the incident is escalated and waits for a person.
    await stack.client.ingest(tenant.id, [event(tenant, "d-1", error={"code": "card_declined"})])
    incident_id = await only_incident(stack, tenant)
    await stack.wait_snapshot(incident_id, lambda s: s.phase is not Phase.GROUPING)
    return tenant, incident_id


async def only_incident(stack: Stack, tenant: TenantRef) -> uuid.UUID:
    async def one() -> uuid.UUID | None:
        found = await stack.incidents(tenant)
        return found[0].id if len(found) == 1 else None

    return await eventually(one, 15, "exactly one incident")


# --- the end-to-end path: needs a human → approved by plan id → resolved ---------------------


async def test_an_incident_needing_approval_is_approved_through_the_api_and_resolves(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    tenant, incident_id, plan_id = await awaiting_approval(stack)
    keys = await keys_for(stack, tenant)

    listed = await http.get("/v1/incidents", params={"needs_a_human": "true"},
                            headers=auth(keys.viewer))  # fmt: skip
    assert listed.status_code == 200, listed.text
    [item] = listed.json()["items"]
    assert (item["id"], item["phase"], item["needs_a_human"]) == (
        str(incident_id), "awaiting_approval", True,
    )  # fmt: skip
    shown = await http.get(f"/v1/incidents/{incident_id}", headers=auth(keys.viewer))
    assert shown.status_code == 200, shown.text
    assert shown.json()["plan_awaiting_approval"] == plan_id
    assert shown.json()["requests"][0]["status"]
    # Another tenant's key sees none of it: not in its list, and 404 like a missing incident.
    theirs = await http.get("/v1/incidents", headers=auth(keys.foreign))
    assert theirs.json()["items"] == []
    hidden = await http.get(f"/v1/incidents/{incident_id}", headers=auth(keys.foreign))
    missing = await http.get(f"/v1/incidents/{uuid.uuid4()}", headers=auth(keys.foreign))
    assert (hidden.status_code, missing.status_code) == (404, 404)
    assert hidden.json()["error"] == missing.json()["error"] == "not_found"

    path = f"/v1/incidents/{incident_id}/approve"
    await refusals(http, keys, "POST", path, {"plan_id": plan_id, "reason": "go"})
    wrong = await http.post(path, json={"plan_id": "plan-0"}, headers=auth(keys.operator))
    assert wrong.status_code == 409, wrong.text
    assert plan_id in wrong.json()["message"]  # it says which plan waits
    named = await http.post(path, json={"plan_id": plan_id, "actor": "bob"},
                            headers=auth(keys.operator))  # fmt: skip
    assert named.status_code == 422  # the actor is the key, never a body field
    still = await stack.client.snapshot(incident_id)
    assert still.phase is Phase.AWAITING_APPROVAL  # nothing the refused calls sent changed it
    assert still.plan is not None
    assert still.plan.plan_id == plan_id

    approved = await http.post(path, json={"plan_id": plan_id, "reason": "vendor is back"},
                               headers=auth(keys.operator))  # fmt: skip
    assert approved.status_code == 200, approved.text
    await stack.wait_status(tenant, incident_id, IncidentStatus.RESOLVED, within=30)
    deciders = {d.decided_by for d in await stack.decisions(tenant, incident_id)}
    assert "alice@ops" in deciders
    assert "bob" not in deciders
    after = await http.get("/v1/incidents", params={"needs_a_human": "true"},
                           headers=auth(keys.viewer))  # fmt: skip
    assert after.json()["items"] == []


async def test_reject_through_the_api_records_the_key_name(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    tenant, incident_id, plan_id = await awaiting_approval(stack)
    keys = await keys_for(stack, tenant, operator_name="rita-reviewer")
    path = f"/v1/incidents/{incident_id}/reject"
    await refusals(http, keys, "POST", path, {"plan_id": plan_id})
    assert (await stack.client.snapshot(incident_id)).phase is Phase.AWAITING_APPROVAL
    rejected = await http.post(path, json={"plan_id": plan_id, "reason": "would double-charge"},
                               headers=auth(keys.operator))  # fmt: skip
    assert rejected.status_code == 200, rejected.text

    async def decided() -> bool | None:
        found = await stack.decisions(tenant, incident_id)
        return True if any(d.decided_by == "rita-reviewer" for d in found) else None

    await eventually(decided, 15, "the rejection recorded with the key's name")


@pytest.mark.parametrize("verb", ["resolve", "ignore"])
async def test_resolve_and_ignore_through_the_api_record_the_key_name(
    stack: Stack, http: httpx.AsyncClient, verb: str
) -> None:
    tenant, incident_id = await open_incident(stack)
    keys = await keys_for(stack, tenant, operator_name="olga-oncall")
    path = f"/v1/incidents/{incident_id}/{verb}"
    await refusals(http, keys, "POST", path, {"reason": "handled by hand"})
    assert (await stack.incident(tenant, incident_id)).status.is_open
    unknown = await http.post(f"/v1/incidents/{uuid.uuid4()}/{verb}",
                              json={"reason": "x"}, headers=auth(keys.operator))  # fmt: skip
    assert unknown.status_code == 404
    blank = await http.post(path, json={"reason": " "}, headers=auth(keys.operator))
    assert blank.status_code == 422
    assert "reason" in blank.text
    done = await http.post(path, json={"reason": "handled by hand"}, headers=auth(keys.operator))
    assert done.status_code == 200, done.text
    status = IncidentStatus.RESOLVED if verb == "resolve" else IncidentStatus.IGNORED
    closed = await stack.wait_status(tenant, incident_id, status)
    assert closed.resolution == f"{verb}d by olga-oncall: handled by hand"
    again = await http.post(path, json={"reason": "twice"}, headers=auth(keys.operator))
    assert again.status_code == 409, again.text
    assert again.json()["message"].startswith(
        f"incident {incident_id} is already {status.value} (at "
    )


# --- kill switches --------------------------------------------------------------------------


async def test_kill_switches_through_the_api(stack: Stack, http: httpx.AsyncClient) -> None:
    tenant = await stack.tenant()
    keys = await keys_for(stack, tenant, operator_name="kim-sre")
    body = {"reason": "vendor double-charging", "duration_seconds": 600}
    # Another tenant's key acts on its own tenant only: it is not refused, but nothing of
    # this tenant changes, which the list below shows.
    await refusals(http, keys, "POST", "/v1/kill-switches", body, foreign_status=None)
    await refusals(http, keys, "GET", "/v1/kill-switches", viewer_refused=False,
                   foreign_status=None)  # fmt: skip
    empty = await http.get("/v1/kill-switches", headers=auth(keys.viewer))
    assert empty.status_code == 200, empty.text
    assert empty.json()["active"] == []

    unknown = await http.post("/v1/kill-switches", json={**body, "workflow": "nope"},
                              headers=auth(keys.operator))  # fmt: skip
    assert unknown.status_code == 400
    assert unknown.json()["message"].startswith("workflow:")
    activated = await http.post("/v1/kill-switches", json=body, headers=auth(keys.operator))
    assert activated.status_code == 200, activated.text
    assert activated.json()["outcome"] == "applied"
    listed = (await http.get("/v1/kill-switches", headers=auth(keys.viewer))).json()
    assert [s["activated_by"] for s in listed["active"]] == ["kim-sre"]

    await refusals(http, keys, "POST", "/v1/kill-switches/release", {}, foreign_status=None)
    theirs = await http.get("/v1/kill-switches", headers=auth(keys.foreign))
    assert theirs.json()["active"] == []  # the other tenant's view: not this tenant's switch
    still = (await http.get("/v1/kill-switches", headers=auth(keys.viewer))).json()
    assert len(still["active"]) == 1
    # The two-person rule: whoever activated a switch may not release it alone.
    own = await http.post("/v1/kill-switches/release", json={"reason": "fixed"},
                          headers=auth(keys.operator))  # fmt: skip
    assert own.status_code == 409, own.text
    assert "two-person rule" in own.json()["message"]
    assert "anyone but kim-sre" in own.json()["message"]
    assert "keys of this tenant that may: root-admin (admin)" in own.json()["message"]
    in_force = (await http.get("/v1/kill-switches", headers=auth(keys.viewer))).json()["active"]
    assert len(in_force) == 1
    released = await http.post("/v1/kill-switches/release", json={"reason": "fixed"},
                               headers=auth(keys.admin))  # fmt: skip
    assert released.status_code == 200, released.text
    assert "released 1 switch" in released.json()["message"]
    assert (await http.get("/v1/kill-switches", headers=auth(keys.viewer))).json()["active"] == []


# --- vendors --------------------------------------------------------------------------------


async def _connection(stack: Stack, tenant: TenantRef, name: str) -> VendorConnection:
    async with tenant_session(stack.sessions, tenant.id) as session:
        vendor = await VendorRepository(session).find_by_name(name)
        assert vendor is not None
        return await VendorConnectionRepository(session, tenant_id=tenant.id).get_for_vendor(
            vendor.id
        )


async def test_vendor_connections_through_the_api(stack: Stack, http: httpx.AsyncClient) -> None:
    tenant = await stack.tenant()
    keys = await keys_for(stack, tenant)
    bystander = await stack.tenant()
    # Connected for the key's tenant and a bystander, not for the foreign key's tenant.
    name = await stack.vendor(connect=False)
    await stack.connect(tenant, name)
    await stack.connect(bystander, name)
    await refusals(http, keys, "GET", "/v1/vendors", viewer_refused=False, foreign_status=None)
    foreign_list = await http.get("/v1/vendors", headers=auth(keys.foreign))
    assert name not in {v["vendor"] for v in foreign_list.json()}

    put = f"/v1/vendors/{name}/connection"
    body = {"credentials": {"Authorization": "Bearer sk-api-secret-1"}, "rate_limit_per_minute": 7}
    # Credentials are an admin's: an operator of the tenant is refused like a viewer.
    await refusals(http, keys, "PUT", put, body, foreign_status=403)
    by_operator = await http.put(put, json=body, headers=auth(keys.operator))
    assert by_operator.status_code == 403
    assert "admin" in by_operator.json()["message"]
    assert (await _connection(stack, tenant, name)).credentials is None
    stored = await http.put(put, json=body, headers=auth(keys.admin))
    assert stored.status_code == 200, stored.text
    assert stored.json()["credentials"] == {"Authorization": "***"}
    assert stored.json()["rate_limit_per_minute"] == 7
    listed = await http.get("/v1/vendors", headers=auth(keys.viewer))
    assert listed.status_code == 200, listed.text
    [mine] = [v for v in listed.json() if v["vendor"] == name]
    assert mine["credentials"] == {"Authorization": "***"}
    for answer in (stored, listed):
        assert "sk-api-secret-1" not in answer.text
    row = await _connection(stack, tenant, name)
    assert row.credentials is not None
    assert b"sk-api-secret-1" not in row.credentials
    assert stack.credentials.decrypt(row.credentials) == {"Authorization": "Bearer sk-api-secret-1"}
    # Where the credentials go is the deployment's choice, not a key's.
    moved = await http.put(put, json={"base_url": "https://attacker.example"},
                           headers=auth(keys.admin))  # fmt: skip
    assert moved.status_code == 400
    assert moved.json()["message"].startswith("base_url:")
    assert (await _connection(stack, tenant, name)).base_url is None
    # A body that does not validate is refused naming the field, never echoing the value.
    typo = await http.put(put, json={"credential": {"Authorization": "Bearer sk-typo-2"}},
                          headers=auth(keys.admin))  # fmt: skip
    assert typo.status_code == 422
    assert typo.json()["message"].startswith("credential:")
    assert "sk-typo-2" not in typo.text

    path = f"/v1/vendors/{name}/force-open"
    # The foreign operator's tenant has no connection to this vendor: nothing to address.
    await refusals(http, keys, "POST", path, {"reason": "INC-42"}, foreign_status=404)
    forced = await http.post(path, json={"reason": "INC-42"}, headers=auth(keys.operator))
    assert forced.status_code == 200, forced.text
    assert (forced.json()["forced_open"], forced.json()["forced_by"]) == (True, "alice@ops")
    assert (await _connection(stack, tenant, name)).forced_open
    # Another tenant's connection to the same vendor is untouched.
    assert not (await _connection(stack, bystander, name)).forced_open
    await refusals(http, keys, "POST", f"/v1/vendors/{name}/release", foreign_status=404)
    assert (await _connection(stack, tenant, name)).forced_open
    released = await http.post(f"/v1/vendors/{name}/release", headers=auth(keys.operator))
    assert released.status_code == 200, released.text
    assert (released.json()["forced_open"], released.json()["breaker"]) == (False, "HALF_OPEN")
    unknown = await http.post("/v1/vendors/no-such-vendor/release", headers=auth(keys.operator))
    assert unknown.status_code == 404


async def test_reads_refuse_ingest_revoked_and_other_tenants(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    tenant, incident_id = await open_incident(stack)
    keys = await keys_for(stack, tenant)
    await refusals(http, keys, "GET", "/v1/incidents", viewer_refused=False, foreign_status=None)
    await refusals(http, keys, "GET", f"/v1/incidents/{incident_id}", viewer_refused=False)
    page = await http.get("/v1/incidents", params={"limit": 1, "workflow": "payments"},
                          headers=auth(keys.viewer))  # fmt: skip
    assert page.status_code == 200, page.text
    assert [i["id"] for i in page.json()["items"]] == [str(incident_id)]
    assert page.json()["next_offset"] is None
    bad = await http.get("/v1/incidents", params={"workflow": "nope"}, headers=auth(keys.viewer))
    assert bad.status_code == 400
    assert bad.json()["message"].startswith("workflow:")


# --- the CLI through the API ---------------------------------------------------------------


def awfdrs(api_url: str, key: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI with the API's URL and a key, and database and Temporal addresses that go
    nowhere: a command that still needed them would fail."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AWFDRS_")},
        "AWFDRS_API_URL": api_url,
        "AWFDRS_API_KEY": key,
        "AWFDRS_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
        "AWFDRS_TEMPORAL_ADDRESS": "127.0.0.1:1",
        "AWFDRS_STACK_FILE": str(tmp_path / "no-stack.json"),
        "COLUMNS": "200",
    }
    return subprocess.run(
        [sys.executable, "-m", "awfdrs", *args],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


async def test_the_cli_lists_and_resolves_through_the_api(
    stack: Stack, api_url: str, tmp_path: Path
) -> None:
    tenant, incident_id = await open_incident(stack)
    keys = await keys_for(stack, tenant, operator_name="carl-cli")

    async def cli(key: str, *args: str) -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(awfdrs, api_url, key, tmp_path, *args)

    listed = await cli(keys.viewer, "incidents", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [r["id"] for r in json.loads(listed.stdout)] == [str(incident_id)]
    shown = await cli(keys.viewer, "incidents", "show", str(incident_id)[:8], "--json")
    assert shown.returncode == 0, shown.stderr
    found = json.loads(shown.stdout)
    assert (found["id"], found["tenant_id"]) == (str(incident_id), str(tenant.id))
    too_short = await cli(keys.viewer, "incidents", "show", "ab")
    assert too_short.returncode == 1
    assert "give at least 4 characters" in too_short.stderr

    by = await cli(keys.operator, "incidents", "resolve", str(incident_id), "--by", "bob",
                   "--reason", "x")  # fmt: skip
    assert by.returncode == 2
    assert "the actor recorded is the key's name" in by.stderr
    as_viewer = await cli(keys.viewer, "incidents", "resolve", str(incident_id), "--reason", "x")
    assert as_viewer.returncode == 1
    assert as_viewer.stderr.startswith("awfdrs: the API refused (HTTP 403)")
    assert (await stack.incident(tenant, incident_id)).status.is_open

    done = await cli(keys.operator, "incidents", "resolve", str(incident_id),
                     "--reason", "replayed by hand")  # fmt: skip
    assert done.returncode == 0, done.stderr
    said = " ".join(done.stdout.split())
    assert said == f"incident {incident_id}: RESOLVED: resolved by carl-cli: replayed by hand"
    closed = await stack.wait_status(tenant, incident_id, IncidentStatus.RESOLVED)
    assert closed.resolution == "resolved by carl-cli: replayed by hand"
    again = await cli(keys.operator, "incidents", "resolve", str(incident_id)[:8],
                      "--reason", "twice")  # fmt: skip
    assert again.returncode == 1
    assert f"incident {incident_id} is already RESOLVED (at " in again.stderr

    activated = await cli(keys.operator, "kill-switch", "activate", "--reason", "maintenance",
                          "--duration", "10m")  # fmt: skip
    assert activated.returncode == 0, activated.stderr
    status = await cli(keys.viewer, "kill-switch", "list", "--json")
    assert [s["activated_by"] for s in json.loads(status.stdout)["active"]] == ["carl-cli"]
    alone = await cli(keys.operator, "kill-switch", "release")
    assert alone.returncode == 1
    assert "two-person rule" in alone.stderr
    assert "anyone but carl-cli" in alone.stderr
    released = await cli(keys.admin, "kill-switch", "release")
    assert released.returncode == 0, released.stderr
    assert "released 1 switch" in released.stdout


async def test_the_openapi_document_describes_the_operator_api(http: httpx.AsyncClient) -> None:
    paths = (await http.get("/openapi.json")).json()["paths"]
    for path, method, model in [
        ("/v1/incidents", "get", "IncidentPage"),
        ("/v1/incidents/{incident_id}", "get", "IncidentDetail"),
        ("/v1/incidents/{incident_id}/approve", "post", "IncidentSnapshot"),
        ("/v1/incidents/{incident_id}/resolve", "post", "IncidentSnapshot"),
        ("/v1/kill-switches", "post", "KillSwitchRequest"),
        ("/v1/kill-switches/release", "post", "KillSwitchRequest"),
        ("/v1/vendors/{name}/force-open", "post", "ConnectionView"),
        ("/v1/vendors/{name}/connection", "put", "ConnectionView"),
    ]:
        operation = paths[path][method]
        assert operation["security"] == [{"bearer": []}]
        schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
        assert schema["$ref"].endswith(f"/{model}"), (path, schema)
        assert {"401", "403"} <= set(operation["responses"])


async def test_every_cli_command_through_the_api_refuses_the_wrong_keys(
    stack: Stack, api_url: str, tmp_path: Path
) -> None:
    """Each operator command of the CLI, run with an ingest, viewer, revoked or another
    tenant's key, exits 1 with the API's refusal, and the incident and switches are as before."""
    tenant, incident_id, plan_id = await awaiting_approval(stack)
    keys = await keys_for(stack, tenant)
    target = str(incident_id)
    commands = [
        ["incidents", "approve", target, "--plan", plan_id],
        ["incidents", "reject", target, "--plan", plan_id],
        ["incidents", "resolve", target, "--reason", "x"],
        ["incidents", "ignore", target, "--reason", "x"],
        ["kill-switch", "activate", "--reason", "x"],
        ["kill-switch", "release"],
    ]
    wrong = {
        "ingest": (keys.ingest, "HTTP 403"),
        "viewer": (keys.viewer, "HTTP 403"),
        "revoked": (keys.revoked, "HTTP 401"),
    }

    async def cli(key: str, *args: str) -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(awfdrs, api_url, key, tmp_path, *args)

    runs = [(who, key, why, c) for who, (key, why) in wrong.items() for c in commands]
    # Another tenant's operator: its incident commands are 404s; its kill switch commands act
    # on its own tenant (checked below: this tenant's switches are untouched).
    runs += [("foreign", keys.foreign, "HTTP 404", c) for c in commands[:4]]
    results = await asyncio.gather(*(cli(key, *c) for _, key, _, c in runs))
    for (who, _, why, command), done in zip(runs, results, strict=True):
        assert done.returncode == 1, (who, command, done.stdout, done.stderr)
        assert f"the API refused ({why})" in done.stderr, (who, command, done.stderr)
    still = await stack.client.snapshot(incident_id)
    assert still.phase is Phase.AWAITING_APPROVAL
    assert still.plan is not None
    assert still.plan.plan_id == plan_id
    # No switch was ever activated: the tenant's kill-switch workflow was never even started.
    with pytest.raises(RPCError, match="not found"):
        await stack.client.kill_switches(tenant.id)
