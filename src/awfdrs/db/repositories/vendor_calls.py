from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import delete

from awfdrs.db.models import VendorCall
from awfdrs.db.repositories.base import BaseRepository


class VendorCallRepository(BaseRepository[VendorCall]):
    """The rate limit's sliding window: one row per call slot a tenant's connection claimed.

    Callers hold the connection's row lock (``VendorConnectionRepository.get_for_update``) while
    they read and claim, so two workers cannot both take the last slot.
    """

    model = VendorCall

    async def find_nth_newest(
        self, vendor_id: uuid.UUID, since: datetime, n: int
    ) -> datetime | None:
        """The time of the ``n``-th newest slot of this tenant's connection to ``vendor_id``
        after ``since``, or None when there are fewer; slots at or before ``since`` are deleted
        on the way.

        One statement: the CTE's DELETE and the SELECT see the same snapshot, and the SELECT
        only reads the slots the DELETE keeps. It walks at most ``n`` index entries and returns
        one row, because it runs under the connection's lock: reading the whole window there
        made every claim cost as much as the window was full.
        """
        pruned = (
            delete(VendorCall)
            .where(
                self._in_scope(),
                VendorCall.vendor_id == vendor_id,
                VendorCall.called_at <= since,
            )
            .returning(VendorCall.id)
            .cte("pruned")
        )
        stmt = (
            self._scoped(VendorCall.called_at)
            .add_cte(pruned)
            .where(VendorCall.vendor_id == vendor_id, VendorCall.called_at > since)
            .order_by(VendorCall.called_at.desc())
            .offset(n - 1)
            .limit(1)
        )
        found: datetime | None = (await self.session.execute(stmt)).scalar_one_or_none()
        return found
