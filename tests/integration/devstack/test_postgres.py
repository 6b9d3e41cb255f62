from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from awfdrs.config import asyncpg_dsn
from awfdrs.devstack.postgres import is_reachable
from tests.support.database import scratch_database


async def test_an_unreachable_server_falls_back_to_embedded_postgres(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Nothing listens on port 9 of loopback: the harness must start its own PostgreSQL.
    monkeypatch.setenv("AWFDRS_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:9/postgres")
    assert not await is_reachable("postgresql://postgres@127.0.0.1:9/postgres", wait_seconds=1)
    async with scratch_database(tmp_path) as db:
        assert "127.0.0.1:9" not in db.owner_url
        connection = await asyncpg.connect(asyncpg_dsn(db.app_url))
        try:
            assert await connection.fetchval("SELECT current_user") == "awfdrs_app"
            assert await connection.fetchval("SELECT count(*) FROM events") == 0
            assert int(await connection.fetchval("SHOW server_version_num")) >= 150000
        finally:
            await connection.close()
