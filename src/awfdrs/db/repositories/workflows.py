from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence

from sqlalchemy import any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.types import Uuid

from awfdrs.db.models import Workflow
from awfdrs.db.repositories.base import BaseRepository, DeletableMixin, MutableMixin


class WorkflowRepository(
    MutableMixin[Workflow], DeletableMixin[Workflow], BaseRepository[Workflow]
):
    """A tenant's registered workflows; names are unique per tenant."""

    model = Workflow

    async def find_by_name(self, name: str) -> Workflow | None:
        stmt = self._select().where(Workflow.name == name)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def list_by_ids(self, ids: Collection[uuid.UUID]) -> Sequence[Workflow]:
        """The rows among ``ids`` that exist for this tenant (others are simply absent)."""
        if not ids:
            return []
        wanted = bindparam("ids", list(ids), type_=ARRAY(Uuid))
        stmt = self._select().where(Workflow.id == any_(wanted))
        return (await self.session.execute(stmt)).scalars().all()

    async def list_all(self) -> Sequence[Workflow]:
        stmt = self._select().order_by(Workflow.name)
        return (await self.session.execute(stmt)).scalars().all()
