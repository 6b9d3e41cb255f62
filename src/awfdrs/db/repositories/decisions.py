from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import literal_column
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.sql.dml import ReturningInsert

from awfdrs.db.models import Decision
from awfdrs.db.repositories.base import BaseRepository


class DecisionRepository(BaseRepository[Decision]):
    """The append-only audit trail of decisions: insert and read, never update or delete."""

    model = Decision

    async def add_once(self, **values: Any) -> Decision:
        """Insert a decision whose ``id`` the caller chose, or return the one already stored.

        Temporal may run the activity that records a decision more than once; the id, fixed by
        the workflow, makes the second run find the first run's row instead of adding another.
        """
        values = self._stamp(values)
        stmt: ReturningInsert[Any] = (
            insert(Decision)
            .values(**values)
            .on_conflict_do_nothing(index_elements=[Decision.id])
            .returning(literal_column("1"))
        )
        await self.session.execute(stmt)
        return await self.get(values["id"])

    async def list_for_incident(self, incident_id: uuid.UUID) -> Sequence[Decision]:
        """Decisions of one incident, oldest first: the order they were taken in."""
        stmt = (
            self._select()
            .where(Decision.incident_id == incident_id)
            .order_by(Decision.created_at, Decision.id)
        )
        return (await self.session.execute(stmt)).scalars().all()
