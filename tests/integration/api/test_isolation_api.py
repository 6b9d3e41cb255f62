"""Isolation probes of the HTTP API: every route, called with tenant B's keys and tenant A's ids.

Promise: a key acts in its own tenant only. Whatever a route is given of another tenant's
(an incident, a key, a kill switch, a workflow, a vendor connection), it answers with nothing of
A's and changes none of A's rows. The routes come from the application itself, so a route added
later without a probe fails the coverage check below.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from awfdrs.api.app import create_app
from awfdrs.api.keys import Role, create_key
from awfdrs.config import Settings
from awfdrs.remediation.credentials import CredentialCipher
from awfdrs.vendor_connections import connect, force_connection_open
from tests.e2e.reliability.test_isolation_probes import TABLES
from tests.integration.api.test_operator import auth, awaiting_approval
from tests.support.pipeline import Stack
from tests.support.processes import CREDENTIALS_KEY


@pytest.fixture
def task_queue(api_queue: str) -> str:
    """The in-process worker polls the API process's queue (kill-switch commands are run)."""
    return api_queue


async def _rows_of(owner_engine: AsyncEngine, tenant_id: uuid.UUID) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    async with owner_engine.connect() as connection:
        for table in TABLES:
            column = "id" if table == "tenants" else "tenant_id"
            # A key's last use is stamped by the API as it authenticates A's own keys: not B's.
            result = await connection.execute(
                text(f"SELECT (to_jsonb(t) - 'last_used_at')::text FROM {table} t "  # noqa: S608
                     f"WHERE {column} = :a ORDER BY 1"),
                {"a": tenant_id},
            )  # fmt: skip
            found[table] = [r[0] for r in result.all()]
    return found


def _routes() -> set[tuple[str, str]]:
    """Every route that takes a key, as the application's OpenAPI document lists them."""
    app = create_app(Settings(database_url="postgresql://nobody@127.0.0.1:1/none"))
    return {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        if path.startswith(("/v1/", "/v2/"))
        for method in operations
    }


async def test_every_route_with_another_tenants_ids_answers_nothing_of_theirs(
    stack: Stack, http: httpx.AsyncClient, owner_engine: AsyncEngine
) -> None:
    a, incident_id, plan_id = await awaiting_approval(stack)
    vendor = await stack.vendor(connect=False)
    cipher = CredentialCipher(CREDENTIALS_KEY)
    secret = f"sk-a-{uuid.uuid4().hex}"
    await connect(stack.sessions, a.id, vendor, cipher=cipher,
                  credentials={"Authorization": f"Bearer {secret}"})  # fmt: skip
    await force_connection_open(stack.sessions, a.id, vendor, by="alice", reason="a's stop")
    a_admin, a_key = await create_key(stack.sessions, a.id, Role.ADMIN, name="a-admin")
    activated = await http.post("/v1/kill-switches", json={"reason": "a's switch"},
                                headers=auth(a_admin))  # fmt: skip
    [switch_id] = activated.json()["switch_ids"]

    b = await stack.tenant()
    b_admin, _ = await create_key(stack.sessions, b.id, Role.ADMIN, name="b-admin")
    b_ingest, _ = await create_key(stack.sessions, b.id, Role.INGEST, name="b-sender")
    a_ids = {str(a.id), str(a.workflow_id), str(incident_id), str(a_key.id), switch_id}
    a_strings = {a.name, plan_id, secret, "a's stop", "a's switch", a_key.prefix, "a-admin"}
    before = await _rows_of(owner_engine, a.id)

    a_event = {
        "tenant_id": str(a.id), "workflow_id": str(a.workflow_id), "event_type": "payment.failed",
        "idempotency_key": "b-into-a", "occurred_at": "2026-12-03T10:00:00Z", "payload": {},
    }  # fmt: skip
    probes: dict[tuple[str, str], tuple[str, str, Any]] = {
        ("GET", "/v1/incidents"): (b_admin, "/v1/incidents", None),
        ("GET", "/v1/incidents/{incident_id}"): (b_admin, f"/v1/incidents/{incident_id}", None),
        ("POST", "/v1/incidents/{incident_id}/approve"): (
            b_admin, f"/v1/incidents/{incident_id}/approve", {"plan_id": plan_id}),
        ("POST", "/v1/incidents/{incident_id}/reject"): (
            b_admin, f"/v1/incidents/{incident_id}/reject", {"plan_id": plan_id}),
        ("POST", "/v1/incidents/{incident_id}/resolve"): (
            b_admin, f"/v1/incidents/{incident_id}/resolve", {"reason": "b closes a's"}),
        ("POST", "/v1/incidents/{incident_id}/ignore"): (
            b_admin, f"/v1/incidents/{incident_id}/ignore", {"reason": "b closes a's"}),
        ("GET", "/v1/kill-switches"): (b_admin, "/v1/kill-switches", None),
        ("POST", "/v1/kill-switches"): (
            b_admin, "/v1/kill-switches", {"reason": "b", "workflow": str(a.workflow_id)}),
        ("POST", "/v1/kill-switches/release"): (
            b_admin, "/v1/kill-switches/release", {"switch_id": switch_id}),
        ("GET", "/v1/vendors"): (b_admin, "/v1/vendors", None),
        ("POST", "/v1/vendors/{name}/force-open"): (
            b_admin, f"/v1/vendors/{vendor}/force-open", {"reason": "b"}),
        ("POST", "/v1/vendors/{name}/release"): (b_admin, f"/v1/vendors/{vendor}/release", None),
        ("PUT", "/v1/vendors/{name}/connection"): (
            b_admin, f"/v1/vendors/{vendor}/connection", {"rate_limit_per_minute": 1}),
        ("GET", "/v1/keys"): (b_admin, "/v1/keys", None),
        ("POST", "/v1/keys"): (b_admin, "/v1/keys", {"role": "viewer", "name": "b-viewer"}),
        ("POST", "/v1/keys/{key_id}/revoke"): (b_admin, f"/v1/keys/{a_key.id}/revoke", None),
        ("GET", "/v1/settings"): (b_admin, "/v1/settings", None),
        ("PATCH", "/v1/settings"): (b_admin, "/v1/settings", {"max_attempts": 2}),
        ("PATCH", "/v1/workflows/{workflow}/settings"): (
            b_admin, f"/v1/workflows/{a.workflow_id}/settings", {"remediation_mode": "off"}),
        ("GET", "/v1/audit"): (b_admin, "/v1/audit", None),
        ("GET", "/v1/audit/verify"): (b_admin, "/v1/audit/verify", None),
        ("POST", "/v1/events"): (b_ingest, "/v1/events", {"events": [a_event]}),
        ("POST", "/v1/cloudevents"): (b_ingest, "/v1/cloudevents", {
            "specversion": "1.0", "id": "b-1", "source": "b", "type": "payment.failed",
            "workflow": str(a.workflow_id), "data": {}}),
        ("POST", "/v1/alertmanager"): (b_ingest, "/v1/alertmanager", {
            "version": "4", "status": "firing", "receiver": "b", "groupKey": "g",
            "alerts": [{"status": "firing", "labels": {"alertname": "x",
                        "workflow": str(a.workflow_id)}, "annotations": {},
                        "startsAt": "2026-12-03T10:00:00Z", "fingerprint": "f1"}]}),
        ("POST", "/v2/enqueue"): (b_ingest, "/v2/enqueue", {
            "routing_key": b_ingest, "event_action": "trigger", "payload": {
                "summary": "x", "source": str(a.workflow_id), "severity": "error"}}),
    }  # fmt: skip
    assert set(probes) == _routes(), "a route without a probe (or a probe of no route)"

    for (method, _), (key, path, body) in sorted(probes.items()):
        answer = await http.request(method, path, json=body, headers=auth(key))
        assert answer.status_code < 500, (method, path, answer.status_code, answer.text)
        # What B sent may come back in a refusal ("incident … not found"); nothing else of A's.
        given = path + json.dumps(body)
        found = [x for x in a_ids | a_strings if x in answer.text and x not in given]
        assert not found, f"{method} {path} answered with A's {found}: {answer.text[:300]}"
    assert await _rows_of(owner_engine, a.id) == before
    still = await stack.client.snapshot(incident_id)
    assert still.plan is not None
    assert still.plan.plan_id == plan_id
    assert json.dumps(before).count(secret) == 0  # and A's secret was never stored in clear
