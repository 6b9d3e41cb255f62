from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from awfdrs.db.repositories.base import fetch_raw

OUTBOX_CHANNEL = "awfdrs_outbox"
ADD_SQL = """
    INSERT INTO outbox (tenant_id, task_queue, incident_id, start, opened, severity, recovered,
                        joined)
    SELECT CAST($1 AS uuid), $2, n.incident_id, CAST(n.start AS jsonb), n.opened, n.severity,
           n.recovered, n.joined
    FROM unnest(CAST($3 AS uuid[]), CAST($4 AS text[]), CAST($5 AS boolean[]),
                CAST($6 AS text[]), CAST($7 AS boolean[]), CAST($8 AS boolean[]))
         AS n(incident_id, start, opened, severity, recovered, joined)
    """


@dataclass(frozen=True, slots=True)
class Notice:
    """What one incident's workflow must hear from one ingest transaction."""

    incident_id: uuid.UUID
    start: dict[str, Any]
    opened: bool = False
    severity: str | None = None
    recovered: bool = False
    joined: bool = False


@dataclass(frozen=True, slots=True)
class Claimed:
    id: int
    tenant_id: uuid.UUID
    incident_id: uuid.UUID
    start: dict[str, Any]
    opened: bool
    severity: str | None
    recovered: bool
    joined: bool
    attempts: int
    created_at: datetime


class OutboxRepository:
    """Writing notices in the tenant's ingest transaction (row-level security applies)."""

    def __init__(self, session: AsyncSession, *, tenant_id: uuid.UUID) -> None:
        self.session = session
        self.tenant_id = tenant_id

    async def add(self, notices: Sequence[Notice], *, task_queue: str) -> None:
        """One row per notice, in one statement; a statement trigger NOTIFYs the dispatcher
        at commit. No RETURNING: the application role may write notices, not read them."""
        if not notices:
            return
        await fetch_raw(
            self.session,
            ADD_SQL,
            str(self.tenant_id),
            task_queue,
            [n.incident_id for n in notices],
            [json.dumps(n.start) for n in notices],
            [n.opened for n in notices],
            [n.severity for n in notices],
            [n.recovered for n in notices],
            [n.joined for n in notices],
        )


class OutboxQueue:
    """The dispatcher's side, across tenants, only through the SECURITY DEFINER functions of
    migration 0005: claim (a lease: the rows are pushed ``lease_seconds`` into the future, so
    the other dispatchers skip them once the caller commits), done, defer, stats. The caller
    owns the transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def claim(self, task_queue: str, batch: int, lease_seconds: float) -> list[Claimed]:
        rows = await self.session.execute(
            text(
                "SELECT id, tenant_id, incident_id, start, opened, severity, recovered, joined, "
                "attempts, created_at FROM awfdrs_outbox_claim(:queue, :batch, :lease)"
            ),
            {"queue": task_queue, "batch": batch, "lease": lease_seconds},
        )
        return [Claimed(**row._mapping) for row in rows]

    async def done(self, ids: Sequence[int]) -> int:
        if not ids:
            return 0
        result = await self.session.execute(
            text("SELECT awfdrs_outbox_done(CAST(:ids AS bigint[]))"), {"ids": list(ids)}
        )
        return int(result.scalar_one())

    async def defer(self, ids: Sequence[int], error: str, delay_seconds: float) -> int:
        if not ids:
            return 0
        result = await self.session.execute(
            text("SELECT awfdrs_outbox_defer(CAST(:ids AS bigint[]), :error, :delay)"),
            {"ids": list(ids), "error": error, "delay": delay_seconds},
        )
        return int(result.scalar_one())

    async def count_pending(self) -> tuple[int, datetime | None]:
        """(rows waiting, when the oldest was written)."""
        row = (await self.session.execute(text("SELECT * FROM awfdrs_outbox_stats()"))).one()
        return int(row.depth), row.oldest
