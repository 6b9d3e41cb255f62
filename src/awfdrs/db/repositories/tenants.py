from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from awfdrs.db.models import Tenant
from awfdrs.db.repositories.base import BaseRepository, MutableMixin


class TenantRepository(MutableMixin[Tenant], BaseRepository[Tenant]):
    """The current tenant's own row: a tenant is scoped by its ``id``.

    Creating a tenant is adding the row whose id is the repository's tenant, inside a
    :func:`tenant_session` for that new id, which is what row-level security allows.
    """

    model = Tenant
    scope_column = "id"

    async def get_current(self) -> Tenant:
        """This tenant's row; :class:`NotFoundError` when it does not exist."""
        return await self.get(self.tenant_id)


class TenantDirectory:
    """Every tenant, for administration; only meaningful on the owner connection.

    The application role sees at most its current tenant here (row-level security), so this is
    used by the CLI and tools connected with ``AWFDRS_MIGRATION_DATABASE_URL``.
    """

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def list(self) -> Sequence[Tenant]:
        return (await self.session.execute(select(Tenant).order_by(Tenant.name))).scalars().all()

    async def find_by_name(self, name: str) -> Tenant | None:
        stmt = select(Tenant).where(Tenant.name == name)
        return (await self.session.execute(stmt)).scalar_one_or_none()
