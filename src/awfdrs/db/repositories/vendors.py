from __future__ import annotations

from collections.abc import Sequence

from awfdrs.db.models import Vendor
from awfdrs.db.repositories.base import DeletableMixin, GlobalRepository, MutableMixin


class VendorRepository(MutableMixin[Vendor], DeletableMixin[Vendor], GlobalRepository[Vendor]):
    """External services, shared by every tenant, with their breaker state."""

    model = Vendor

    async def find_by_name(self, name: str) -> Vendor | None:
        stmt = self._select().where(Vendor.name == name)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def list_all(self) -> Sequence[Vendor]:
        stmt = self._select().order_by(Vendor.name)
        return (await self.session.execute(stmt)).scalars().all()
