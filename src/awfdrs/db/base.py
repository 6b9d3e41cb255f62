"""Declarative base, the naming convention, and the mixins every model is built from."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import DateTime, Enum, ForeignKey, MetaData, String, Uuid, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Deterministic constraint names: ConflictError matches on them, and migrations can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: JSONB}


def enum_type(enum_cls: type[StrEnum], name: str) -> Enum:
    """A string column restricted by a CHECK constraint named ``ck_<table>_<name>``.

    Strings rather than native PostgreSQL enums, so adding a value is a constraint swap rather
    than an ``ALTER TYPE`` that cannot run inside a transaction.
    """
    return Enum(
        enum_cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=32,
        values_callable=lambda members: [member.value for member in members],
        validate_strings=True,
    )


class BaseModel(Base):
    """``id`` (UUID), ``created_at`` and ``updated_at`` on every table.

    ``updated_at`` is also maintained by a database trigger, so it is true whoever writes.
    """

    __abstract__ = True

    id: Mapped[uuid.UUID] = mapped_column(
        Uuid,
        primary_key=True,
        default=uuid.uuid4,
        server_default=func.gen_random_uuid(),
        sort_order=-100,
    )
    # clock_timestamp(), not now(): rows written in one transaction (an incident's decision and
    # its action) still get distinct times in the order they were written.
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.clock_timestamp(), sort_order=100
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True),
        server_default=func.clock_timestamp(),
        onupdate=func.clock_timestamp(),
        sort_order=101,
    )


class TenantMixin:
    """``tenant_id``: the column row-level security filters on."""

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("tenants.id", ondelete="RESTRICT"), sort_order=-90
    )


class CorrelationMixin:
    """``correlation_id``: the caller's trace id, carried from event to action."""

    correlation_id: Mapped[str | None] = mapped_column(String(255), sort_order=90)
