from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import any_, bindparam, func
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.types import String

from awfdrs.db.models import Event, WorkflowEventCount
from awfdrs.db.repositories.base import BaseRepository, fetch_raw
from awfdrs.intake import NewEvent

# One statement for the whole batch: the arrays are unnested server-side, so the statement text
# (and its prepared plan) is the same whatever the batch size. It runs on the session's own
# asyncpg connection, inside its transaction: SQLAlchemy's per-value parameter processing costs
# more than the statement itself on batches of a thousand rows.
INSERT_MANY_SQL = """
    INSERT INTO events (tenant_id, workflow_id, event_type, outcome, payload, idempotency_key,
                        occurred_at, severity, signature, fingerprint_version, payload_hash,
                        correlation_id)
    SELECT CAST($1 AS uuid), u.workflow_id, u.event_type, u.outcome,
           CAST(u.payload AS jsonb), u.idempotency_key, u.occurred_at, u.severity, u.signature,
           u.fingerprint_version, u.payload_hash, u.correlation_id
    FROM unnest(CAST($2 AS uuid[]), CAST($3 AS text[]),
                CAST($4 AS text[]), CAST($5 AS text[]), CAST($6 AS text[]),
                CAST($7 AS timestamptz[]), CAST($8 AS text[]),
                CAST($9 AS text[]), CAST($10 AS smallint[]),
                CAST($11 AS text[]), CAST($12 AS text[]))
         AS u(workflow_id, event_type, outcome, payload, idempotency_key, occurred_at, severity,
              signature, fingerprint_version, payload_hash, correlation_id)
    ORDER BY u.idempotency_key
    ON CONFLICT ON CONSTRAINT uq_events_tenant_id_idempotency_key DO NOTHING
    RETURNING idempotency_key, id
    """


class EventRepository(BaseRepository[Event]):
    """The tenant's immutable event log: insert and read, never update or delete."""

    model = Event

    async def insert_new(self, rows: Sequence[NewEvent]) -> dict[str, uuid.UUID]:
        """Insert every row whose idempotency key is new; return the keys really inserted, with
        the ids of their rows.

        Existing keys are left untouched (``ON CONFLICT DO NOTHING``), so a redelivered batch
        inserts nothing. Rows go in key order, so two concurrent batches sharing keys wait on
        each other instead of deadlocking. Keys must be unique within ``rows``.
        """
        if not rows:
            return {}
        ordered = sorted(rows, key=lambda r: r.idempotency_key)
        found = await fetch_raw(
            self.session,
            INSERT_MANY_SQL,
            str(self.tenant_id),
            [r.workflow_id for r in ordered],
            [r.event_type for r in ordered],
            [r.outcome.value for r in ordered],
            [r.payload_json for r in ordered],
            [r.idempotency_key for r in ordered],
            [r.occurred_at for r in ordered],
            [r.severity.value if r.severity else None for r in ordered],
            [r.signature for r in ordered],
            [r.fingerprint_version for r in ordered],
            [r.payload_hash for r in ordered],
            [r.correlation_id for r in ordered],
        )
        return {row[0]: row[1] for row in found}

    async def list_payload_hashes(self, keys: Collection[str]) -> dict[str, str]:
        """Stored ``payload_hash`` by idempotency key, for the keys that exist."""
        if not keys:
            return {}
        wanted = bindparam("keys", list(keys), type_=ARRAY(String))
        stmt = self._scoped(Event.idempotency_key, Event.payload_hash).where(
            Event.idempotency_key == any_(wanted)
        )
        return dict((await self.session.execute(stmt)).all())

    async def get_by_idempotency_key(self, idempotency_key: str) -> Event | None:
        stmt = self._select().where(Event.idempotency_key == idempotency_key)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def get_recent_events(
        self, workflow_id: uuid.UUID, *, hours: float = 24, limit: int = 100
    ) -> Sequence[Event]:
        """The workflow's events of the last ``hours``, newest first (ix_events_tenant_workflow)."""
        cutoff = datetime.now(UTC) - timedelta(hours=hours)
        stmt = (
            self._select()
            .where(Event.workflow_id == workflow_id, Event.occurred_at >= cutoff)
            .order_by(Event.occurred_at.desc())
            .limit(limit)
        )
        return (await self.session.execute(stmt)).scalars().all()

    async def count_events(self, workflow_id: uuid.UUID | None = None) -> int:
        """Events of the tenant, or of one of its workflows: a sum over the counts the database
        keeps as events are inserted (migration 0004), not a scan of the events."""
        stmt = self._scoped_on(
            WorkflowEventCount, func.coalesce(func.sum(WorkflowEventCount.events), 0)
        )
        if workflow_id is not None:
            stmt = stmt.where(WorkflowEventCount.workflow_id == workflow_id)
        return int((await self.session.execute(stmt)).scalar_one())

    async def list_for_signature(
        self,
        signature: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> Sequence[Event]:
        """Failures of one signature in time order, optionally within ``[since, until]``."""
        stmt = self._select().where(Event.signature == signature)
        if since is not None:
            stmt = stmt.where(Event.received_at >= since)
        if until is not None:
            stmt = stmt.where(Event.received_at <= until)
        stmt = stmt.order_by(Event.occurred_at, Event.id).limit(limit)
        return (await self.session.execute(stmt)).scalars().all()

    async def count_received_since(self, signature: str, since: datetime) -> int:
        """Failures of ``signature`` received after ``since``: did it fail again?"""
        stmt = self._scoped(func.count()).where(
            Event.signature == signature, Event.received_at > since
        )
        return int((await self.session.execute(stmt)).scalar_one())

    async def find_latest_for_signature(self, signature: str) -> Event | None:
        """The most recent failure of a signature: the one analysis and retries work from."""
        stmt = (
            self._select()
            .where(Event.signature == signature)
            .order_by(Event.occurred_at.desc(), Event.id.desc())
            .limit(1)
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()
