"""``awfdrs audit``, run as a user runs it: verify (and the issue's tamper test), export."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from awfdrs.db.repositories import AuditRepository, KillSwitchRepository
from awfdrs.db.session import tenant_session
from tests.integration.test_cli import awfdrs
from tests.support.database import ScratchDatabase
from tests.support.factories import TenantRef, make_tenant


@pytest.fixture
def db_env(database: ScratchDatabase, tmp_path: Path) -> dict[str, str]:
    return {
        "AWFDRS_DATABASE_URL": database.app_url,
        "AWFDRS_MIGRATION_DATABASE_URL": database.owner_url,
        "AWFDRS_STACK_FILE": str(tmp_path / "no-stack.json"),
        "COLUMNS": "200",
    }


@pytest.fixture
async def audited(committed_sessions: async_sessionmaker[AsyncSession]) -> TenantRef:
    """A tenant whose chain has 6 rows: commands, and a kill switch activated and released."""
    tenant = await make_tenant(committed_sessions)
    for n in range(4):
        async with tenant_session(committed_sessions, tenant.id) as session:
            await AuditRepository(session, tenant_id=tenant.id).record_command(
                f"op-{n}", "resolve", ("incident", uuid.uuid4()), {"reason": f"r{n} ✓"}
            )
    async with tenant_session(committed_sessions, tenant.id) as session:
        switch = await KillSwitchRepository(session, tenant_id=tenant.id).add(
            reason="outage", activated_by="alice"
        )
    async with tenant_session(committed_sessions, tenant.id) as session:
        await KillSwitchRepository(session, tenant_id=tenant.id).release(
            released_by="bob", reason=None, switch_id=switch.id
        )
    return tenant


async def cli(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    done = await asyncio.to_thread(awfdrs, env, *args)
    return done.returncode, done.stdout, done.stderr


async def test_verify_then_tamper_as_the_owner_then_verify_names_the_row(
    db_env: dict[str, str],
    audited: TenantRef,
    committed_sessions: async_sessionmaker[AsyncSession],
    owner_engine: AsyncEngine,
) -> None:
    async with tenant_session(committed_sessions, audited.id) as session:
        rows = await AuditRepository(session, tenant_id=audited.id).list()
    code, out, err = await cli(db_env, "audit", "verify", "--tenant", audited.name)
    assert (code, out.strip(), err) == (0, f"chain intact: 6 rows, head {rows[-1].hash}", "")
    code, out, _ = await cli(db_env, "audit", "verify", "--tenant", str(audited.id), "--json")
    assert code == 0
    assert json.loads(out) == {
        "tenant_id": str(audited.id), "intact": True, "rows": 6, "head": rows[-1].hash,
        "broken": None,
    }  # fmt: skip

    # The test: the owner turns the triggers off, changes a row, turns them back on.
    async with owner_engine.begin() as connection:
        await connection.execute(text("ALTER TABLE audit_log DISABLE TRIGGER ALL"))
        await connection.execute(
            text(
                "UPDATE audit_log SET body = jsonb_set(body, '{args,reason}', '\"nothing\"') "
                "WHERE tenant_id = :t AND seq = 3"
            ),
            {"t": audited.id},
        )
        await connection.execute(text("ALTER TABLE audit_log ENABLE TRIGGER ALL"))

    code, out, _ = await cli(db_env, "audit", "verify", "--tenant", audited.name)
    assert code == 1
    assert out.startswith(f"chain broken at seq 3 (id {rows[2].id}): hash: stored {rows[2].hash}")
    code, out, _ = await cli(db_env, "audit", "verify", "--tenant", audited.name, "--json")
    assert code == 1
    broken = json.loads(out)["broken"]
    assert (broken["seq"], broken["id"], broken["reason"]) == (3, str(rows[2].id), "hash")


async def test_export_writes_every_row_as_json_lines(
    db_env: dict[str, str],
    audited: TenantRef,
    committed_sessions: async_sessionmaker[AsyncSession],
    tmp_path: Path,
) -> None:
    async with tenant_session(committed_sessions, audited.id) as session:
        rows = await AuditRepository(session, tenant_id=audited.id).list()
    target = tmp_path / "audit.jsonl"
    code, out, err = await cli(
        db_env, "audit", "export", "--tenant", audited.name, "--output", str(target)
    )
    assert code == 0, err
    assert out.strip() == f"6 rows written to {target} (last seq 6)"
    exported = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    assert [
        (e["seq"], e["id"], e["kind"], e["actor"], e["prev_hash"], e["hash"]) for e in exported
    ] == [(r.seq, str(r.id), r.kind, r.actor, r.prev_hash, r.hash) for r in rows]
    assert [e["body"] for e in exported] == [r.body for r in rows]
    assert exported[0]["body"]["args"]["reason"] == "r0 ✓"
    for entry, row in zip(exported, rows, strict=True):
        assert entry["tenant_id"] == str(audited.id)
        assert (entry["subject_type"], entry["subject_id"]) == (row.subject_type, row.subject_id)
        assert entry["occurred_at"].endswith("+00:00")
        assert datetime.fromisoformat(entry["occurred_at"]) == row.occurred_at
    assert set(exported[0]) == {
        "tenant_id", "seq", "id", "occurred_at", "actor", "kind", "subject_type", "subject_id",
        "body", "prev_hash", "hash",
    }  # fmt: skip

    # Incremental: only what came after the last seq exported, to standard output.
    code, out, err = await cli(db_env, "audit", "export", "--tenant", audited.name, "--since", "4")
    assert code == 0, err
    assert [json.loads(line)["seq"] for line in out.splitlines()] == [5, 6]
    assert [json.loads(line)["kind"] for line in out.splitlines()] == [
        "kill_switch.activated",
        "kill_switch.released",
    ]


async def test_an_unknown_tenant_is_one_line(db_env: dict[str, str]) -> None:
    code, out, err = await cli(db_env, "audit", "verify", "--tenant", "no-such-tenant")
    assert (code, out) == (1, "")
    assert err.startswith("awfdrs: no tenant named 'no-such-tenant'")
