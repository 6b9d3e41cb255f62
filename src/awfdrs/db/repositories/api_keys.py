"""API keys: a tenant's own (row-level security applies), and the lookup before any tenant."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from awfdrs.db.models import ApiKey
from awfdrs.db.repositories.base import BaseRepository, MutableMixin, id_starts_with


class ApiKeyRepository(MutableMixin[ApiKey], BaseRepository[ApiKey]):
    """A tenant's keys. ``add`` stores what :func:`awfdrs.api.keys.new_key` made."""

    model = ApiKey

    async def list_all(self) -> Sequence[ApiKey]:
        stmt = self._select().order_by(ApiKey.created_at, ApiKey.id)
        return (await self.session.execute(stmt)).scalars().all()

    async def list_by_id_prefix(self, prefix: str, limit: int = 11) -> Sequence[ApiKey]:
        """This tenant's keys whose id starts with ``prefix`` (at most ``limit``, by id)."""
        stmt = self._select().where(id_starts_with(ApiKey.id, prefix)).order_by(ApiKey.id)
        return (await self.session.execute(stmt.limit(limit))).scalars().all()

    async def find_by_prefix(self, prefix: str) -> ApiKey | None:
        stmt = self._select().where(ApiKey.prefix == prefix)
        return (await self.session.execute(stmt)).scalar_one_or_none()


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """What the API needs to verify a presented key, read before its tenant is known."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    role: str
    secret_hash: str
    expires_at: datetime | None
    revoked_at: datetime | None


class ApiKeyDirectory:
    """The cross-tenant look-ups, only through migration 0006's SECURITY DEFINER functions:
    the row a presented prefix names, the tenant of a key id, and "this key was just used".
    No tenant is set on the session; the caller owns the transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def find_by_prefix(self, prefix: str) -> KeyRecord | None:
        row = (
            await self.session.execute(
                text(
                    "SELECT id, tenant_id, role, secret_hash, expires_at, revoked_at "
                    "FROM awfdrs_api_key_lookup(:prefix)"
                ),
                {"prefix": prefix},
            )
        ).one_or_none()
        return None if row is None else KeyRecord(**row._mapping)

    async def find_tenant_of(self, key_id: uuid.UUID) -> uuid.UUID | None:
        result = await self.session.execute(
            text("SELECT awfdrs_api_key_tenant(:id)"), {"id": key_id}
        )
        found: uuid.UUID | None = result.scalar_one_or_none()
        return found

    async def mark_used(self, key_id: uuid.UUID) -> None:
        await self.session.execute(text("SELECT awfdrs_api_key_used(:id)"), {"id": key_id})
