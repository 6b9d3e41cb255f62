"""The database role split (migration 0009): what the application role (ingest, workers, the API)
may do to the tenants and the vendor catalog, whatever code holds its credentials."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from awfdrs.admin import update_tenant_settings
from awfdrs.db.session import make_sessionmaker, tenant_session
from tests.support.factories import admin_sessions, make_tenant

Sessions = async_sessionmaker[AsyncSession]


async def _refused(
    sessions: Sessions, tenant_id: uuid.UUID, sql: str, params: dict[str, str]
) -> None:
    with pytest.raises(DBAPIError, match="permission denied"):
        async with tenant_session(sessions, tenant_id) as session:
            await session.execute(text(sql), params)


async def test_the_application_role_cannot_create_tenants_or_change_vendors(
    app_engine: AsyncEngine,
) -> None:
    app = make_sessionmaker(app_engine)
    tenant = await make_tenant(app)
    new = uuid.uuid4()
    async with admin_sessions()() as session, session.begin():
        vendor_id = (
            await session.execute(
                text(
                    "INSERT INTO vendors (name, base_url) VALUES (:n, 'http://127.0.0.1:9') "
                    "RETURNING id"
                ),
                {"n": f"v-{new.hex[:8]}"},
            )
        ).scalar_one()
    params = {"new": str(new), "tenant": str(tenant.id), "vendor": str(vendor_id)}
    refused = [
        "INSERT INTO tenants (id, name) VALUES (:new, 'mine-now')",
        "UPDATE tenants SET name = 'renamed' WHERE id = :tenant",
        "UPDATE tenants SET is_active = false WHERE id = :tenant",
        "DELETE FROM tenants WHERE id = :tenant",
        "INSERT INTO vendors (name, base_url) VALUES ('evil', 'http://attacker.example')",
        "UPDATE vendors SET base_url = 'http://attacker.example' WHERE id = :vendor",
        "UPDATE vendors SET forced_open = true WHERE id = :vendor",
        "DELETE FROM vendors WHERE id = :vendor",
    ]
    for sql in refused:
        used = {k: v for k, v in params.items() if f":{k}" in sql}
        await _refused(app, tenant.id, sql, used)
    # What it keeps: reading both, and a tenant admin's change of its own tenant's settings.
    changed = await update_tenant_settings(app, tenant.id, {"two_person_rule": False})
    assert changed.settings.two_person_rule is False
    async with tenant_session(app, tenant.id) as session:
        assert (await session.execute(text("SELECT count(*) FROM vendors"))).scalar_one() >= 1
        # Row-level security: another tenant's row is not there to change.
        other = await make_tenant(app)
        done = await session.execute(
            text("UPDATE tenants SET settings = '{}' WHERE id = :id"), {"id": str(other.id)}
        )
        assert done.rowcount == 0  # type: ignore[attr-defined]
