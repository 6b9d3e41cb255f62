"""The per-run test database: built by the real migrations, dropped at the end."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from awfdrs.devstack import postgres
from awfdrs.devstack.postgres import LOCAL_ADMIN_URL, ScratchDatabase

__all__ = ["ScratchDatabase", "scratch_database"]


@asynccontextmanager
async def scratch_database(tmp_root: Path) -> AsyncIterator[ScratchDatabase]:
    """A fresh database on ``AWFDRS_TEST_DATABASE_URL`` or, when nothing answers there, on an
    embedded PostgreSQL started in ``tmp_root``."""
    admin_url = os.environ.get("AWFDRS_TEST_DATABASE_URL", LOCAL_ADMIN_URL)
    async with postgres.scratch_database(admin_url, tmp_root, "awfdrs_test") as database:
        yield database
