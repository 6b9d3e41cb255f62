"""Spent command credentials: each signed token is good for one use (awfdrs.signing)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, func
from sqlalchemy.dialects.postgresql import insert

from awfdrs.db.models import SpentCredential
from awfdrs.db.repositories.base import BaseRepository


class SpentCredentialRepository(BaseRepository[SpentCredential]):
    model = SpentCredential

    async def spend(
        self, *, jti: str, use_key: str, command: str, principal: str, expires_at: datetime
    ) -> bool:
        """Record ``jti`` as spent on ``use_key``; True when that is its use (the first time,
        or the same use again: a retried activity), False when it was spent on another."""
        # Kept an hour past expiry: a worker whose clock runs behind the database's must not
        # find a spent token forgotten while it still accepts it.
        await self.session.execute(
            delete(SpentCredential).where(
                self._in_scope(),
                SpentCredential.expires_at < func.clock_timestamp() - timedelta(hours=1),
            )
        )
        values = self._stamp(
            {
                "jti": jti,
                "use_key": use_key,
                "command": command,
                "principal": principal,
                "expires_at": expires_at,
            }
        )
        await self.session.execute(
            insert(SpentCredential)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["tenant_id", "jti"])
        )
        stmt = self._scoped(SpentCredential.use_key).where(SpentCredential.jti == jti)
        spent_on = (await self.session.execute(stmt)).scalar_one()
        return bool(spent_on == use_key)

    async def find_use(self, jti: str) -> str | None:
        """The use ``jti`` was spent on, if it was."""
        stmt = self._scoped(SpentCredential.use_key).where(SpentCredential.jti == jti)
        found: str | None = (await self.session.execute(stmt)).scalar_one_or_none()
        return found
