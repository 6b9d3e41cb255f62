from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import text

from awfdrs.db.models import Vendor
from awfdrs.db.repositories.base import DeletableMixin, GlobalRepository, MutableMixin
from awfdrs.enums import CircuitState

FORCED = "FORCED_OPEN"


class VendorRepository(MutableMixin[Vendor], DeletableMixin[Vendor], GlobalRepository[Vendor]):
    """The deployment's catalog of external services (tenants reach them by connections)."""

    model = Vendor

    async def find_by_name(self, name: str) -> Vendor | None:
        stmt = self._select().where(Vendor.name == name)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def list_all(self) -> Sequence[Vendor]:
        stmt = self._select().order_by(Vendor.name)
        return (await self.session.execute(stmt)).scalars().all()

    async def count_calls_by_vendor(self) -> dict[uuid.UUID, dict[str, int]]:
        """Per vendor, how many tenants' connections are in each breaker state (a connection an
        operator forced open counts as ``FORCED_OPEN``), across every tenant: counts only."""
        rows = await self.session.execute(
            text("SELECT vendor_id, state, forced, connections FROM awfdrs_vendor_health()")
        )
        found: dict[uuid.UUID, dict[str, int]] = {}
        for vendor_id, state, forced, count in rows:
            key = FORCED if forced else CircuitState(state).value
            per = found.setdefault(vendor_id, {})
            per[key] = per.get(key, 0) + int(count)
        return found
