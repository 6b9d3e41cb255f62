"""Per-request remediation, the incident's phase, the ingest outbox, fuse escalation claims.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03

``remediation_requests``: one row per distinct failed request an incident groups (a replayable
request is the failed event's retry spec; a failure with nothing to replay is one row per
correlation id, or per event without one). Each carries its own state, attempts, the vendor's
last answer and a stable Idempotency-Key derived from the tenant and the first failed event that
carried it, reused by every later row of the same request in the tenant.

``outbox``: what ingest must tell incident workflows (start, severity, recovery evidence, new
requests), written in the ingest transaction and delivered by the dispatcher. The dispatcher
works across tenants through SECURITY DEFINER functions, so the application role never reads
another tenant's rows directly. Row-level security is enabled but not FORCE'd on it: the
functions run as the owner, which must see every tenant's notices whether or not it is a
superuser (managed PostgreSQL services do not give one); the application role, not the owner,
is still filtered, and may only INSERT.

``incidents.phase``: the lifecycle phase the workflow is in, so "which incidents need a human"
is a query. ``fuse_episodes``: the escalation of an episode is claimed by one incident
atomically before it is sent.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP_ROLE = "awfdrs_app"
REQUEST_STATUSES = (
    "('PENDING', 'SENT', 'SUCCEEDED', 'FAILED', 'RECOVERED', 'HANDED_OVER', 'CANCELLED', "
    "'SHADOWED')"
)
PHASES = (
    "('grouping', 'analyzing', 'awaiting_approval', 'held', 'acting', 'verifying', "
    "'awaiting_operator', 'closed')"
)
OUTBOX_CHANNEL = "awfdrs_outbox"
GATES = "('kill_switch', 'mode', 'budget', 'fuse', 'confidence', 'reversibility')"
# The metrics gauges, read across tenants (as 0003's functions are): held incidents by the
# control holding them (approvals count under the control that asked for one), and open
# incidents by phase.
HELD_COUNTS_BEFORE = """
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
"""
HELD_COUNTS = """
    RETURNS TABLE (gate text, incidents bigint)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = {schema}, pg_temp
    AS $$
        SELECT held_by, count(*) FROM incidents
        WHERE status IN ('NEW', 'ANALYZING', 'ACTIONED') AND held_by IS NOT NULL
        GROUP BY held_by
    $$
"""
PHASE_COUNTS = """
    RETURNS TABLE (phase text, incidents bigint)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = {schema}, pg_temp
    AS $$
        SELECT phase, count(*) FROM incidents
        WHERE status IN ('NEW', 'ANALYZING', 'ACTIONED')
        GROUP BY phase
    $$
"""


def _gauge_functions(held: str, with_phases: bool) -> None:
    schema = op.get_bind().exec_driver_sql("SELECT current_schema()").scalar_one()
    op.execute("DROP FUNCTION IF EXISTS awfdrs_held_counts()")
    op.execute("DROP FUNCTION IF EXISTS awfdrs_phase_counts()")
    functions = {"awfdrs_held_counts()": held}
    if with_phases:
        functions["awfdrs_phase_counts()"] = PHASE_COUNTS
    for signature, body in functions.items():
        op.execute(f"CREATE FUNCTION {signature} {body.format(schema=schema)}")
        op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
        op.execute(f"GRANT EXECUTE ON FUNCTION {signature} TO {APP_ROLE}")


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


def _tenant_isolation(table: str, *, force: bool = True) -> None:
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    if force:
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY tenant_isolation ON {table} "
        "USING (tenant_id = awfdrs_current_tenant()) "
        "WITH CHECK (tenant_id = awfdrs_current_tenant())"
    )


def _requests() -> None:
    # A request row must point at an event of its own tenant: foreign-key checks bypass row-level
    # security, so the key itself carries the tenant, as every other child table's does.
    op.create_unique_constraint(op.f("uq_events_tenant_id_id"), "events", ["tenant_id", "id"])
    # One Idempotency-Key per request content in a tenant, whatever incident meets it: the first
    # to insert a hash fixes its key (concurrent batches wait on this primary key), and
    # ``succeeded_at`` tells every later incident that it must not be sent again.
    op.create_table(
        "request_keys",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=False),
        sa.Column("succeeded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("succeeded_request_id", sa.Uuid(), nullable=True),
        # The latest failure (sender's clock) the successful attempt was sent for: a copy of
        # the same content that failed no later than this is answered by that success.
        sa.Column("answered_until", sa.DateTime(timezone=True), nullable=True),
        *_timestamps(),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_request_keys_tenant_id_tenants"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "request_hash", name=op.f("pk_request_keys")),
    )
    op.execute(
        "CREATE TRIGGER trg_request_keys_updated_at BEFORE UPDATE ON request_keys "
        "FOR EACH ROW EXECUTE FUNCTION awfdrs_touch_updated_at()"
    )
    _tenant_isolation("request_keys")
    op.execute(f"GRANT SELECT, INSERT, UPDATE ON request_keys TO {APP_ROLE}")
    op.create_table(
        "remediation_requests",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("incident_id", sa.Uuid(), nullable=False),
        sa.Column("first_event_id", sa.Uuid(), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=False),
        sa.Column("replayable", sa.Boolean(), nullable=False),
        sa.Column("vendor_name", sa.String(255), nullable=True),
        sa.Column("vendor_id", sa.Uuid(), nullable=True),
        sa.Column("method", sa.String(8), nullable=True),
        sa.Column("path", sa.String(2048), nullable=True),
        sa.Column("body", postgresql.JSONB(), nullable=True),
        sa.Column(
            "headers", postgresql.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False
        ),
        sa.Column("reversible", sa.Boolean(), nullable=True),
        sa.Column(
            "correlation_ids",
            postgresql.ARRAY(sa.Text()),
            server_default=sa.text("'{}'::text[]"),
            nullable=False,
        ),
        sa.Column("event_count", sa.Integer(), server_default="1", nullable=False),
        sa.Column("error_code", sa.String(128), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("first_failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "last_received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("status", sa.String(32), server_default="PENDING", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        # last_failed_at as the latest attempt was claimed: what that attempt answers.
        sa.Column("sent_for_failed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deferred_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_response", sa.Text(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("action_id", sa.Uuid(), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("evidence_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        *_timestamps(),
        sa.CheckConstraint(
            f"status IN {REQUEST_STATUSES}", name=op.f("ck_remediation_requests_status")
        ),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_remediation_requests_attempts")),
        sa.CheckConstraint("event_count >= 1", name=op.f("ck_remediation_requests_event_count")),
        sa.CheckConstraint(
            "replayable = (method IS NOT NULL AND path IS NOT NULL)",
            name=op.f("ck_remediation_requests_replayable_has_request"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_remediation_requests_tenant_id_tenants"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "incident_id"],
            ["incidents.tenant_id", "incidents.id"],
            name=op.f("fk_remediation_requests_tenant_id_incidents"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "first_event_id"],
            ["events.tenant_id", "events.id"],
            name=op.f("fk_remediation_requests_tenant_id_events"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["vendor_id"],
            ["vendors.id"],
            name=op.f("fk_remediation_requests_vendor_id_vendors"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_remediation_requests")),
        sa.UniqueConstraint(
            "tenant_id",
            "incident_id",
            "request_hash",
            name=op.f("uq_remediation_requests_tenant_id_incident_id_request_hash"),
        ),
    )
    op.create_index(
        "ix_remediation_requests_tenant_hash",
        "remediation_requests",
        ["tenant_id", "request_hash", "created_at"],
    )
    op.execute(
        "CREATE TRIGGER trg_remediation_requests_updated_at BEFORE UPDATE ON "
        "remediation_requests FOR EACH ROW EXECUTE FUNCTION awfdrs_touch_updated_at()"
    )
    _tenant_isolation("remediation_requests")
    op.execute(f"GRANT SELECT, INSERT, UPDATE ON remediation_requests TO {APP_ROLE}")


def _outbox() -> None:
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("incident_id", sa.Uuid(), nullable=False),
        sa.Column("task_queue", sa.String(255), nullable=False),
        sa.Column("start", postgresql.JSONB(), nullable=False),
        sa.Column("severity", sa.String(32), nullable=True),
        sa.Column("recovered", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("joined", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("opened", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "available_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("clock_timestamp()"),
            nullable=False,
        ),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("clock_timestamp()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "incident_id"],
            ["incidents.tenant_id", "incidents.id"],
            name=op.f("fk_outbox_tenant_id_incidents"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
    )
    op.create_index("ix_outbox_available", "outbox", ["task_queue", "available_at", "id"])
    _tenant_isolation("outbox", force=False)
    # Ingest writes rows inside its tenant's transaction; only the functions below read them.
    op.execute(f"GRANT INSERT ON outbox TO {APP_ROLE}")
    op.execute(f"GRANT USAGE ON SEQUENCE outbox_id_seq TO {APP_ROLE}")
    schema = op.get_bind().exec_driver_sql("SELECT current_schema()").scalar_one()
    definer = f"SECURITY DEFINER SET search_path = {schema}, pg_temp"
    # One NOTIFY per inserting statement, delivered at commit: the dispatcher wakes at once
    # instead of polling, and never for a transaction that rolled back.
    op.execute(
        f"""
        CREATE FUNCTION awfdrs_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('{OUTBOX_CHANNEL}', '');
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER trg_outbox_notify AFTER INSERT ON outbox "
        "FOR EACH STATEMENT EXECUTE FUNCTION awfdrs_outbox_notify()"
    )
    functions = {
        # A claim is a lease, committed at once: the rows are pushed past ``lease_seconds``
        # (other dispatchers skip them), delivered with no transaction open, then deleted; a
        # dispatcher that dies leaves them to come back when the lease ends.
        "awfdrs_outbox_claim(queue text, batch integer, lease_seconds double precision)": f"""
            RETURNS SETOF outbox LANGUAGE sql VOLATILE {definer} AS $$
                UPDATE outbox o
                SET available_at = clock_timestamp() + make_interval(secs => lease_seconds)
                FROM (
                    SELECT id FROM outbox
                    WHERE task_queue = queue AND available_at <= clock_timestamp()
                    ORDER BY available_at, id
                    LIMIT batch
                    FOR UPDATE SKIP LOCKED
                ) AS due
                WHERE o.id = due.id
                RETURNING o.*
            $$
        """,
        "awfdrs_outbox_done(ids bigint[])": f"""
            RETURNS integer LANGUAGE sql VOLATILE {definer} AS $$
                WITH gone AS (DELETE FROM outbox WHERE id = ANY(ids) RETURNING 1)
                SELECT count(*)::integer FROM gone
            $$
        """,
        "awfdrs_outbox_defer(ids bigint[], error text, delay_seconds double precision)": f"""
            RETURNS integer LANGUAGE sql VOLATILE {definer} AS $$
                WITH later AS (
                    UPDATE outbox
                    SET attempts = attempts + 1,
                        last_error = left(error, 2000),
                        available_at = clock_timestamp() + make_interval(secs => delay_seconds)
                    WHERE id = ANY(ids)
                    RETURNING 1
                )
                SELECT count(*)::integer FROM later
            $$
        """,
        "awfdrs_outbox_stats()": f"""
            RETURNS TABLE (depth bigint, oldest timestamptz)
            LANGUAGE sql STABLE {definer} AS $$
                SELECT count(*), min(created_at) FROM outbox
            $$
        """,
    }
    for signature, body in functions.items():
        op.execute(f"CREATE FUNCTION {signature} {body}")
        op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
        op.execute(f"GRANT EXECUTE ON FUNCTION {signature} TO {APP_ROLE}")


OUTBOX_FUNCTIONS = (
    "awfdrs_outbox_claim(text, integer, double precision)",
    "awfdrs_outbox_done(bigint[])",
    "awfdrs_outbox_defer(bigint[], text, double precision)",
    "awfdrs_outbox_stats()",
)


def upgrade() -> None:
    _requests()
    _outbox()
    op.add_column(
        "incidents",
        sa.Column("phase", sa.String(32), server_default="grouping", nullable=False),
    )
    op.add_column("incidents", sa.Column("phase_reason", sa.Text(), nullable=True))
    op.add_column("incidents", sa.Column("held_by", sa.String(32), nullable=True))
    op.create_check_constraint(op.f("ck_incidents_held_by"), "incidents", f"held_by IN {GATES}")
    op.execute("UPDATE incidents SET phase = 'closed' WHERE status IN ('RESOLVED', 'IGNORED')")
    op.create_check_constraint(op.f("ck_incidents_phase"), "incidents", f"phase IN {PHASES}")
    op.create_index(
        "ix_incidents_tenant_phase",
        "incidents",
        ["tenant_id", "phase", "created_at"],
        postgresql_where=sa.text("status IN ('NEW', 'ANALYZING', 'ACTIONED')"),
    )
    _gauge_functions(HELD_COUNTS, with_phases=True)
    op.add_column("fuse_episodes", sa.Column("escalation_incident_id", sa.Uuid(), nullable=True))
    op.add_column(
        "fuse_episodes",
        sa.Column("escalation_claimed_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.add_column("fuse_episodes", sa.Column("escalation_error", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("fuse_episodes", "escalation_error")
    op.drop_column("fuse_episodes", "escalation_claimed_at")
    op.drop_column("fuse_episodes", "escalation_incident_id")
    op.drop_index("ix_incidents_tenant_phase", table_name="incidents")
    _gauge_functions(HELD_COUNTS_BEFORE, with_phases=False)
    op.drop_constraint(op.f("ck_incidents_held_by"), "incidents", type_="check")
    op.drop_column("incidents", "held_by")
    op.drop_constraint(op.f("ck_incidents_phase"), "incidents", type_="check")
    op.drop_column("incidents", "phase_reason")
    op.drop_column("incidents", "phase")
    for signature in OUTBOX_FUNCTIONS:
        op.execute(f"DROP FUNCTION {signature}")
    op.drop_table("outbox")
    op.execute("DROP FUNCTION awfdrs_outbox_notify()")
    op.drop_table("remediation_requests")
    op.drop_table("request_keys")
    op.drop_constraint(op.f("uq_events_tenant_id_id"), "events", type_="unique")
