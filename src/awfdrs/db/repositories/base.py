"""Repository bases: tenant scoping is applied here once, so no query can forget it.

Repositories flush but never commit, roll back, close or open sessions: the activity that owns
the unit of work does. Constraint violations surface as :class:`ConflictError` carrying the
constraint's deterministic name (see ``NAMING_CONVENTION``).
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar, Generic, TypeVar

from sqlalchemy import (
    ColumnElement,
    Executable,
    Result,
    Select,
    String,
    cast,
    delete,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from awfdrs.db.base import BaseModel
from awfdrs.errors import ConflictError, NotFoundError

T = TypeVar("T", bound=BaseModel)


def constraint_name(exc: DBAPIError) -> str:
    """The violated constraint's name as PostgreSQL reports it, or ``"unknown"``."""
    seen: set[int] = set()
    candidate: BaseException | None = exc.orig
    while candidate is not None and id(candidate) not in seen:
        seen.add(id(candidate))
        name = getattr(candidate, "constraint_name", None)
        if isinstance(name, str) and name:
            return name
        candidate = candidate.__cause__
    return "unknown"


def as_conflict(exc: IntegrityError) -> ConflictError:
    detail = str(exc.orig).splitlines()[-1] if exc.orig is not None else ""
    return ConflictError(constraint_name(exc), detail)


async def fetch_raw(session: AsyncSession, sql: str, *args: Any) -> list[Any]:
    """Run ``sql`` ($1-style) on the session's asyncpg connection, in its transaction.

    For the set-based statements on batches, where SQLAlchemy's per-value parameter processing
    would cost more than the statement. Integrity violations still become ConflictError.
    """
    import asyncpg

    connection = await session.connection()
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None
    try:
        rows: list[Any] = await driver.fetch(sql, *args)
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise ConflictError(exc.constraint_name or "unknown", str(exc)) from exc
    return rows


def id_starts_with(column: Any, prefix: str) -> ColumnElement[bool]:
    """``column`` (a UUID) as text (lowercase, with hyphens) starts with ``prefix``: how the
    CLI finds a row by the first characters of its id. LIKE wildcards in ``prefix`` are
    literal."""
    escaped = prefix.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return cast(column, String).like(f"{escaped}%", escape="\\")


class _Repository(ABC, Generic[T]):
    model: type[Any]

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @abstractmethod
    def _select(self) -> Select[T]:
        """The one statement every read starts from; it carries the scope."""

    def _stamp(self, values: dict[str, Any]) -> dict[str, Any]:
        return values

    def _where_id(self, entity_id: uuid.UUID) -> Select[T]:
        return self._select().where(self.model.id == entity_id)

    async def _flush(self) -> None:
        try:
            await self.session.flush()
        except IntegrityError as exc:
            raise as_conflict(exc) from exc

    async def _execute(self, stmt: Executable) -> Result[Any]:
        """Run a write statement; a violated constraint becomes :class:`ConflictError` (the one
        place, with :meth:`_flush`, where that translation happens)."""
        try:
            return await self.session.execute(stmt)
        except IntegrityError as exc:
            raise as_conflict(exc) from exc

    async def _update_returning(
        self, *conditions: ColumnElement[bool], **values: Any
    ) -> Sequence[T]:
        """``UPDATE … WHERE <scope> AND conditions … RETURNING *``: the guarded update.

        The guard lives in the WHERE clause, so of two racing updates only one can match: the
        loser gets no row back instead of overwriting the winner. The returned rows replace
        whatever the session had loaded for them.
        """
        scope = self._select().whereclause
        stmt = (
            update(self.model)
            .where(*([] if scope is None else [scope]), *conditions)
            .values(**values)
            .returning(self.model)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
        return (await self._execute(stmt)).scalars().all()

    async def find(self, entity_id: uuid.UUID) -> T | None:
        """The row with this id, or None (also when it belongs to another tenant)."""
        return (await self.session.execute(self._where_id(entity_id))).scalar_one_or_none()

    async def get(self, entity_id: uuid.UUID) -> T:
        """The row with this id; :class:`NotFoundError` when absent or not this tenant's."""
        entity = await self.find(entity_id)
        if entity is None:
            raise NotFoundError(self.model.__name__, entity_id)
        return entity

    # The seed document's name for ``find``.
    get_by_id = find

    async def get_for_update(self, entity_id: uuid.UUID) -> T:
        """Like :meth:`get`, holding a row lock until the transaction ends.

        ``FOR NO KEY UPDATE``, not ``FOR UPDATE``: ids never change, and the weaker lock does
        not block the foreign-key checks of rows being inserted that refer to this one. With
        ``FOR UPDATE`` on a vendor, an analysis adding an action for that vendor waited on the
        execution holding it, which waited on ingest, which waited on the analysis's incident:
        a deadlock the reliability suite hit under load.
        """
        stmt = self._where_id(entity_id).with_for_update(key_share=True)
        row = (await self.session.execute(stmt)).scalar_one_or_none()
        if row is None:
            raise NotFoundError(self.model.__name__, entity_id)
        return row

    async def list(self, *, limit: int = 100, offset: int = 0) -> Sequence[T]:
        """Rows newest first."""
        stmt = self._select().order_by(self.model.created_at.desc(), self.model.id)
        return (await self.session.execute(stmt.limit(limit).offset(offset))).scalars().all()

    async def add(self, **values: Any) -> T:
        """Insert one row (the scope is stamped on it) and flush, so defaults are loaded."""
        entity: T = self.model(**self._stamp(values))
        self.session.add(entity)
        await self._flush()
        return entity

    # The seed document's name for ``add``.
    async def create(self, data: dict[str, Any]) -> T:
        return await self.add(**data)

    async def add_once(self, **values: Any) -> T:
        """Insert a row whose ``id`` the caller chose, or return the one already stored.

        Temporal may run an activity more than once; the id, fixed by the workflow, makes the
        second run find the first run's row instead of adding another. One statement when new.
        """
        values = self._stamp(values)
        stmt = (
            insert(self.model)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(self.model)
            .execution_options(populate_existing=True)
        )
        added: T | None = (await self._execute(stmt)).scalar_one_or_none()
        return added if added is not None else await self.get(values["id"])


class BaseRepository(_Repository[T]):
    """A tenant-owned aggregate; the tenant is fixed when the repository is built.

    ``scope_column`` is the column that holds the tenant (``tenant_id``; ``id`` for tenants).
    """

    scope_column: ClassVar[str] = "tenant_id"

    def __init__(self, session: AsyncSession, *, tenant_id: uuid.UUID) -> None:
        super().__init__(session)
        self.tenant_id = tenant_id

    def _in_scope(self, model: type[Any] | None = None) -> ColumnElement[bool]:
        column: InstrumentedAttribute[uuid.UUID] = getattr(
            model or self.model, self.scope_column if model is None else "tenant_id"
        )
        return column == self.tenant_id

    def _select(self) -> Select[T]:
        return select(self.model).where(self._in_scope())

    def _scoped(self, *columns: Any) -> Select[Any]:
        """A select of ``columns`` (of this model) within the tenant, for projections."""
        return select(*columns).where(self._in_scope())

    def _scoped_on(self, model: type[Any], *columns: Any) -> Select[Any]:
        """A select of ``columns`` of a tenant-owned table that is not this repository's own
        (a table derived from it, such as the event counts)."""
        return select(*columns).where(self._in_scope(model))

    def _stamp(self, values: dict[str, Any]) -> dict[str, Any]:
        given = values.get(self.scope_column, self.tenant_id)
        if given != self.tenant_id:
            raise ConflictError(
                "tenant_scope", f"row for tenant {given} in a repository of {self.tenant_id}"
            )
        return {**values, self.scope_column: self.tenant_id}


class GlobalRepository(_Repository[T]):
    """A table shared by all tenants (vendors): no tenant scope."""

    def _select(self) -> Select[T]:
        return select(self.model)


class MutableMixin(_Repository[T]):
    """``update`` and ``delete`` for the tables whose rows may change (not events, decisions)."""

    async def update(self, entity: T, **values: Any) -> T:
        """Set ``values`` on a loaded row and flush; the scope column cannot be changed."""
        for key, value in values.items():
            if key in ("id", getattr(self, "scope_column", None)):
                raise ConflictError(f"{self.model.__tablename__}_{key}", "cannot be changed")
            setattr(entity, key, value)
        await self._flush()
        return entity

    async def update_where(self, entity_id: uuid.UUID, **values: Any) -> bool:
        """Update one row by id within the scope, without loading it; True when it existed."""
        scoped = self._where_id(entity_id).whereclause
        assert scoped is not None
        result = await self._execute(update(self.model).where(scoped).values(**values))
        return bool(result.rowcount)  # type: ignore[attr-defined]


class DeletableMixin(_Repository[T]):
    """``delete`` for configuration tables (workflows, vendors, kill switches).

    The audit trail (events, decisions, incidents, actions) and tenants are never deleted by the
    application; its database role is not even granted DELETE on them.
    """

    async def delete(self, entity_id: uuid.UUID) -> None:
        """Delete one row by id within the scope; :class:`NotFoundError` when absent."""
        scoped = self._where_id(entity_id).whereclause
        assert scoped is not None
        result = await self._execute(delete(self.model).where(scoped))
        if not result.rowcount:  # type: ignore[attr-defined]
            raise NotFoundError(self.model.__name__, entity_id)
