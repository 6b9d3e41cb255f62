"""docs/OPERATIONS.md's tour, replayed step by step in its order with the CLI as a user runs it:
the administrator's commands in direct mode, Alice's and Bob's through the API with their keys,
the events as the tour's curl sends them. Local servers stand in for `make run`'s demo vendor
and for examples/receiver.py."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from awfdrs.devstack.servers import EscalationReceiver, FlakyVendor
from tests.integration.test_cli import awfdrs, cli_env  # noqa: F401  (the administrator's environment)
from tests.support.database import ScratchDatabase
from tests.support.pipeline import Stack, eventually
from tests.support.processes import ApiProcess, api_env

TOUR = Path(__file__).resolve().parents[2] / "docs" / "OPERATIONS.md"


@pytest.fixture
def api_process(
    database: ScratchDatabase, temporal_env: WorkflowEnvironment, stack: Stack, tmp_path: Path
) -> Iterator[ApiProcess]:
    target = temporal_env.client.service_client.config.target_host
    process = ApiProcess(
        api_env(database.app_url, target, stack.client.task_queue), tmp_path / "api.log"
    )
    yield process
    process.stop()


def tour_events(workflow_id: str, vendor: str) -> str:
    """The body of the tour's curl (step 3), with the workflow id and vendor it names filled in."""
    text = TOUR.read_text().split("**3. As the payments service**", 1)[1]
    [body] = re.findall(r"-d '(\{\"events\".*?)'\n```", text, re.DOTALL)
    return str(body).replace("\"'$WF'\"", json.dumps(workflow_id)).replace("demo-gateway", vendor)


# About twenty `awfdrs` processes, each paying Python's start-up, on a shared machine.
@pytest.mark.timeout(300)
async def test_the_operations_tour_works_in_order(
    cli_env: dict[str, str],  # noqa: F811
    api_process: ApiProcess,
    vendor: FlakyVendor,
    receiver: EscalationReceiver,
) -> None:
    async def run(env: dict[str, str], *args: str) -> tuple[int, str]:
        done = await asyncio.to_thread(awfdrs, env, *args)
        return done.returncode, done.stdout + done.stderr

    async def ok(env: dict[str, str], *args: str) -> str:
        code, out = await run(env, *args)
        assert code == 0, f"{args}: {out}"
        return out

    async def key(*args: str) -> str:
        return str(json.loads(await ok(cli_env, "keys", "create", *args, "--json"))["key"])

    # 2. The deployment administrator: tenant, workflow, vendor connection, keys.
    acme, gateway = f"acme-{uuid.uuid4().hex[:8]}", f"gateway-{uuid.uuid4().hex[:8]}"
    await ok(cli_env, "tenants", "add", acme, "-s", "grouping_window_seconds=1",
             "-s", "verification_window_seconds=1",
             "-s", f"escalation_webhook_url={receiver.url}/v2/enqueue",
             "-s", "escalation_routing_key=R0UT1NG")  # fmt: skip
    flow = json.loads(await ok(cli_env, "workflows", "add", "payments", "--tenant", acme, "--json"))
    await ok(cli_env, "vendors", "add", gateway, "--base-url", vendor.url)  # make run's demo does
    await ok(cli_env, "vendors", "connect", gateway, "--tenant", acme)
    ingest = await key("--tenant", acme, "--role", "ingest", "--name", "payments-service")
    alice_key = await key("--tenant", acme, "--role", "operator", "--name", "alice")
    bob_key = await key("--tenant", acme, "--role", "operator", "--name", "bob")

    # 3. The payments service sends the tour's two events.
    api = await api_process.start()
    async with httpx.AsyncClient(base_url=api, timeout=30) as http:
        answer = await http.post(
            "/v1/events",
            content=tour_events(flow["id"], gateway),
            headers={"Authorization": f"Bearer {ingest}", "Content-Type": "application/json"},
        )
    assert answer.status_code == 200, answer.text
    assert [o["outcome"] for o in answer.json()["outcomes"]] == ["accepted", "accepted"]
    opened = [i["incident_id"] for i in answer.json()["incidents"]]

    async def paged() -> bool | None:
        summaries = [p["payload"]["summary"] for p in receiver.events()]
        return any("payout failed: account_closed" in s for s in summaries) or None

    await eventually(paged, 60, "the payout's page at the receiver")

    # 4. Alice, with her key only; Bob's second approval; Alice resolves the payout.
    alice = {"AWFDRS_API_URL": api, "AWFDRS_API_KEY": alice_key, "COLUMNS": "200"}
    bob = {**alice, "AWFDRS_API_KEY": bob_key}

    async def show(incident: str) -> Any:
        return json.loads(await ok(alice, "incidents", "show", incident, "--json"))

    # The answer lists incidents in no particular order: tell them apart by title.
    titles = {(await show(i))["title"].split(" ")[0]: i for i in opened}
    refund, payout = titles["refund"], titles["payout"]

    async def waits_for_approval() -> bool | None:
        return str((await show(refund))["waiting_for"] or "").startswith("approval") or None

    await eventually(waits_for_approval, 60, "the refund's plan waiting for approval")
    listed = json.loads(await ok(alice, "incidents", "list", "--needs-a-human", "--json"))
    assert {refund, payout} <= {i["id"] for i in listed}
    plan = (await show(refund))["plan"]["plan_id"]
    first = await ok(alice, "incidents", "approve", refund, "--plan", plan,
                     "--reason", "refund confirmed with the customer")  # fmt: skip
    assert "awaiting a second approver" in first
    await ok(bob, "incidents", "approve", refund, "--plan", plan, "--reason", "second pair of eyes")

    async def resolved() -> bool | None:
        return (await show(refund))["status"] == "RESOLVED" or None

    await eventually(resolved, 60, "the refund resolved")
    assert list(vendor.executions().values()) == [1]  # the refund, sent once
    await ok(alice, "incidents", "resolve", payout, "--reason", "payout re-sent by finance")
    assert (await show(payout))["status"] == "RESOLVED"

    # 5. The kill switch: Alice may not release what she activated; Bob may.
    await ok(alice, "kill-switch", "activate", "--reason", "vendor double-charging",
             "--duration", "1h")  # fmt: skip
    assert "vendor double-charging" in await ok(alice, "kill-switch", "list")
    code, out = await run(alice, "kill-switch", "release", "--reason", "vendor fixed")
    assert code == 1
    assert "two-person rule" in out
    await ok(bob, "kill-switch", "release", "--reason", "vendor fixed")

    # 6. The audit trail is intact.
    async with httpx.AsyncClient(base_url=api, timeout=30) as http:
        audit = await http.get("/v1/audit/verify", headers={"Authorization": f"Bearer {alice_key}"})
    assert audit.json()["intact"] is True
