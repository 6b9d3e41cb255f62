from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Result, func, literal_column, update
from sqlalchemy.dialects.postgresql import insert

from awfdrs.db.models import FuseEpisode
from awfdrs.db.repositories.base import BaseRepository


class FuseEpisodeRepository(BaseRepository[FuseEpisode]):
    """The tenant's systemic-failure episodes; at most one open at a time."""

    model = FuseEpisode

    async def find_open(self) -> FuseEpisode | None:
        stmt = self._select().where(FuseEpisode.closed_at.is_(None))
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def open(
        self, *, incident_count: int, threshold: int, window_seconds: float, now: datetime
    ) -> tuple[FuseEpisode, bool]:
        """Open an episode unless one is open; (the open episode, whether this call opened it).

        The partial unique index decides between concurrent callers: exactly one opens it.
        """
        values = self._stamp(
            {
                "id": uuid.uuid4(),
                "opened_at": now,
                "incident_count": incident_count,
                "threshold": threshold,
                "window_seconds": window_seconds,
            }
        )
        inserted: Result[Any] = await self.session.execute(
            insert(FuseEpisode)
            .values(**values)
            .on_conflict_do_nothing(
                index_elements=[FuseEpisode.tenant_id],
                index_where=FuseEpisode.closed_at.is_(None),
            )
            .returning(literal_column("1"))
        )
        created = inserted.first() is not None
        episode = await self.find_open()
        assert episode is not None
        return episode, created

    async def close(self, episode_id: uuid.UUID) -> None:
        await self.session.execute(
            update(FuseEpisode)
            .where(self._in_scope(), FuseEpisode.id == episode_id, FuseEpisode.closed_at.is_(None))
            .values(closed_at=func.clock_timestamp())
        )

    async def mark_escalated(self, episode_id: uuid.UUID) -> bool:
        """True the first time only: the episode's single escalation is sent once."""
        result = await self.session.execute(
            update(FuseEpisode)
            .where(
                self._in_scope(), FuseEpisode.id == episode_id, FuseEpisode.escalated_at.is_(None)
            )
            .values(escalated_at=func.clock_timestamp())
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def claim_escalation(
        self, episode_id: uuid.UUID, incident_id: uuid.UUID
    ) -> FuseEpisode | None:
        """Make ``incident_id`` the one sender of the episode's escalation, unless another
        incident claimed it first; the episode when this incident owns it, else None."""
        claimed = await self._update_returning(
            FuseEpisode.id == episode_id,
            (FuseEpisode.escalation_incident_id.is_(None))
            | (FuseEpisode.escalation_incident_id == incident_id),
            escalation_incident_id=incident_id,
            escalation_claimed_at=func.coalesce(
                FuseEpisode.escalation_claimed_at, func.clock_timestamp()
            ),
        )
        return claimed[0] if claimed else None

    async def note_escalation_error(self, episode_id: uuid.UUID, error: str) -> None:
        await self.session.execute(
            update(FuseEpisode)
            .where(self._in_scope(), FuseEpisode.id == episode_id)
            .values(escalation_error=error[:2000])
        )
