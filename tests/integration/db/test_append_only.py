"""Events and decisions are append-only: for the app role by grants, for everyone by triggers."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, ProgrammingError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from awfdrs.db.repositories import DecisionRepository, EventRepository
from awfdrs.db.repositories.base import constraint_name
from awfdrs.db.session import tenant_session
from awfdrs.enums import ActionType
from tests.support.factories import TenantRef, make_incident, make_tenant, new_event

STATEMENTS = {
    "UPDATE": "UPDATE {table} SET updated_at = now()",
    "DELETE": "DELETE FROM {table}",
    "TRUNCATE": "TRUNCATE {table}",
}


@pytest.fixture
async def history(committed_sessions: async_sessionmaker[AsyncSession]) -> TenantRef:
    """A tenant with one event and one decision, committed so other roles can see them."""
    tenant = await make_tenant(committed_sessions)
    async with tenant_session(committed_sessions, tenant.id) as session:
        await EventRepository(session, tenant_id=tenant.id).insert_new([new_event(tenant, "k-1")])
        incident_id = await make_incident(session, tenant)
        await DecisionRepository(session, tenant_id=tenant.id).add(
            incident_id=incident_id,
            decision_type=ActionType.ESCALATE,
            reasoning="test",
            confidence_score=0.5,
            ai_model="test",
        )
    return tenant


@pytest.mark.parametrize("table", ["events", "decisions"])
@pytest.mark.parametrize("verb", ["UPDATE", "DELETE", "TRUNCATE"])
async def test_the_app_role_holds_no_such_privilege(
    committed_sessions: async_sessionmaker[AsyncSession],
    history: TenantRef,
    table: str,
    verb: str,
) -> None:
    with pytest.raises(ProgrammingError, match="permission denied"):
        async with tenant_session(committed_sessions, history.id) as session:
            await session.execute(text(STATEMENTS[verb].format(table=table)))


@pytest.mark.parametrize("table", ["events", "decisions"])
@pytest.mark.parametrize("verb", ["UPDATE", "DELETE", "TRUNCATE"])
async def test_triggers_refuse_even_the_owner(
    owner_engine: AsyncEngine, history: TenantRef, table: str, verb: str
) -> None:
    statement = STATEMENTS[verb].format(table=table)
    # CASCADE gets past the foreign keys that point at decisions, so the trigger is what refuses.
    statement += " CASCADE" if verb == "TRUNCATE" else " WHERE tenant_id = :tenant"
    async with owner_engine.connect() as connection:
        with pytest.raises(IntegrityError) as caught:
            await connection.execute(text(statement), {"tenant": history.id})
        await connection.rollback()
        remaining = await connection.execute(
            text(f"SELECT count(*) FROM {table} WHERE tenant_id = :tenant"),  # noqa: S608
            {"tenant": history.id},
        )
        assert remaining.scalar_one() == 1
    assert constraint_name(caught.value) == f"append_only_{table}"


async def test_the_grants_are_what_the_design_says(owner_engine: AsyncEngine) -> None:
    query = text("SELECT has_table_privilege('awfdrs_app', :table, :privilege)")
    expected = {
        ("events", "INSERT"): True,
        ("events", "SELECT"): True,
        ("events", "UPDATE"): False,
        ("events", "DELETE"): False,
        ("events", "TRUNCATE"): False,
        ("decisions", "INSERT"): True,
        ("decisions", "UPDATE"): False,
        ("decisions", "DELETE"): False,
        ("decisions", "TRUNCATE"): False,
        ("incidents", "UPDATE"): True,
        ("incidents", "DELETE"): False,
        ("actions", "DELETE"): False,
    }
    async with owner_engine.connect() as connection:
        for (table, privilege), allowed in expected.items():
            result = await connection.execute(query, {"table": table, "privilege": privilege})
            assert result.scalar_one() is allowed, (table, privilege)


def test_event_and_decision_repositories_offer_no_update_or_delete() -> None:
    for repository in (EventRepository, DecisionRepository):
        for method in ("update", "update_where", "delete"):
            assert not hasattr(repository, method), (repository.__name__, method)
