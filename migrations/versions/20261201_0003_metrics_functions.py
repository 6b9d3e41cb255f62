"""Aggregate-only functions for the metrics gauges.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

The worker's gauges (incidents by status, held incidents) need counts across tenants, which the
application role cannot see. These SECURITY DEFINER functions run as the owner and return only
counts; the application role may execute them and nothing else changes for it. The owner sees
every tenant when it is a superuser or has BYPASSRLS (row-level security is FORCE'd on its
tables otherwise, and the counts are then zero).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP_ROLE = "awfdrs_app"
FUNCTIONS = {
    "awfdrs_incident_counts()": """
        RETURNS TABLE (status text, incidents bigint)
        LANGUAGE sql STABLE SECURITY DEFINER
        SET search_path = {schema}, pg_temp
        AS $$ SELECT status::text, count(*) FROM incidents GROUP BY status $$
    """,
    "awfdrs_held_counts()": """
        RETURNS TABLE (gate text, incidents bigint)
        LANGUAGE sql STABLE SECURITY DEFINER
        SET search_path = {schema}, pg_temp
        AS $$
            SELECT latest.gate::text, count(*)
            FROM incidents i
            CROSS JOIN LATERAL (
                SELECT d.gate FROM decisions d
                WHERE d.incident_id = i.id
                ORDER BY d.created_at DESC, d.id DESC
                LIMIT 1
            ) AS latest
            WHERE i.status IN ('NEW', 'ANALYZING', 'ACTIONED') AND latest.gate IS NOT NULL
            GROUP BY latest.gate
        $$
    """,
}


def upgrade() -> None:
    schema = op.get_bind().exec_driver_sql("SELECT current_schema()").scalar_one()
    for signature, body in FUNCTIONS.items():
        op.execute(f"CREATE FUNCTION {signature} {body.format(schema=schema)}")
        # Functions are executable by PUBLIC by default; only the application role needs them.
        op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
        op.execute(f"GRANT EXECUTE ON FUNCTION {signature} TO {APP_ROLE}")


def downgrade() -> None:
    for signature in FUNCTIONS:
        op.execute(f"DROP FUNCTION {signature}")
