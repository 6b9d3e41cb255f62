from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, or_, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.sql.elements import ColumnElement

from awfdrs.db.models import KillSwitch
from awfdrs.db.repositories.base import (
    BaseRepository,
    DeletableMixin,
    MutableMixin,
    id_starts_with,
)

# pg_advisory_xact_lock(class, key): the class keeps awfdrs's locks apart from anyone else's.
KILL_SWITCH_LOCK_CLASS = 0x4B53  # "KS"
_LOCK = text("SELECT pg_advisory_xact_lock(:cls, hashtext(:tenant))")
_LOCK_SHARED = text("SELECT pg_advisory_xact_lock_shared(:cls, hashtext(:tenant))")


class KillSwitchRepository(
    MutableMixin[KillSwitch], DeletableMixin[KillSwitch], BaseRepository[KillSwitch]
):
    """The tenant's kill switches. A switch is in force while active and not past its expiry.

    Activation and enforcement serialise on a per-tenant advisory lock held to the end of their
    transactions: activation exclusively, the move of an action to IN_PROGRESS shared. So an
    action either started before the activation committed, or sees the switch and does not start.
    """

    model = KillSwitch

    def _in_force(self) -> ColumnElement[bool]:
        return KillSwitch.is_active.is_(True) & or_(
            KillSwitch.expires_at.is_(None), KillSwitch.expires_at > func.clock_timestamp()
        )

    async def lock_for_activation(self) -> None:
        await self.session.execute(
            _LOCK, {"cls": KILL_SWITCH_LOCK_CLASS, "tenant": str(self.tenant_id)}
        )

    async def lock_for_enforcement(self) -> None:
        await self.session.execute(
            _LOCK_SHARED, {"cls": KILL_SWITCH_LOCK_CLASS, "tenant": str(self.tenant_id)}
        )

    async def activate(
        self,
        *,
        switch_id: uuid.UUID,
        workflow_id: uuid.UUID | None,
        reason: str,
        activated_by: str,
        expires_at: datetime | None,
    ) -> KillSwitch:
        """Insert the switch (once per id) under the exclusive lock; returns the stored row."""
        await self.lock_for_activation()
        values = self._stamp(
            {
                "id": switch_id,
                "workflow_id": workflow_id,
                "reason": reason,
                "activated_by": activated_by,
                "expires_at": expires_at,
            }
        )
        await self.session.execute(
            insert(KillSwitch)
            .values(**values)
            .on_conflict_do_nothing(index_elements=[KillSwitch.id])
        )
        return await self.get(switch_id)

    async def find_covering(self, workflow_id: uuid.UUID) -> KillSwitch | None:
        """The oldest switch in force over ``workflow_id``: tenant-wide or that workflow's."""
        stmt = (
            self._select()
            .where(
                self._in_force(),
                or_(KillSwitch.workflow_id.is_(None), KillSwitch.workflow_id == workflow_id),
            )
            .order_by(KillSwitch.created_at)
            .limit(1)
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def list_by_id_prefix(self, prefix: str, limit: int = 11) -> Sequence[KillSwitch]:
        """This tenant's switches whose id starts with ``prefix`` (at most ``limit``, by id)."""
        stmt = self._select().where(id_starts_with(KillSwitch.id, prefix)).order_by(KillSwitch.id)
        return (await self.session.execute(stmt.limit(limit))).scalars().all()

    async def list_active(self) -> Sequence[KillSwitch]:
        """Switches in force, oldest first (expired ones are not, whatever ``is_active`` says)."""
        stmt = self._select().where(self._in_force()).order_by(KillSwitch.created_at, KillSwitch.id)
        return (await self.session.execute(stmt)).scalars().all()

    async def release(
        self,
        *,
        released_by: str,
        reason: str | None,
        switch_id: uuid.UUID | None = None,
        workflow_id: uuid.UUID | None = None,
    ) -> Sequence[KillSwitch]:
        """Release one switch by id, else every switch in force of a scope (None: tenant-wide)."""
        condition = self._releasable(switch_id, workflow_id)
        return await self._deactivate(condition, released_by=released_by, release_reason=reason)

    async def list_releasable(
        self, *, switch_id: uuid.UUID | None = None, workflow_id: uuid.UUID | None = None
    ) -> Sequence[KillSwitch]:
        """What :meth:`release` with the same arguments would release now."""
        stmt = self._select().where(self._releasable(switch_id, workflow_id))
        return (await self.session.execute(stmt)).scalars().all()

    def _releasable(
        self, switch_id: uuid.UUID | None, workflow_id: uuid.UUID | None
    ) -> ColumnElement[bool]:
        condition = self._in_force()
        if switch_id is not None:
            return condition & (KillSwitch.id == switch_id)
        if workflow_id is None:
            return condition & KillSwitch.workflow_id.is_(None)
        return condition & (KillSwitch.workflow_id == workflow_id)

    async def expire_due(self) -> Sequence[KillSwitch]:
        """Mark the switches whose expiry has passed as no longer active."""
        condition = KillSwitch.is_active.is_(True) & (
            KillSwitch.expires_at <= func.clock_timestamp()
        )
        return await self._deactivate(condition, released_by=None, release_reason="expired")

    async def _deactivate(
        self, condition: ColumnElement[bool], *, released_by: str | None, release_reason: str | None
    ) -> Sequence[KillSwitch]:
        return await self._update_returning(
            condition,
            is_active=False,
            released_by=released_by,
            released_at=func.clock_timestamp(),
            release_reason=release_reason,
        )

    async def find_next_expiry(self) -> datetime | None:
        stmt = select(func.min(KillSwitch.expires_at)).where(self._in_scope(), self._in_force())
        return (await self.session.execute(stmt)).scalar_one_or_none()
