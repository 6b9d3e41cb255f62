"""Engines, session factories and the tenant-scoped unit of work.

Nothing here connects or builds anything at import time. Long-lived processes (the worker) build
one engine and one session factory with :func:`build_engine` / :func:`make_sessionmaker` and
inject them; scripts may use the lazily built process default behind :func:`get_session`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from awfdrs.config import Settings, get_settings

_SET_TENANT = text("SELECT set_config('app.tenant_id', :tenant, true)")

_default_engine: AsyncEngine | None = None
_default_sessions: async_sessionmaker[AsyncSession] | None = None


# JIT off: ingest's set-based statements over a few thousand rows cost past jit_above_cost, and
# compiling them took longer than running them; on a loaded machine a 1,000-request batch took
# tens of seconds (measured: an incident of 12,000 requests took over 120 s to ingest with JIT,
# 20 s without, on two busy cores).
SERVER_SETTINGS = {"jit": "off"}


def build_engine(url: str, settings: Settings | None = None) -> AsyncEngine:
    """A pooled asyncpg engine for ``url``, sized by the pool settings."""
    settings = settings or get_settings()
    return create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout,
        # A worker outlives database restarts; a stale pooled connection is replaced, not used.
        pool_pre_ping=True,
        connect_args={"server_settings": SERVER_SETTINGS | {"application_name": "awfdrs"}},
    )


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded attributes after commit: results are read after the unit ends."""
    return async_sessionmaker(engine, expire_on_commit=False)


def get_engine() -> AsyncEngine:
    """The process-wide engine on ``AWFDRS_DATABASE_URL``, built on first use."""
    global _default_engine, _default_sessions
    if _default_engine is None:
        settings = get_settings()
        _default_engine = build_engine(settings.require_database_url(), settings)
        _default_sessions = make_sessionmaker(_default_engine)
    return _default_engine


@asynccontextmanager
async def get_session() -> AsyncIterator[AsyncSession]:
    """A session on the process-wide engine, closed on exit; the caller commits.

    No tenant is set, so row-level security shows no tenant-owned rows: use
    :func:`tenant_session` for those. Useful for the global tables (vendors).
    """
    get_engine()
    assert _default_sessions is not None
    async with _default_sessions() as session:
        yield session


async def close_db() -> None:
    """Dispose of the process-wide engine, if one was built."""
    global _default_engine, _default_sessions
    if _default_engine is not None:
        await _default_engine.dispose()
    _default_engine = None
    _default_sessions = None


@asynccontextmanager
async def tenant_session(
    sessions: async_sessionmaker[AsyncSession], tenant_id: uuid.UUID
) -> AsyncIterator[AsyncSession]:
    """One transaction as ``tenant_id``: commit once on success, roll back on any error.

    The tenant goes to PostgreSQL with ``set_config(..., is_local => true)``, a bound parameter
    scoped to this transaction, so row-level security filters every statement inside and a pooled
    connection carries nothing over to its next user.
    """
    async with sessions() as session, session.begin():
        await session.execute(_SET_TENANT, {"tenant": str(tenant_id)})
        yield session
