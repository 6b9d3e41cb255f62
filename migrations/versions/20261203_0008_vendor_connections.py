"""Vendor connections per tenant: breaker, rate limit, base URL and credentials of one tenant.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03

``vendor_connections``: one row per (tenant, vendor). The circuit breaker state and the rate
limit's settings move here from ``vendors``, so one tenant's failures or traffic never stop
another tenant's retries. ``credentials`` is a Fernet token (``AWFDRS_CREDENTIALS_KEYS``) of the
headers the tenant's calls carry; ``credential_names`` keeps their names in clear for views.
Row-level security as on every tenant table.

``vendors`` stays the deployment's catalog: name, default base URL, the defaults a new
connection copies, and ``forced_open``, a deployment-wide stop. Its breaker state columns go.

``vendor_calls`` (the rate limit's sliding window) is counted per connection: it gains
``tenant_id`` and row-level security. Its rows are only the last window's slots, so the upgrade
drops them rather than guessing whose they were: for one window after the upgrade a connection
may be sent up to its limit again.

Backfill: every (tenant, vendor) pair that already has remediation requests or actions gets a
connection with the vendor's settings and no credentials, so an upgraded deployment keeps
sending its retries; credentials that used to travel in events must be configured on it
(``awfdrs vendors connect``).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP_ROLE = "awfdrs_app"
SETTINGS = (
    "rate_limit_per_minute",
    "rate_limit_window_seconds",
    "failure_threshold",
    "open_seconds",
    "half_open_max_calls",
    "failure_rate_threshold",
    "failure_rate_window_seconds",
    "failure_rate_min_calls",
)
CHECKS = {
    "rate_limit_positive": "rate_limit_per_minute > 0",
    "failure_threshold_positive": "failure_threshold > 0",
    "open_seconds_non_negative": "open_seconds >= 0",
    "half_open_max_calls_positive": "half_open_max_calls > 0",
    "failure_count_non_negative": "circuit_breaker_failure_count >= 0",
    "half_open_in_flight_non_negative": "half_open_in_flight >= 0",
    "rate_limit_window_positive": "rate_limit_window_seconds > 0",
    "failure_rate_threshold_in_unit_range": (
        "failure_rate_threshold IS NULL OR "
        "(failure_rate_threshold > 0 AND failure_rate_threshold <= 1)"
    ),
    "failure_rate_window_positive": "failure_rate_window_seconds > 0",
    "failure_rate_min_calls_positive": "failure_rate_min_calls > 0",
    "credentials_named": "(credentials IS NULL) = (cardinality(credential_names) = 0)",
    "circuit_breaker_state": "circuit_breaker_state IN ('CLOSED', 'OPEN', 'HALF_OPEN')",
}
# The vendor's state columns that move to the connection (forced_* stay: the deployment stop).
MOVED_STATE = (
    "circuit_breaker_state",
    "circuit_breaker_failure_count",
    "opened_at",
    "half_open_in_flight",
    "probe_lease_until",
    "blocked_until",
    "window_started_at",
    "window_calls",
    "window_failures",
)


# The global health view: connections per vendor and breaker state across tenants, counts only
# (no tenant, no URL, no credential), read the way 0003's metric functions are.
HEALTH = """
    RETURNS TABLE (vendor_id uuid, state text, forced boolean, connections bigint)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = {schema}, pg_temp
    AS $$
        SELECT vendor_id, circuit_breaker_state::text, forced_open, count(*)
        FROM vendor_connections
        GROUP BY vendor_id, circuit_breaker_state, forced_open
    $$
"""


def _timestamps() -> list[sa.Column[object]]:
    return [
        sa.Column(
            name,
            sa.DateTime(timezone=True),
            server_default=sa.text("clock_timestamp()"),
            nullable=False,
        )
        for name in ("created_at", "updated_at")
    ]


def _state_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("circuit_breaker_state", sa.String(32), server_default="CLOSED", nullable=False),
        sa.Column(
            "circuit_breaker_failure_count", sa.Integer(), server_default="0", nullable=False
        ),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("half_open_in_flight", sa.Integer(), server_default="0", nullable=False),
        sa.Column("probe_lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("blocked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("window_started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("window_calls", sa.Integer(), server_default="0", nullable=False),
        sa.Column("window_failures", sa.Integer(), server_default="0", nullable=False),
    ]


def _tenant_isolation(table: str) -> None:
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY tenant_isolation ON {table} "
        "USING (tenant_id = awfdrs_current_tenant()) "
        "WITH CHECK (tenant_id = awfdrs_current_tenant())"
    )


def _backfill() -> None:
    # Row-level security is FORCE'd on the tables read here, and a migration's owner is not a
    # superuser on managed PostgreSQL: lifted for this statement only, inside the migration's
    # transaction, so no other session ever sees the tables unforced.
    sources = ("remediation_requests", "actions")
    for table in sources:
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
    settings = ", ".join(SETTINGS)
    copied = ", ".join(f"v.{name}" for name in SETTINGS)
    op.execute(
        f"""
        INSERT INTO vendor_connections (tenant_id, vendor_id, {settings})
        SELECT pairs.tenant_id, v.id, {copied}
        FROM (
            SELECT tenant_id, vendor_id FROM remediation_requests WHERE vendor_id IS NOT NULL
            UNION
            SELECT tenant_id, vendor_id FROM actions WHERE vendor_id IS NOT NULL
        ) AS pairs
        JOIN vendors v ON v.id = pairs.vendor_id
        ON CONFLICT DO NOTHING
        """
    )
    for table in sources:
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")


def upgrade() -> None:
    op.create_table(
        "vendor_connections",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("vendor_id", sa.Uuid(), nullable=False),
        sa.Column("base_url", sa.String(2048), nullable=True),
        sa.Column("credentials", sa.LargeBinary(), nullable=True),
        sa.Column(
            "credential_names",
            postgresql.ARRAY(sa.Text()),
            server_default=sa.text("'{}'::text[]"),
            nullable=False,
        ),
        sa.Column("rate_limit_per_minute", sa.Integer(), server_default="60", nullable=False),
        sa.Column("failure_threshold", sa.Integer(), server_default="5", nullable=False),
        sa.Column("open_seconds", sa.Integer(), server_default="30", nullable=False),
        sa.Column("half_open_max_calls", sa.Integer(), server_default="1", nullable=False),
        sa.Column("rate_limit_window_seconds", sa.Float(), server_default="60", nullable=False),
        sa.Column("failure_rate_threshold", sa.Float(), nullable=True),
        sa.Column("failure_rate_window_seconds", sa.Float(), server_default="60", nullable=False),
        sa.Column("failure_rate_min_calls", sa.Integer(), server_default="10", nullable=False),
        *_state_columns(),
        sa.Column("forced_open", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("forced_by", sa.String(255), nullable=True),
        sa.Column("forced_reason", sa.Text(), nullable=True),
        sa.Column("forced_at", sa.DateTime(timezone=True), nullable=True),
        *_timestamps(),
        *(
            sa.CheckConstraint(condition, name=op.f(f"ck_vendor_connections_{name}"))
            for name, condition in CHECKS.items()
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_vendor_connections_tenant_id_tenants"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["vendor_id"],
            ["vendors.id"],
            name=op.f("fk_vendor_connections_vendor_id_vendors"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vendor_connections")),
        sa.UniqueConstraint(
            "tenant_id", "vendor_id", name=op.f("uq_vendor_connections_tenant_id_vendor_id")
        ),
    )
    op.execute(
        "CREATE TRIGGER trg_vendor_connections_updated_at BEFORE UPDATE ON vendor_connections "
        "FOR EACH ROW EXECUTE FUNCTION awfdrs_touch_updated_at()"
    )
    _backfill()
    # Enabled, not FORCE'd: the health function runs as the owner and must count every
    # tenant's rows whether or not the owner is a superuser; the application role is filtered.
    op.execute("ALTER TABLE vendor_connections ENABLE ROW LEVEL SECURITY")
    op.execute(
        "CREATE POLICY tenant_isolation ON vendor_connections "
        "USING (tenant_id = awfdrs_current_tenant()) "
        "WITH CHECK (tenant_id = awfdrs_current_tenant())"
    )
    schema = op.get_bind().exec_driver_sql("SELECT current_schema()").scalar_one()
    op.execute(f"CREATE FUNCTION awfdrs_vendor_health() {HEALTH.format(schema=schema)}")
    op.execute("REVOKE ALL ON FUNCTION awfdrs_vendor_health() FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION awfdrs_vendor_health() TO {APP_ROLE}")
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON vendor_connections TO {APP_ROLE}")

    for column in MOVED_STATE:
        op.drop_column("vendors", column)

    op.execute("DELETE FROM vendor_calls")
    op.drop_index("ix_vendor_calls_vendor_called", table_name="vendor_calls")
    op.drop_constraint(
        op.f("fk_vendor_calls_vendor_id_vendors"), "vendor_calls", type_="foreignkey"
    )
    op.add_column("vendor_calls", sa.Column("tenant_id", sa.Uuid(), nullable=False))
    op.create_foreign_key(
        op.f("fk_vendor_calls_tenant_id_tenants"),
        "vendor_calls",
        "tenants",
        ["tenant_id"],
        ["id"],
        ondelete="RESTRICT",
    )
    op.create_foreign_key(
        op.f("fk_vendor_calls_tenant_id_vendor_id_vendor_connections"),
        "vendor_calls",
        "vendor_connections",
        ["tenant_id", "vendor_id"],
        ["tenant_id", "vendor_id"],
        ondelete="CASCADE",
    )
    op.create_index(
        "ix_vendor_calls_connection_called",
        "vendor_calls",
        ["tenant_id", "vendor_id", "called_at"],
    )
    _tenant_isolation("vendor_calls")


def downgrade() -> None:
    op.execute("DROP FUNCTION awfdrs_vendor_health()")
    op.execute("DROP POLICY tenant_isolation ON vendor_calls")
    op.execute("ALTER TABLE vendor_calls NO FORCE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE vendor_calls DISABLE ROW LEVEL SECURITY")
    op.execute("DELETE FROM vendor_calls")
    op.drop_index("ix_vendor_calls_connection_called", table_name="vendor_calls")
    op.drop_constraint(
        op.f("fk_vendor_calls_tenant_id_vendor_id_vendor_connections"),
        "vendor_calls",
        type_="foreignkey",
    )
    op.drop_constraint(
        op.f("fk_vendor_calls_tenant_id_tenants"), "vendor_calls", type_="foreignkey"
    )
    op.drop_column("vendor_calls", "tenant_id")
    op.create_foreign_key(
        op.f("fk_vendor_calls_vendor_id_vendors"),
        "vendor_calls",
        "vendors",
        ["vendor_id"],
        ["id"],
        ondelete="CASCADE",
    )
    op.create_index("ix_vendor_calls_vendor_called", "vendor_calls", ["vendor_id", "called_at"])

    # Breakers go back to one per vendor, starting CLOSED; the connections' credentials are
    # lost with the table (the earlier schema has nowhere to keep them).
    for column in _state_columns():
        op.add_column("vendors", column)
    op.create_check_constraint(
        op.f("ck_vendors_circuit_breaker_state"),
        "vendors",
        "circuit_breaker_state IN ('CLOSED', 'OPEN', 'HALF_OPEN')",
    )
    op.create_check_constraint(
        op.f("ck_vendors_failure_count_non_negative"),
        "vendors",
        "circuit_breaker_failure_count >= 0",
    )
    op.create_check_constraint(
        op.f("ck_vendors_half_open_in_flight_non_negative"), "vendors", "half_open_in_flight >= 0"
    )
    op.drop_table("vendor_connections")
