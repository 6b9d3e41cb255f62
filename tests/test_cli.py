"""The awfdrs command, run as a user runs it: a process, its output, its exit code."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from awfdrs.devstack.servers import EscalationReceiver, FlakyVendor
from tests.support.database import ScratchDatabase
from tests.support.pipeline import Stack, eventually
from tests.support.principals import SIGNING_KEY
from tests.support.processes import CREDENTIALS_KEY

COMMANDS = [
    ["up"], ["worker"], ["migrate"], ["ingest"],
    ["tenants", "add"], ["tenants", "list"], ["tenants", "show"], ["tenants", "set"],
    ["workflows", "add"], ["workflows", "list"], ["workflows", "set"],
    ["vendors", "add"], ["vendors", "list"], ["vendors", "force-open"], ["vendors", "release"],
    ["vendors", "connect"], ["vendors", "connections"], ["vendors", "rotate-credentials"],
    ["incidents", "list"], ["incidents", "show"], ["incidents", "approve"],
    ["incidents", "reject"], ["incidents", "resolve"], ["incidents", "ignore"],
    ["kill-switch", "activate"], ["kill-switch", "release"], ["kill-switch", "list"],
    ["api"], ["keys", "create"], ["keys", "list"], ["keys", "revoke"],
    ["audit", "verify"], ["audit", "export"],
]  # fmt: skip


def awfdrs(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "awfdrs", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def cli_env(
    database: ScratchDatabase, temporal_env: WorkflowEnvironment, stack: Stack, tmp_path: Path
) -> dict[str, str]:
    return {
        "AWFDRS_DATABASE_URL": database.app_url,
        "AWFDRS_MIGRATION_DATABASE_URL": database.owner_url,
        "AWFDRS_TEMPORAL_ADDRESS": temporal_env.client.service_client.config.target_host,
        "AWFDRS_TASK_QUEUE": stack.client.task_queue,
        "AWFDRS_STACK_FILE": str(tmp_path / "no-stack.json"),
        # The deployment administrator's door: database and Temporal credentials and the
        # command signing key (an operator without them goes through the API instead).
        "AWFDRS_COMMAND_SIGNING_KEY": SIGNING_KEY,
        "AWFDRS_CREDENTIALS_KEYS": CREDENTIALS_KEY,
        "COLUMNS": "200",
    }


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help_with_an_example(command: list[str]) -> None:
    done = awfdrs({}, *command, "--help")
    assert done.returncode == 0, done.stderr
    assert "Example:" in done.stdout


async def test_a_new_users_session(
    cli_env: dict[str, str],
    stack: Stack,
    vendor: FlakyVendor,
    receiver: EscalationReceiver,
    tmp_path: Path,
) -> None:
    async def run(*args: str) -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(awfdrs, cli_env, *args)

    async def ok(*args: str) -> str:
        done = await run(*args)
        assert done.returncode == 0, f"{args}: {done.stderr}"
        return done.stdout

    async def data(*args: str) -> Any:
        return json.loads(await ok(*args, "--json"))

    name = f"cli-{uuid.uuid4().hex[:8]}"
    tenant = await data("tenants", "add", name, "-s", "grouping_window_seconds=0.3")
    assert tenant["settings"]["grouping_window_seconds"] == 0.3
    assert tenant["settings"]["confidence_threshold"] == 0.8  # defaults are shown
    await ok("tenants", "set", name, f"escalation_webhook_url={receiver.url}/v2/enqueue")
    shown = await data("tenants", "show", name)
    assert shown["settings"]["escalation_webhook_url"].startswith(receiver.url)
    assert name in {t["name"] for t in await data("tenants", "list")}
    refused = await run("tenants", "set", name, "confidence_threshold=2")
    assert refused.returncode == 1
    assert refused.stderr.strip().startswith("awfdrs: confidence_threshold:")
    flow = await data("workflows", "add", "payments", "--tenant", name)
    assert [w["name"] for w in await data("workflows", "list", "--tenant", name)] == ["payments"]
    vendor_name = f"v-{uuid.uuid4().hex[:8]}"
    await ok("vendors", "add", vendor_name, "--base-url", vendor.url)
    assert vendor_name in {v["name"] for v in await data("vendors", "list")}
    connected = await data("vendors", "connect", vendor_name, "--tenant", name, "--header",
                           "Authorization: Bearer cli-secret-9", "--rate-limit", "30")  # fmt: skip
    assert connected["credentials"] == {"Authorization": "***"}
    assert connected["rate_limit_per_minute"] == 30
    [listed] = await data("vendors", "connections", "--tenant", name)
    assert (listed["vendor"], listed["base_url"]) == (vendor_name, vendor.url)
    table = await ok("vendors", "connections", "--tenant", name)
    assert "Authorization: ***" in table
    assert "cli-secret-9" not in table + json.dumps(listed) + json.dumps(connected)
    [health] = [v for v in await data("vendors", "list") if v["name"] == vendor_name]
    assert health["connections"] == {"CLOSED": 1}

    lines = [
        {"tenant_id": tenant["id"], "workflow_id": flow["id"], "event_type": "payment.failed",
         "idempotency_key": f"k-{n}", "occurred_at": datetime.now(UTC).isoformat(),
         "payload": {"error": {"code": "card_declined"}}}
        for n in range(3)
    ]  # fmt: skip
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(json.dumps(e) for e in [*lines, lines[0]]) + "\nnot json\n")
    summary = await data("ingest", str(events))
    assert summary["counts"] == {"accepted": 3, "duplicate": 1, "conflict": 0, "rejected": 1}
    assert summary["incidents_opened"] == 1
    assert summary["rejections"][0]["reason"].startswith("line 5: not JSON")

    async def escalated() -> dict[str, Any] | None:
        [row] = await data("incidents", "list", "--tenant", name)
        return row if row["status"] == "ACTIONED" else None

    incident = await eventually(escalated, 30, "the incident to be escalated")
    assert [
        r["id"] for r in await data("incidents", "list", "--status", "ACTIONED", "--limit", "500")
    ].count(incident["id"]) == 1
    details = await data("incidents", "show", incident["id"])
    assert [d["type"] for d in details["decisions"]] == ["escalate"]
    assert details["decisions"][0]["reasoning"].startswith("Permanent")
    assert [(a["type"], a["status"]) for a in details["actions"]] == [("escalate", "SUCCEEDED")]
    assert len(details["events_shown"]) == 3
    human = await ok("incidents", "show", incident["id"])
    assert "timeline" in human
    assert "decision escalate (0.90, awfdrs-rules/1)" in human
    not_waiting = await run(
        "incidents", "approve", incident["id"], "--plan", "plan-0", "--by", "alice"
    )
    assert not_waiting.returncode == 1
    assert "is not waiting for approval" in not_waiting.stderr
    resolved = await ok(
        "incidents", "resolve", incident["id"], "--by", "alice", "--reason", "BIN fixed"
    )
    assert "RESOLVED" in resolved

    activated = await ok("kill-switch", "activate", "--tenant", name, "--reason", "maintenance",
                         "--by", "bob", "--duration", "10m")  # fmt: skip
    assert "in force" in activated
    status = await data("kill-switch", "list", "--tenant", name)
    assert [s["activated_by"] for s in status["active"]] == ["bob"]
    missing = await run("kill-switch", "activate", "--tenant", name, "--reason", " ", "--by", "bob")
    assert missing.returncode == 1
    assert missing.stderr.startswith("awfdrs: reason:")
    alone = await run("kill-switch", "release", "--tenant", name, "--by", "bob")
    assert alone.returncode == 1
    assert "two-person rule" in alone.stderr
    assert "released 1 switch" in await ok(
        "kill-switch", "release", "--tenant", name, "--by", "carol"
    )

    await ok("vendors", "force-open", vendor_name, "--by", "alice", "--reason", "INC-1")
    [forced] = [v for v in await data("vendors", "list") if v["name"] == vendor_name]
    assert (forced["forced_open"], forced["forced_by"]) == (True, "alice")
    [seen] = await data("vendors", "connections", "--tenant", name)
    assert (seen["vendor_forced_open"], seen["forced_open"]) == (True, False)
    await ok("vendors", "release", vendor_name, "--by", "alice")
    await ok("vendors", "force-open", vendor_name, "--tenant", name, "--by", "bob", "--reason", "x")
    [health] = [v for v in await data("vendors", "list") if v["name"] == vendor_name]
    assert (health["forced_open"], health["connections"]) == (False, {"FORCED_OPEN": 1})
    await ok("vendors", "release", vendor_name, "--tenant", name, "--by", "bob")
    [seen] = await data("vendors", "connections", "--tenant", name)
    assert (seen["forced_open"], seen["breaker"]) == (False, "HALF_OPEN")
    assert "re-encrypted the credentials of" in await ok("vendors", "rotate-credentials")


def test_unreachable_services_are_named_in_one_line(tmp_path: Path) -> None:
    env = {"AWFDRS_STACK_FILE": str(tmp_path / "none.json")}
    temporal = awfdrs({**env, "AWFDRS_TEMPORAL_ADDRESS": "127.0.0.1:1"}, "incidents",
                      "approve", str(uuid.uuid4()), "--plan", "p", "--by", "x")  # fmt: skip
    assert temporal.returncode == 1
    assert temporal.stderr.strip() == "awfdrs: cannot reach Temporal at 127.0.0.1:1"
    database = awfdrs({**env, "AWFDRS_DATABASE_URL": "postgresql://awfdrs_app@127.0.0.1:1/x",
                       "AWFDRS_MIGRATION_DATABASE_URL": "postgresql://o@127.0.0.1:1/x"},
                      "tenants", "list")  # fmt: skip
    assert database.returncode == 1
    assert database.stderr.startswith("awfdrs: cannot reach PostgreSQL at 127.0.0.1:1/x")
    assert len(database.stderr.strip().splitlines()) == 1
    unset = awfdrs(env, "tenants", "list")
    assert unset.returncode == 1
    assert unset.stderr.strip() == "awfdrs: AWFDRS_DATABASE_URL is not set"


def test_the_actor_is_the_key_through_the_api_and_required_without_it(tmp_path: Path) -> None:
    env = {"AWFDRS_STACK_FILE": str(tmp_path / "none.json"), "COLUMNS": "200"}
    incident = str(uuid.uuid4())
    no_by = awfdrs(env, "incidents", "resolve", incident, "--reason", "x")
    assert no_by.returncode == 2
    assert "required without the API" in no_by.stderr
    half = awfdrs({**env, "AWFDRS_API_URL": "http://127.0.0.1:1"}, "incidents", "list")
    assert half.returncode == 1
    assert half.stderr.startswith("awfdrs: AWFDRS_API_KEY is not set")
    api = {**env, "AWFDRS_API_URL": "http://127.0.0.1:1", "AWFDRS_API_KEY": "awfdrs_x"}
    unreachable = awfdrs(api, "incidents", "list")
    assert unreachable.returncode == 1
    assert unreachable.stderr.startswith("awfdrs: cannot reach the API at http://127.0.0.1:1")
    tenant = awfdrs(api, "kill-switch", "activate", "--tenant", "acme", "--reason", "x")
    assert tenant.returncode == 2
    assert "the tenant is the key's" in tenant.stderr
