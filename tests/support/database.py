"""The per-run test database: built by the real migrations, dropped at the end."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from awfdrs.config import normalise_database_url
from awfdrs.db import migrate
from awfdrs.devstack.postgres import (
    EmbeddedPostgres,
    as_app_role,
    create_database,
    drop_database,
    is_reachable,
    with_database,
)

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


@dataclass(frozen=True)
class ScratchDatabase:
    admin_url: str  # the server's maintenance database, as a superuser
    owner_url: str  # the test database as its owner (migrations, admin checks)
    app_url: str  # the test database as awfdrs_app: row-level security applies
    name: str


@asynccontextmanager
async def scratch_database(tmp_root: Path) -> AsyncIterator[ScratchDatabase]:
    """A fresh database on ``AWFDRS_TEST_DATABASE_URL`` or, when nothing answers there, on an
    embedded PostgreSQL started in ``tmp_root``."""
    admin_url = normalise_database_url(
        os.environ.get("AWFDRS_TEST_DATABASE_URL", DEFAULT_ADMIN_URL)
    )
    embedded: EmbeddedPostgres | None = None
    if not await is_reachable(admin_url):
        embedded = EmbeddedPostgres(tmp_root / "pgdata")
        admin_url = await asyncio.to_thread(embedded.start)
    name = f"awfdrs_test_{secrets.token_hex(4)}"
    try:
        await create_database(admin_url, name)
        owner_url = with_database(admin_url, name)
        await asyncio.to_thread(migrate.upgrade, owner_url)
        yield ScratchDatabase(admin_url, owner_url, as_app_role(owner_url), name)
    finally:
        try:
            await drop_database(admin_url, name)
        finally:
            if embedded is not None:
                await asyncio.to_thread(embedded.stop)
