from __future__ import annotations

import uuid
from collections.abc import Sequence

from awfdrs.db.models import Vendor, VendorConnection
from awfdrs.db.repositories.base import BaseRepository, DeletableMixin, MutableMixin
from awfdrs.errors import NotFoundError


class VendorConnectionRepository(
    MutableMixin[VendorConnection],
    DeletableMixin[VendorConnection],
    BaseRepository[VendorConnection],
):
    """A tenant's connections to vendors, with their breakers; only this tenant's rows."""

    model = VendorConnection

    async def find_for_vendor(self, vendor_id: uuid.UUID) -> VendorConnection | None:
        stmt = self._select().where(VendorConnection.vendor_id == vendor_id)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def get_for_vendor(self, vendor_id: uuid.UUID, *, lock: bool = False) -> VendorConnection:
        """The tenant's connection to ``vendor_id``; :class:`NotFoundError` when it has none.

        ``lock`` takes the row lock (``FOR NO KEY UPDATE``, as :meth:`get_for_update` does) that
        makes the breaker's probe claim and the rate limit's slot claim atomic across workers;
        only this tenant's row is locked, so tenants never wait on each other.
        """
        stmt = self._select().where(VendorConnection.vendor_id == vendor_id)
        if lock:
            stmt = stmt.with_for_update(key_share=True)
        row = (await self.session.execute(stmt)).scalar_one_or_none()
        if row is None:
            raise NotFoundError("VendorConnection", vendor_id)
        return row

    async def list_all(self) -> Sequence[VendorConnection]:
        """The tenant's connections, by vendor name."""
        stmt = (
            self._select()
            .join(Vendor, Vendor.id == VendorConnection.vendor_id)
            .order_by(Vendor.name)
        )
        return (await self.session.execute(stmt)).scalars().all()
