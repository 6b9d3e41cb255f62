"""Safety controls: circuit breaker and rate limit state, fuse episodes, shadow actions.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01

Adds the state the gate and the action activities share across every worker: the breaker's
half-open probes and forced stop, the vendor's Retry-After, the sliding-window log of rate-limit
slots (``vendor_calls``), the per-tenant systemic-failure episodes (``fuse_episodes``, under
row-level security like every tenant-owned table), the SHADOWED action status, and a CHECK on
the control a decision names in ``gate``.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP_ROLE = "awfdrs_app"
GATES = "('kill_switch', 'mode', 'budget', 'fuse', 'confidence', 'reversibility')"
STATUSES = "('PENDING', 'IN_PROGRESS', 'SUCCEEDED', 'FAILED')"
STATUSES_WITH_SHADOW = "('PENDING', 'IN_PROGRESS', 'SUCCEEDED', 'FAILED', 'SHADOWED')"


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


def _vendor_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("half_open_in_flight", sa.Integer(), server_default="0", nullable=False),
        sa.Column("probe_lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("forced_open", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("forced_by", sa.String(255), nullable=True),
        sa.Column("forced_reason", sa.Text(), nullable=True),
        sa.Column("forced_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("blocked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rate_limit_window_seconds", sa.Float(), server_default="60", nullable=False),
        sa.Column("failure_rate_threshold", sa.Float(), nullable=True),
        sa.Column("failure_rate_window_seconds", sa.Float(), server_default="60", nullable=False),
        sa.Column("failure_rate_min_calls", sa.Integer(), server_default="10", nullable=False),
        sa.Column("window_started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("window_calls", sa.Integer(), server_default="0", nullable=False),
        sa.Column("window_failures", sa.Integer(), server_default="0", nullable=False),
    ]


VENDOR_CHECKS = {
    "ck_vendors_half_open_in_flight_non_negative": "half_open_in_flight >= 0",
    "ck_vendors_rate_limit_window_positive": "rate_limit_window_seconds > 0",
    "ck_vendors_failure_rate_threshold_in_unit_range": (
        "failure_rate_threshold IS NULL OR "
        "(failure_rate_threshold > 0 AND failure_rate_threshold <= 1)"
    ),
    "ck_vendors_failure_rate_window_positive": "failure_rate_window_seconds > 0",
    "ck_vendors_failure_rate_min_calls_positive": "failure_rate_min_calls > 0",
}


def upgrade() -> None:
    op.create_table(
        "fuse_episodes",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("escalated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("incident_count", sa.Integer(), nullable=False),
        sa.Column("threshold", sa.Integer(), nullable=False),
        sa.Column("window_seconds", sa.Float(), nullable=False),
        *_timestamps(),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_fuse_episodes_tenant_id_tenants"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fuse_episodes")),
    )
    op.create_index(
        "uq_fuse_episodes_open",
        "fuse_episodes",
        ["tenant_id"],
        unique=True,
        postgresql_where=sa.text("closed_at IS NULL"),
    )
    op.create_table(
        "vendor_calls",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("vendor_id", sa.Uuid(), nullable=False),
        sa.Column("called_at", sa.DateTime(timezone=True), nullable=False),
        *_timestamps(),
        sa.ForeignKeyConstraint(
            ["vendor_id"],
            ["vendors.id"],
            name=op.f("fk_vendor_calls_vendor_id_vendors"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vendor_calls")),
    )
    op.create_index("ix_vendor_calls_vendor_called", "vendor_calls", ["vendor_id", "called_at"])

    for column in _vendor_columns():
        op.add_column("vendors", column)
    for name, condition in VENDOR_CHECKS.items():
        op.create_check_constraint(op.f(name), "vendors", condition)
    op.add_column("actions", sa.Column("deferred_since", sa.DateTime(timezone=True), nullable=True))
    op.drop_constraint(op.f("ck_actions_status"), "actions", type_="check")
    op.create_check_constraint(
        op.f("ck_actions_status"), "actions", f"status IN {STATUSES_WITH_SHADOW}"
    )
    op.add_column("kill_switches", sa.Column("release_reason", sa.Text(), nullable=True))
    op.create_check_constraint(op.f("ck_decisions_gate"), "decisions", f"gate IN {GATES}")

    for table in ("fuse_episodes", "vendor_calls"):
        op.execute(
            f"CREATE TRIGGER trg_{table}_updated_at BEFORE UPDATE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION awfdrs_touch_updated_at()"
        )
    op.execute("ALTER TABLE fuse_episodes ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE fuse_episodes FORCE ROW LEVEL SECURITY")
    op.execute(
        "CREATE POLICY tenant_isolation ON fuse_episodes "
        "USING (tenant_id = awfdrs_current_tenant()) "
        "WITH CHECK (tenant_id = awfdrs_current_tenant())"
    )
    op.execute(f"GRANT SELECT, INSERT, UPDATE ON fuse_episodes TO {APP_ROLE}")
    # DELETE: each claim prunes the slots that left the window.
    op.execute(f"GRANT SELECT, INSERT, DELETE ON vendor_calls TO {APP_ROLE}")


def downgrade() -> None:
    op.drop_constraint(op.f("ck_decisions_gate"), "decisions", type_="check")
    op.drop_column("kill_switches", "release_reason")
    # Shadow actions have no meaning without this revision: record them as failed.
    op.execute(
        "UPDATE actions SET status = 'FAILED', error = coalesce(error, 'shadowed') "
        "WHERE status = 'SHADOWED'"
    )
    op.drop_constraint(op.f("ck_actions_status"), "actions", type_="check")
    op.create_check_constraint(op.f("ck_actions_status"), "actions", f"status IN {STATUSES}")
    op.drop_column("actions", "deferred_since")
    for name in VENDOR_CHECKS:
        op.drop_constraint(op.f(name), "vendors", type_="check")
    for column in reversed(_vendor_columns()):
        op.drop_column("vendors", column.name)
    op.drop_table("vendor_calls")
    op.drop_table("fuse_episodes")
