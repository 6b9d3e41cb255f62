from __future__ import annotations

from collections.abc import Sequence

from awfdrs.db.models import KillSwitch
from awfdrs.db.repositories.base import BaseRepository, DeletableMixin, MutableMixin


class KillSwitchRepository(
    MutableMixin[KillSwitch], DeletableMixin[KillSwitch], BaseRepository[KillSwitch]
):
    """The tenant's kill switches, active and released."""

    model = KillSwitch

    async def list_active(self) -> Sequence[KillSwitch]:
        stmt = (
            self._select()
            .where(KillSwitch.is_active.is_(True))
            .order_by(KillSwitch.created_at, KillSwitch.id)
        )
        return (await self.session.execute(stmt)).scalars().all()
