from __future__ import annotations

import uuid
from collections.abc import Sequence

from awfdrs.db.models import Decision
from awfdrs.db.repositories.base import BaseRepository


class DecisionRepository(BaseRepository[Decision]):
    """The append-only audit trail of decisions: insert and read, never update or delete."""

    model = Decision

    async def list_for_incident(self, incident_id: uuid.UUID) -> Sequence[Decision]:
        """Decisions of one incident, oldest first: the order they were taken in."""
        stmt = (
            self._select()
            .where(Decision.incident_id == incident_id)
            .order_by(Decision.created_at, Decision.id)
        )
        return (await self.session.execute(stmt)).scalars().all()
