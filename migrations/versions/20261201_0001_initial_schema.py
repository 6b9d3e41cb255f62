"""Initial schema: the eight tables, the application role, append-only history and RLS.

Revision ID: 0001
Revises:
Create Date: 2026-12-01

Besides the tables this revision installs three guarantees that hold whatever code connects:

* append-only ``events`` and ``decisions``: row triggers refuse UPDATE and DELETE, a statement
  trigger refuses TRUNCATE, and the application role is granted neither;
* tenant isolation: row-level security, FORCE'd, on every tenant-owned table, keyed on the
  transaction setting ``app.tenant_id`` (unset means no rows);
* the application role ``awfdrs_app``: LOGIN, no BYPASSRLS, not the owner of anything.

Status columns are VARCHAR with CHECK constraints spelled out here rather than derived from the
Python enums, so that this revision means the same thing after the enums change.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP_ROLE = "awfdrs_app"
APPEND_ONLY = ("events", "decisions")
TENANT_OWNED = ("workflows", "events", "incidents", "decisions", "actions", "kill_switches")
MUTABLE = ("tenants", "workflows", "vendors", "incidents", "actions", "kill_switches")
# Least privilege: no DELETE on the audit trail (incidents, actions) nor on tenants.
APP_GRANTS = {
    "tenants": "SELECT, INSERT, UPDATE",
    "workflows": "SELECT, INSERT, UPDATE, DELETE",
    "vendors": "SELECT, INSERT, UPDATE, DELETE",
    "events": "SELECT, INSERT",
    "incidents": "SELECT, INSERT, UPDATE",
    "decisions": "SELECT, INSERT",
    "actions": "SELECT, INSERT, UPDATE",
    "kill_switches": "SELECT, INSERT, UPDATE, DELETE",
}
OPEN = "status IN ('NEW', 'ANALYZING', 'ACTIONED')"
SEVERITIES = "('info', 'warning', 'error', 'critical')"


def _id() -> sa.Column[sa.Uuid[object]]:
    return sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False)


def _tenant_id() -> sa.Column[sa.Uuid[object]]:
    return sa.Column("tenant_id", sa.Uuid(), nullable=False)


def _timestamps() -> list[sa.Column[object]]:
    return [
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("clock_timestamp()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("clock_timestamp()"),
            nullable=False,
        ),
    ]


def _jsonb(name: str, *, nullable: bool = False, empty_default: bool = True) -> sa.Column[object]:
    return sa.Column(
        name,
        postgresql.JSONB(astext_type=sa.Text()),
        server_default=sa.text("'{}'::jsonb") if empty_default else None,
        nullable=nullable,
    )


def _tenant_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id"],
        ["tenants.id"],
        name=op.f(f"fk_{table}_tenant_id_tenants"),
        ondelete="RESTRICT",
    )


def _composite_fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id", column],
        [f"{target}.tenant_id", f"{target}.id"],
        name=op.f(f"fk_{table}_tenant_id_{column}_{target}"),
        ondelete="RESTRICT",
    )


def _create_tables() -> None:
    op.create_table(
        "tenants",
        _id(),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        _jsonb("settings"),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenants")),
        sa.UniqueConstraint("name", name=op.f("uq_tenants_name")),
    )
    op.create_table(
        "vendors",
        _id(),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("base_url", sa.String(2048), nullable=False),
        sa.Column("circuit_breaker_state", sa.String(32), server_default="CLOSED", nullable=False),
        sa.Column(
            "circuit_breaker_failure_count", sa.Integer(), server_default="0", nullable=False
        ),
        sa.Column("rate_limit_per_minute", sa.Integer(), server_default="60", nullable=False),
        sa.Column("failure_threshold", sa.Integer(), server_default="5", nullable=False),
        sa.Column("open_seconds", sa.Integer(), server_default="30", nullable=False),
        sa.Column("half_open_max_calls", sa.Integer(), server_default="1", nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=True),
        *_timestamps(),
        sa.CheckConstraint(
            "circuit_breaker_state IN ('CLOSED', 'OPEN', 'HALF_OPEN')",
            name=op.f("ck_vendors_circuit_breaker_state"),
        ),
        sa.CheckConstraint(
            "circuit_breaker_failure_count >= 0", name=op.f("ck_vendors_failure_count_non_negative")
        ),
        sa.CheckConstraint(
            "failure_threshold > 0", name=op.f("ck_vendors_failure_threshold_positive")
        ),
        sa.CheckConstraint(
            "half_open_max_calls > 0", name=op.f("ck_vendors_half_open_max_calls_positive")
        ),
        sa.CheckConstraint("open_seconds >= 0", name=op.f("ck_vendors_open_seconds_non_negative")),
        sa.CheckConstraint(
            "rate_limit_per_minute > 0", name=op.f("ck_vendors_rate_limit_positive")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vendors")),
        sa.UniqueConstraint("name", name=op.f("uq_vendors_name")),
    )
    op.create_table(
        "workflows",
        _id(),
        _tenant_id(),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        _jsonb("settings"),
        *_timestamps(),
        _tenant_fk("workflows"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workflows")),
        sa.UniqueConstraint("tenant_id", "id", name=op.f("uq_workflows_tenant_id_id")),
        sa.UniqueConstraint("tenant_id", "name", name=op.f("uq_workflows_tenant_id_name")),
    )
    op.create_table(
        "events",
        _id(),
        _tenant_id(),
        sa.Column("workflow_id", sa.Uuid(), nullable=False),
        sa.Column("event_type", sa.String(255), nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        _jsonb("payload", empty_default=False),
        sa.Column("idempotency_key", sa.String(255), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("severity", sa.String(32), nullable=True),
        sa.Column("signature", sa.String(64), nullable=True),
        sa.Column("fingerprint_version", sa.SmallInteger(), nullable=True),
        sa.Column("payload_hash", sa.String(64), nullable=False),
        sa.Column("correlation_id", sa.String(255), nullable=True),
        *_timestamps(),
        sa.CheckConstraint(
            "outcome IN ('failure', 'success', 'neutral')", name=op.f("ck_events_outcome")
        ),
        sa.CheckConstraint(f"severity IN {SEVERITIES}", name=op.f("ck_events_severity")),
        _composite_fk("events", "workflow_id", "workflows"),
        _tenant_fk("events"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
        sa.UniqueConstraint(
            "tenant_id", "idempotency_key", name=op.f("uq_events_tenant_id_idempotency_key")
        ),
    )
    op.create_index("ix_events_tenant_occurred", "events", ["tenant_id", "occurred_at"])
    op.create_index(
        "ix_events_tenant_signature",
        "events",
        ["tenant_id", "signature", "occurred_at"],
        postgresql_where=sa.text("signature IS NOT NULL"),
    )
    op.create_index(
        "ix_events_tenant_workflow", "events", ["tenant_id", "workflow_id", "occurred_at"]
    )
    op.create_table(
        "incidents",
        _id(),
        _tenant_id(),
        sa.Column("workflow_id", sa.Uuid(), nullable=False),
        sa.Column("signature", sa.String(64), nullable=False),
        sa.Column("operation", sa.String(255), nullable=False),
        sa.Column("title", sa.String(500), nullable=False),
        sa.Column("status", sa.String(32), server_default="NEW", nullable=False),
        sa.Column("severity", sa.String(32), nullable=False),
        sa.Column("event_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("regression_of", sa.Uuid(), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolution", sa.Text(), nullable=True),
        sa.Column("correlation_id", sa.String(255), nullable=True),
        *_timestamps(),
        sa.CheckConstraint(
            "status IN ('NEW', 'ANALYZING', 'ACTIONED', 'RESOLVED', 'IGNORED')",
            name=op.f("ck_incidents_status"),
        ),
        sa.CheckConstraint(f"severity IN {SEVERITIES}", name=op.f("ck_incidents_severity")),
        sa.CheckConstraint(
            "(status IN ('RESOLVED', 'IGNORED')) = (resolved_at IS NOT NULL)",
            name=op.f("ck_incidents_resolved_at_iff_closed"),
        ),
        sa.CheckConstraint("event_count >= 0", name=op.f("ck_incidents_event_count_non_negative")),
        _composite_fk("incidents", "regression_of", "incidents"),
        _composite_fk("incidents", "workflow_id", "workflows"),
        _tenant_fk("incidents"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incidents")),
        sa.UniqueConstraint("tenant_id", "id", name=op.f("uq_incidents_tenant_id_id")),
    )
    op.create_index(
        "ix_incidents_open_operation",
        "incidents",
        ["tenant_id", "workflow_id", "operation"],
        postgresql_where=sa.text(OPEN),
    )
    op.create_index(
        "ix_incidents_tenant_signature", "incidents", ["tenant_id", "signature", "created_at"]
    )
    op.create_index(
        "ix_incidents_tenant_status", "incidents", ["tenant_id", "status", "created_at"]
    )
    op.create_index(
        "uq_incidents_open_signature",
        "incidents",
        ["tenant_id", "signature"],
        unique=True,
        postgresql_where=sa.text(OPEN),
    )
    op.create_table(
        "kill_switches",
        _id(),
        _tenant_id(),
        sa.Column("workflow_id", sa.Uuid(), nullable=True),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("activated_by", sa.String(255), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("released_by", sa.String(255), nullable=True),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        *_timestamps(),
        sa.CheckConstraint(
            "is_active OR released_at IS NOT NULL OR expires_at IS NOT NULL",
            name=op.f("ck_kill_switches_inactive_means_released_or_expired"),
        ),
        sa.CheckConstraint(
            "length(btrim(activated_by)) > 0", name=op.f("ck_kill_switches_activated_by_not_blank")
        ),
        sa.CheckConstraint(
            "length(btrim(reason)) > 0", name=op.f("ck_kill_switches_reason_not_blank")
        ),
        _composite_fk("kill_switches", "workflow_id", "workflows"),
        _tenant_fk("kill_switches"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kill_switches")),
    )
    op.create_index(
        "ix_kill_switches_tenant_active",
        "kill_switches",
        ["tenant_id", "workflow_id"],
        postgresql_where=sa.text("is_active"),
    )
    op.create_table(
        "decisions",
        _id(),
        _tenant_id(),
        sa.Column("incident_id", sa.Uuid(), nullable=False),
        sa.Column("decision_type", sa.String(32), nullable=False),
        sa.Column("reasoning", sa.Text(), nullable=False),
        sa.Column("confidence_score", sa.Float(), nullable=False),
        sa.Column("ai_model", sa.String(255), nullable=False),
        sa.Column("classification", sa.String(32), nullable=True),
        sa.Column("attempt", sa.Integer(), server_default="1", nullable=False),
        sa.Column("gate", sa.String(32), nullable=True),
        sa.Column("gate_reason", sa.Text(), nullable=True),
        sa.Column("decided_by", sa.String(255), nullable=True),
        _jsonb("details"),
        *_timestamps(),
        sa.CheckConstraint(
            "decision_type IN ('retry', 'escalate', 'manual')",
            name=op.f("ck_decisions_decision_type"),
        ),
        sa.CheckConstraint(
            "classification IN ('transient', 'permanent', 'unknown')",
            name=op.f("ck_decisions_classification"),
        ),
        sa.CheckConstraint("attempt >= 1", name=op.f("ck_decisions_attempt_positive")),
        sa.CheckConstraint(
            "confidence_score >= 0 AND confidence_score <= 1",
            name=op.f("ck_decisions_confidence_in_unit_range"),
        ),
        _composite_fk("decisions", "incident_id", "incidents"),
        _tenant_fk("decisions"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_decisions")),
        sa.UniqueConstraint("tenant_id", "id", name=op.f("uq_decisions_tenant_id_id")),
    )
    op.create_index("ix_decisions_incident_created", "decisions", ["incident_id", "created_at"])
    op.create_table(
        "actions",
        _id(),
        _tenant_id(),
        sa.Column("incident_id", sa.Uuid(), nullable=False),
        sa.Column("decision_id", sa.Uuid(), nullable=False),
        sa.Column("vendor_id", sa.Uuid(), nullable=True),
        sa.Column("action_type", sa.String(32), nullable=False),
        sa.Column("status", sa.String(32), server_default="PENDING", nullable=False),
        _jsonb("parameters"),
        _jsonb("result", nullable=True, empty_default=False),
        sa.Column("is_reversible", sa.Boolean(), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        *_timestamps(),
        sa.CheckConstraint(
            "action_type IN ('retry', 'escalate', 'manual')", name=op.f("ck_actions_action_type")
        ),
        sa.CheckConstraint(
            "status IN ('PENDING', 'IN_PROGRESS', 'SUCCEEDED', 'FAILED')",
            name=op.f("ck_actions_status"),
        ),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_actions_attempts_non_negative")),
        _composite_fk("actions", "decision_id", "decisions"),
        _composite_fk("actions", "incident_id", "incidents"),
        _tenant_fk("actions"),
        sa.ForeignKeyConstraint(
            ["vendor_id"],
            ["vendors.id"],
            name=op.f("fk_actions_vendor_id_vendors"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_actions")),
    )
    op.create_index("ix_actions_incident_status", "actions", ["incident_id", "status"])


def _create_app_role() -> None:
    # Roles are cluster-wide: create it once, and refuse to go on with one that would make the
    # row-level security below meaningless.
    op.execute(
        f"""
        DO $$
        DECLARE r pg_roles%ROWTYPE;
        BEGIN
            SELECT * INTO r FROM pg_roles WHERE rolname = '{APP_ROLE}';
            IF NOT FOUND THEN
                -- Two databases of one cluster migrated at once (two stacks, parallel test
                -- workers) both find no role: the second to create it finds it made.
                BEGIN
                    CREATE ROLE {APP_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
                EXCEPTION WHEN duplicate_object OR unique_violation THEN
                    SELECT * INTO r FROM pg_roles WHERE rolname = '{APP_ROLE}';
                END;
            END IF;
            IF r.rolsuper OR r.rolbypassrls THEN
                RAISE EXCEPTION 'role {APP_ROLE} must not be SUPERUSER or BYPASSRLS';
            END IF;
        END
        $$
        """
    )
    op.execute(
        f"""
        DO $$
        BEGIN
            EXECUTE format('GRANT CONNECT ON DATABASE %I TO {APP_ROLE}', current_database());
            EXECUTE format('GRANT USAGE ON SCHEMA %I TO {APP_ROLE}', current_schema());
        END
        $$
        """
    )
    for table, privileges in APP_GRANTS.items():
        op.execute(f"GRANT {privileges} ON {table} TO {APP_ROLE}")


def _install_triggers() -> None:
    op.execute(
        """
        CREATE FUNCTION awfdrs_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
                USING ERRCODE = 'restrict_violation',
                      CONSTRAINT = 'append_only_' || TG_TABLE_NAME,
                      TABLE = TG_TABLE_NAME;
        END
        $$
        """
    )
    for table in APPEND_ONLY:
        op.execute(
            f"CREATE TRIGGER trg_{table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION awfdrs_refuse_change()"
        )
        op.execute(
            f"CREATE TRIGGER trg_{table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION awfdrs_refuse_change()"
        )
    op.execute(
        """
        CREATE FUNCTION awfdrs_touch_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            NEW.updated_at := clock_timestamp();
            RETURN NEW;
        END
        $$
        """
    )
    for table in MUTABLE:
        op.execute(
            f"CREATE TRIGGER trg_{table}_updated_at BEFORE UPDATE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION awfdrs_touch_updated_at()"
        )


def _enable_row_level_security() -> None:
    # A STABLE SQL function is inlined by the planner, so the policy's comparison stays an
    # index condition. An unset or reset setting is NULL, which matches no row.
    op.execute(
        """
        CREATE FUNCTION awfdrs_current_tenant() RETURNS uuid
        LANGUAGE sql STABLE PARALLEL SAFE AS
        $$ SELECT CAST(nullif(current_setting('app.tenant_id', true), '') AS uuid) $$
        """
    )
    scoped = dict.fromkeys(TENANT_OWNED, "tenant_id") | {"tenants": "id"}
    for table, column in scoped.items():
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON {table} "
            f"USING ({column} = awfdrs_current_tenant()) "
            f"WITH CHECK ({column} = awfdrs_current_tenant())"
        )


def upgrade() -> None:
    _create_tables()
    _install_triggers()
    _enable_row_level_security()
    _create_app_role()


def downgrade() -> None:
    # Policies and triggers go with their tables. The role stays: it is cluster-wide and may
    # serve other databases; only this database's grants are taken back.
    op.execute(
        f"""
        DO $$
        BEGIN
            IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
                EXECUTE format('REVOKE ALL ON DATABASE %I FROM {APP_ROLE}', current_database());
                EXECUTE format('REVOKE ALL ON SCHEMA %I FROM {APP_ROLE}', current_schema());
            END IF;
        END
        $$
        """
    )
    for table in ("actions", "decisions", "kill_switches", "incidents", "events", "workflows"):
        op.drop_table(table)
    op.drop_table("vendors")
    op.drop_table("tenants")
    op.execute("DROP FUNCTION awfdrs_current_tenant()")
    op.execute("DROP FUNCTION awfdrs_touch_updated_at()")
    op.execute("DROP FUNCTION awfdrs_refuse_change()")
