"""No statistics on ``tenant_id``: the planner must not believe a tenant has one row.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03

Statistics on ``tenant_id`` are a list of the tenants common when ANALYZE last sampled the table.
A tenant missing from it (a new one, or any one of many in a big table, where autovacuum's 10 %
threshold is rarely crossed by one tenant's growth) is estimated at one row, and ingest's
set-based statements then took the tenant's rows as the outer side of a nested loop: each batch
read the batch once per row the tenant had (10 million rows at 10,000 request keys; see
tests/e2e/adversarial/test_stale_statistics.py). Without statistics the planner assumes an
equality on ``tenant_id`` keeps 0.5 % of the table: wrong for every tenant, but never wrong by
the factor of the tenant's size, and the batch, not the tenant, drives every join.

Statistics already gathered on these columns survive ANALYZE (it skips a column with target 0)
and only a superuser may delete them: the upgrade does when it runs as one, and otherwise says
so in a NOTICE (docs/OPERATIONS.md has the statement to run).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TENANT_TABLES = (
    "actions", "api_keys", "audit_heads", "audit_log", "decisions", "events", "fuse_episodes",
    "incidents", "kill_switches", "outbox", "remediation_requests", "request_keys",
    "spent_credentials", "vendor_calls", "vendor_connections", "workflow_event_counts",
    "workflows",
)  # fmt: skip


FORGET = """
DO $$
BEGIN
    IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        DELETE FROM pg_statistic s USING pg_attribute a
        WHERE a.attrelid = s.starelid AND a.attnum = s.staattnum AND a.attname = 'tenant_id'
          AND s.starelid = ANY (CAST(ARRAY[{tables}] AS regclass[]));
    ELSE
        RAISE NOTICE 'statistics gathered on tenant_id before 0011 remain: a superuser '
                     'deletes them (docs/OPERATIONS.md, "Planner statistics")';
    END IF;
END $$
"""


def upgrade() -> None:
    for table in TENANT_TABLES:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN tenant_id SET STATISTICS 0")
    op.execute(FORGET.format(tables=", ".join(f"'{table}'" for table in TENANT_TABLES)))


def downgrade() -> None:
    for table in TENANT_TABLES:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN tenant_id SET STATISTICS -1")
