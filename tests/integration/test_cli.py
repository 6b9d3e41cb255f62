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
import typer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import WorkflowEnvironment
from typer.core import TyperGroup
from typer.testing import CliRunner

from awfdrs.cli import app
from awfdrs.db.session import tenant_session
from awfdrs.devstack.servers import EscalationReceiver, FlakyVendor
from tests.support.database import ScratchDatabase
from tests.support.factories import make_incident, make_tenant
from tests.support.pipeline import Stack, eventually
from tests.support.principals import SIGNING_KEY
from tests.support.processes import CREDENTIALS_KEY


def commands(group: TyperGroup | None = None, path: tuple[str, ...] = ()) -> list[list[str]]:
    """Every command the awfdrs app has, as the words that name it (``["vendors", "add"]``)."""
    group = group or typer.main.get_group(app)
    found = []
    for name, command in sorted(group.commands.items()):
        if isinstance(command, TyperGroup):
            found += commands(command, (*path, name))
        else:
            found.append([*path, name])
    return found


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


def test_the_command_list_is_the_apps_own() -> None:
    """A command added later is checked below without anyone listing it."""
    assert {"up", "ingest", "vendors add", "incidents approve", "audit verify"} <= {
        " ".join(command) for command in commands()
    }


@pytest.mark.parametrize("command", commands(), ids=" ".join)
def test_every_command_has_help_with_an_example(command: list[str]) -> None:
    # In process: a fresh interpreter per command costs seconds of imports each, and
    # `awfdrs --help` as a process is checked by test_version_and_flags_in_help.
    done = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert done.exit_code == 0, done.output
    assert "Example:" in done.output


@pytest.mark.timeout(300)  # some forty commands, a process each, on a shared machine
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
    await ok("tenants", "set", name, "escalation_routing_key=routing-secret-7")
    for masked in (
        await ok("tenants", "show", name),
        json.dumps(await data("tenants", "show", name)),
    ):
        assert "routing-secret-7" not in masked
        assert "***" in masked
    typo = await run("tenants", "show", name[:-1])
    assert typo.returncode == 1
    assert typo.stderr.strip() == f"awfdrs: no tenant named {name[:-1]!r}; did you mean {name!r}?"
    assert name in {t["name"] for t in await data("tenants", "list")}
    refused = await run("tenants", "set", name, "confidence_threshold=2")
    assert refused.returncode == 1
    assert refused.stderr.strip().startswith("awfdrs: confidence_threshold:")
    flow = await data("workflows", "add", "payments", "--tenant", name)
    assert [w["name"] for w in await data("workflows", "list", "--tenant", name)] == ["payments"]
    flow_typo = await run("workflows", "set", "paymnts", "--tenant", name, "remediation_mode=off")
    assert flow_typo.returncode == 1
    assert "no workflow named 'paymnts'; did you mean 'payments'?" in flow_typo.stderr
    vendor_name = f"v-{uuid.uuid4().hex[:8]}"
    await ok("vendors", "add", vendor_name, "--base-url", vendor.url)
    assert vendor_name in {v["name"] for v in await data("vendors", "list")}
    connected = await data("vendors", "connect", vendor_name, "--tenant", name, "--header",
                           "Authorization: Bearer cli-secret-9", "--rate-limit", "30")  # fmt: skip
    assert connected["credentials"] == {"Authorization": "***"}
    assert connected["rate_limit_per_minute"] == 30
    vendor_typo = await run("vendors", "force-open", vendor_name[:-1], "--by", "a", "--reason", "r")
    assert vendor_typo.returncode == 1
    assert f"did you mean {vendor_name!r}?" in vendor_typo.stderr
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
    [touched] = summary["incidents"]
    assert touched["opened"] is True
    assert summary["rejections"][0]["reason"].startswith("line 5: not JSON")

    async def escalated() -> dict[str, Any] | None:
        [row] = await data("incidents", "list", "--tenant", name)
        return row if row["status"] == "ACTIONED" else None

    incident = await eventually(escalated, 30, "the incident to be escalated")
    assert [
        r["id"] for r in await data("incidents", "list", "--status", "actioned", "--limit", "500")
    ].count(incident["id"]) == 1
    assert touched["id"] == incident["id"]
    assert (incident["tenant"], incident["tenant_id"]) == (name, tenant["id"])
    details = await data("incidents", "show", incident["id"][:8])
    assert details["id"] == incident["id"]
    assert (details["tenant"], details["tenant_id"]) == (name, tenant["id"])
    assert [d["type"] for d in details["decisions"]] == ["escalate"]
    assert details["decisions"][0]["reasoning"].startswith("Permanent")
    assert [(a["type"], a["status"]) for a in details["actions"]] == [("escalate", "SUCCEEDED")]
    assert len(details["events_shown"]) == 3
    human = await ok("incidents", "show", incident["id"])
    assert "timeline" in human
    assert f"{details['last_seen_at'][:10]} " in human
    assert " UTC" in human
    assert "decision escalate (0.90, awfdrs-rules/1)" in human
    not_waiting = await run(
        "incidents", "approve", incident["id"], "--plan", "plan-0", "--by", "alice"
    )
    assert not_waiting.returncode == 1
    assert "is not waiting for approval" in not_waiting.stderr
    resolved = await ok(
        "incidents", "resolve", incident["id"][:8], "--by", "alice", "--reason", "BIN fixed"
    )
    # The status once: the close's own words begin with it.
    said = " ".join(resolved.split())
    assert said == f"incident {incident['id']}: RESOLVED: resolved by alice: BIN fixed"
    again = await run("incidents", "resolve", incident["id"], "--by", "bob", "--reason", "x")
    assert again.returncode == 1
    assert again.stderr.startswith(f"awfdrs: incident {incident['id']} is already RESOLVED (at ")
    assert " UTC)" in again.stderr
    assert "Temporal" not in again.stderr
    late = await run("incidents", "ignore", incident["id"][:8], "--by", "bob", "--reason", "x")
    assert late.returncode == 1
    assert "is already RESOLVED (at " in late.stderr

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
    await ok("vendors", "release", vendor_name, "--tenant", name, "--by", "bob",
             "--reason", "INC-2 over")  # fmt: skip
    rows = [
        json.loads(line) for line in (await ok("audit", "export", "--tenant", name)).splitlines()
    ]
    [released] = [r for r in rows if "connection.release" in json.dumps(r)]
    assert released["actor"] == "bob"
    assert "INC-2 over" in json.dumps(released["body"])
    [forced_row] = [r for r in rows if "connection.force_open" in json.dumps(r)]
    assert forced_row["actor"] == "bob"
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
    assert unset.stderr.startswith("awfdrs: AWFDRS_DATABASE_URL is not set, and no local stack")


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


def test_a_missing_file_is_named_not_taken_for_a_database_outage(tmp_path: Path) -> None:
    env = {"AWFDRS_STACK_FILE": str(tmp_path / "none.json"),
           "AWFDRS_DATABASE_URL": "postgresql://awfdrs_app@127.0.0.1:1/x"}  # fmt: skip
    missing = str(tmp_path / "events.jsonl")
    done = awfdrs(env, "ingest", missing)
    assert done.returncode == 1
    assert done.stderr.strip() == f"awfdrs: no such file: {missing!r}"
    assert "PostgreSQL" not in done.stderr


def test_version_and_flags_in_help() -> None:
    from awfdrs import __version__

    version = awfdrs({}, "--version")
    assert (version.returncode, version.stdout.strip()) == (0, f"awfdrs {__version__}")
    shown = awfdrs({"COLUMNS": "200"}, "incidents", "list", "--help")
    assert shown.returncode == 0
    assert "<bool>" not in shown.stdout
    [json_line] = [line for line in shown.stdout.splitlines() if "--json" in line]
    assert "Print JSON" in json_line
    assert "<int range>" in shown.stdout  # options that take a value still show its type


async def test_an_incident_is_named_by_a_unique_start_of_its_id(
    cli_env: dict[str, str], committed_sessions: async_sessionmaker[AsyncSession]
) -> None:
    tenant = await make_tenant(committed_sessions)
    other = await make_tenant(committed_sessions)
    shared = uuid.uuid4().hex[:8]
    first, second = (uuid.UUID(shared + uuid.uuid4().hex[8:]) for _ in range(2))
    async with tenant_session(committed_sessions, tenant.id) as session:
        await make_incident(session, tenant, "sig-a", id=first)
    async with tenant_session(committed_sessions, other.id) as session:
        await make_incident(session, other, "sig-b", id=second)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return awfdrs(cli_env, *args)

    ambiguous = await asyncio.to_thread(run, "incidents", "show", shared)
    assert ambiguous.returncode == 1
    assert f"incident id prefix {shared!r} is ambiguous" in ambiguous.stderr
    assert str(first) in ambiguous.stderr
    assert str(second) in ambiguous.stderr
    unique = str(first)[:13]  # with the hyphen, as printed
    shown = await asyncio.to_thread(run, "incidents", "show", unique, "--json")
    assert shown.returncode == 0, shown.stderr
    found = json.loads(shown.stdout)
    assert (found["id"], found["tenant_id"], found["tenant"]) == (
        str(first),
        str(tenant.id),
        tenant.name,
    )
    absent = "0" * 8 if not shared.startswith("0000") else "f" * 8
    missing = await asyncio.to_thread(run, "incidents", "show", absent)
    assert missing.returncode == 1
    assert missing.stderr.strip() == f"awfdrs: no incident id starts with {absent!r}"
    short = await asyncio.to_thread(run, "incidents", "resolve", "ab", "--by", "x", "--reason", "y")
    assert short.returncode == 1
    assert "give at least 4 characters" in short.stderr


async def test_keys_and_kill_switches_are_named_by_a_unique_start_of_their_id(
    cli_env: dict[str, str], committed_sessions: async_sessionmaker[AsyncSession]
) -> None:
    tenant = await make_tenant(committed_sessions)

    async def run(*args: str) -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(awfdrs, cli_env, *args)

    created = await run("keys", "create", "--tenant", tenant.name, "--role", "Viewer", "--json")
    assert created.returncode == 0, created.stderr
    key_id = json.loads(created.stdout)["id"]
    no_tenant = await run("keys", "revoke", key_id[:8])
    assert no_tenant.returncode == 1
    assert "add --tenant" in no_tenant.stderr
    revoked = await run("keys", "revoke", key_id[:8], "--tenant", tenant.name)
    assert revoked.returncode == 0, revoked.stderr
    assert f"key {key_id} " in revoked.stdout
    assert " UTC" in revoked.stdout

    activated = await run("kill-switch", "activate", "--tenant", tenant.name, "--by", "alice",
                          "--reason", "maintenance")  # fmt: skip
    assert activated.returncode == 0, activated.stderr
    listed = await run("kill-switch", "list", "--tenant", tenant.name, "--json")
    [switch] = json.loads(listed.stdout)["active"]
    released = await run("kill-switch", "release", "--tenant", tenant.name, "--by", "bob",
                         "--switch", switch["switch_id"][:8])  # fmt: skip
    assert released.returncode == 0, released.stderr
    after = await run("kill-switch", "list", "--tenant", tenant.name, "--json")
    assert json.loads(after.stdout)["active"] == []
    unknown = await run("kill-switch", "release", "--tenant", tenant.name, "--by", "bob",
                        "--switch", "0000-0000")  # fmt: skip
    assert unknown.returncode == 1
    assert "no kill switch id starts with '0000-0000'" in unknown.stderr
