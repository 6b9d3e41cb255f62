from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select

from awfdrs.db.models import VendorCall
from awfdrs.db.repositories.base import GlobalRepository


class VendorCallRepository(GlobalRepository[VendorCall]):
    """The rate limit's sliding window: one row per call slot claimed, for all workers.

    Callers hold the vendor's row lock (``VendorRepository.get_for_update``) while they read and
    claim, so two workers cannot both take the last slot.
    """

    model = VendorCall

    async def window(self, vendor_id: uuid.UUID, since: datetime) -> Sequence[datetime]:
        """Slot times after ``since``, oldest first; the older ones are deleted on the way.

        One statement: the CTE's DELETE and the SELECT see the same snapshot, and the SELECT
        only reads the slots the DELETE keeps.
        """
        pruned = (
            delete(VendorCall)
            .where(VendorCall.vendor_id == vendor_id, VendorCall.called_at <= since)
            .returning(VendorCall.id)
            .cte("pruned")
        )
        stmt = (
            select(VendorCall.called_at)
            .add_cte(pruned)
            .where(VendorCall.vendor_id == vendor_id, VendorCall.called_at > since)
            .order_by(VendorCall.called_at)
        )
        times: Sequence[datetime] = (await self.session.execute(stmt)).scalars().all()
        return times
