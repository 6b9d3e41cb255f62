"""A tamper-evident audit: one append-only, hash-chained log per tenant.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03

``audit_log``: every operator command, decision, request and action transition, kill switch
activation and release and incident closure of a tenant, numbered ``seq`` 1, 2, 3 … per tenant.
Each row carries the hash of the row before it (``prev_hash``; 64 zeros for the first) and its
own ``hash`` over that and every other column, so changing, removing or reordering a row breaks
the chain from there on (``awfdrs audit verify``). ``audit_heads``: the latest ``seq`` and
``hash`` of each tenant's chain, the row appends lock so one tenant's chain has no gaps or forks
however many transactions append at once; it also makes a removed tail visible.

The chain is built here, not in Python, so no code path can forget it: AFTER triggers on the
domain tables call ``audit_append``. They are constraint triggers deferred to commit, so the
per-tenant lock on ``audit_heads`` is held for the commit alone, not for the rest of a
transaction that may wait on other rows (an ingest batch and an analysis of the same tenant
would otherwise deadlock on it), and a transaction that rolls back leaves no trace. Still, the
appends of one tenant commit one at a time, so ingest's hot path is kept out of the chain:
nothing on ``events``, on the incident counts, nor on the creation of a PENDING request (a
tenant's ingest of new failures ran at a third of its rate with it, in a local measurement);
requests are recorded from their first transition on.

The hash input is defined once, in ``awfdrs_audit_hash`` (``awfdrs.audit`` recomputes it
byte for byte; docs/AUDIT.md states it)::

    prev_hash | seq | tenant_id | id | occurred_at | text(kind) | text(actor)
      | text(subject_type) | text(subject_id) | body::text

``occurred_at`` in UTC as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``; ``text(x)`` is ``length:x``, or
``~`` for NULL, so no free-text field can shift a ``|`` into its neighbour; ``body::text`` is
PostgreSQL's canonical jsonb text, read back from the database by the verifier.

Append-only: row triggers refuse UPDATE and DELETE and a statement trigger TRUNCATE, whoever
asks; the application role may only SELECT (row-level security applies) and append operator
commands for its current tenant through ``audit_record_command``. As on ``outbox`` and
``api_keys``, row-level security is enabled but not FORCE'd, so the functions (which run as the
owner) see every chain's head whether or not the owner is a superuser.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP_ROLE = "awfdrs_app"
GENESIS = "0" * 64
KIND_PATTERN = "^[a-z_]+\\.[a-z_]+$"
APPEND_SIGNATURE = "audit_append(uuid, text, text, text, text, jsonb)"
COMMAND_SIGNATURE = "audit_record_command(uuid, text, text, text, text, jsonb)"
HASH_SIGNATURE = (
    "awfdrs_audit_hash(text, bigint, uuid, uuid, timestamptz, text, text, text, text, jsonb)"
)

# (table, trigger suffix, events, WHEN condition, trigger function)
TRIGGERS = (
    ("decisions", "insert", "INSERT", None, "awfdrs_audit_decision"),
    # Not a PENDING request's creation: ingest creates one per new distinct failure, the hot
    # path, and its failure is already in the append-only events; the request's first move
    # (PENDING → …) is recorded. Created already judged (answered by an earlier success, or
    # failed again after one: a human's to look at), it is recorded.
    (
        "remediation_requests",
        "insert",
        "INSERT",
        "NEW.status <> 'PENDING'",
        "awfdrs_audit_request",
    ),
    # Not the requests an operator's close cancels: an hour's outage is thousands of them, and
    # a row each (appended one at a time at commit) kept the close past its few seconds. The
    # close's own row counts them.
    (
        "remediation_requests",
        "status",
        "UPDATE OF status",
        "OLD.status IS DISTINCT FROM NEW.status AND NEW.status <> 'CANCELLED'",
        "awfdrs_audit_request",
    ),
    ("actions", "insert", "INSERT", None, "awfdrs_audit_action"),
    (
        "actions",
        "status",
        "UPDATE OF status",
        "OLD.status IS DISTINCT FROM NEW.status",
        "awfdrs_audit_action",
    ),
    ("kill_switches", "insert", "INSERT", None, "awfdrs_audit_kill_switch"),
    (
        "kill_switches",
        "release",
        "UPDATE OF is_active",
        "OLD.is_active AND NOT NEW.is_active",
        "awfdrs_audit_kill_switch",
    ),
    (
        "incidents",
        "closed",
        "UPDATE OF status",
        "NEW.status IN ('RESOLVED', 'IGNORED') AND OLD.status IS DISTINCT FROM NEW.status",
        "awfdrs_audit_incident",
    ),
)

HASH_FUNCTION = """
    CREATE FUNCTION awfdrs_audit_hash(
        prev_hash text, seq bigint, tenant_id uuid, id uuid, occurred_at timestamptz,
        kind text, actor text, subject_type text, subject_id text, body jsonb
    ) RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS $$
        SELECT encode(sha256(convert_to(concat_ws('|',
            prev_hash,
            seq::text,
            tenant_id::text,
            id::text,
            to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
            coalesce(length(kind) || ':' || kind, '~'),
            coalesce(length(actor) || ':' || actor, '~'),
            coalesce(length(subject_type) || ':' || subject_type, '~'),
            coalesce(length(subject_id) || ':' || subject_id, '~'),
            body::text
        ), 'UTF8')), 'hex')
    $$
"""

APPEND = """
    CREATE FUNCTION audit_append(
        p_tenant uuid, p_actor text, p_kind text, p_subject_type text, p_subject_id text,
        p_body jsonb
    ) RETURNS audit_log LANGUAGE plpgsql VOLATILE {definer} AS $$
    DECLARE
        head audit_heads%ROWTYPE;
        entry audit_log%ROWTYPE;
    BEGIN
        INSERT INTO audit_heads (tenant_id, seq, hash) VALUES (p_tenant, 0, '{genesis}')
        ON CONFLICT (tenant_id) DO NOTHING;
        -- Every append of the tenant waits here for the one before it to commit or roll back,
        -- so seq has no gaps and each row names the hash of the row committed before it.
        SELECT * INTO STRICT head FROM audit_heads WHERE tenant_id = p_tenant FOR UPDATE;
        entry.id := gen_random_uuid();
        entry.tenant_id := p_tenant;
        entry.seq := head.seq + 1;
        -- Taken after the lock: times never go backwards along a chain.
        entry.occurred_at := clock_timestamp();
        entry.actor := coalesce(nullif(btrim(p_actor), ''), 'system');
        entry.kind := p_kind;
        entry.subject_type := p_subject_type;
        entry.subject_id := p_subject_id;
        entry.body := coalesce(p_body, '{{}}'::jsonb);
        entry.prev_hash := head.hash;
        entry.hash := awfdrs_audit_hash(
            entry.prev_hash, entry.seq, entry.tenant_id, entry.id, entry.occurred_at,
            entry.kind, entry.actor, entry.subject_type, entry.subject_id, entry.body
        );
        INSERT INTO audit_log (id, tenant_id, seq, occurred_at, actor, kind, subject_type,
                               subject_id, body, prev_hash, hash)
        VALUES (entry.id, entry.tenant_id, entry.seq, entry.occurred_at, entry.actor,
                entry.kind, entry.subject_type, entry.subject_id, entry.body, entry.prev_hash,
                entry.hash);
        UPDATE audit_heads SET seq = entry.seq, hash = entry.hash,
                               updated_at = clock_timestamp()
        WHERE tenant_id = p_tenant;
        RETURN entry;
    END
    $$
"""

# Operator commands come from the application role: only into the chain of the tenant its
# transaction is set to, and only as what they are (it cannot forge a decision's row).
RECORD_COMMAND = """
    CREATE FUNCTION audit_record_command(
        p_tenant uuid, p_actor text, p_command text, p_subject_type text, p_subject_id text,
        p_body jsonb
    ) RETURNS audit_log LANGUAGE plpgsql VOLATILE {definer} AS $$
    DECLARE
        tenant uuid := awfdrs_current_tenant();
    BEGIN
        IF tenant IS NULL OR tenant IS DISTINCT FROM p_tenant THEN
            RAISE EXCEPTION 'audit_record_command: tenant % is not the transaction''s (%)',
                p_tenant, coalesce(tenant::text, 'none')
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        IF p_command IS NULL OR btrim(p_command) = '' THEN
            RAISE EXCEPTION 'audit_record_command: the command is required'
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        RETURN audit_append(
            tenant, p_actor, 'operator.command', p_subject_type, p_subject_id,
            jsonb_build_object('command', p_command, 'args', coalesce(p_body, '{{}}'::jsonb))
        );
    END
    $$
"""

# The actor of a row's change: the row's own column when it has one, else what the transaction
# declared (SET LOCAL app.actor), else 'system' (automation).
ACTOR = (
    "coalesce(nullif(btrim({column}), ''), nullif(current_setting('app.actor', true), ''), "
    "'system')"
)

TRIGGER_FUNCTIONS = {
    "awfdrs_audit_decision": f"""
        PERFORM audit_append(
            NEW.tenant_id, {ACTOR.format(column="NEW.decided_by")}, 'decision.recorded',
            'decision', NEW.id::text,
            jsonb_build_object(
                'incident_id', NEW.incident_id, 'decision_type', NEW.decision_type,
                'attempt', NEW.attempt, 'confidence_score', NEW.confidence_score,
                'ai_model', NEW.ai_model, 'classification', NEW.classification,
                'gate', NEW.gate, 'gate_reason', NEW.gate_reason, 'reasoning', NEW.reasoning,
                'decided_by', NEW.decided_by, 'details', NEW.details
            )
        );
    """,
    # Never the request's body or headers: the audit is kept forever and cannot be purged.
    "awfdrs_audit_request": f"""
        PERFORM audit_append(
            NEW.tenant_id, {ACTOR.format(column="NULL")}, 'request.state_changed',
            'remediation_request', NEW.id::text,
            jsonb_build_object(
                'incident_id', NEW.incident_id,
                'from', CASE WHEN TG_OP = 'UPDATE' THEN OLD.status END, 'to', NEW.status,
                'attempts', NEW.attempts, 'action_id', NEW.action_id,
                'vendor', NEW.vendor_name, 'method', NEW.method, 'path', NEW.path,
                'status_code', NEW.last_status_code, 'error', NEW.last_error, 'note', NEW.note
            )
        );
    """,
    "awfdrs_audit_action": f"""
        PERFORM audit_append(
            NEW.tenant_id, {ACTOR.format(column="NULL")}, 'action.state_changed',
            'action', NEW.id::text,
            jsonb_build_object(
                'incident_id', NEW.incident_id, 'decision_id', NEW.decision_id,
                'action_type', NEW.action_type,
                'from', CASE WHEN TG_OP = 'UPDATE' THEN OLD.status END, 'to', NEW.status,
                'attempts', NEW.attempts, 'is_reversible', NEW.is_reversible,
                'error', NEW.error
            )
        );
    """,
    "awfdrs_audit_kill_switch": f"""
        IF TG_OP = 'INSERT' THEN
            PERFORM audit_append(
                NEW.tenant_id, {ACTOR.format(column="NEW.activated_by")},
                'kill_switch.activated', 'kill_switch', NEW.id::text,
                jsonb_build_object(
                    'workflow_id', NEW.workflow_id, 'reason', NEW.reason,
                    'expires_at', NEW.expires_at, 'is_active', NEW.is_active
                )
            );
        ELSE
            PERFORM audit_append(
                NEW.tenant_id, {ACTOR.format(column="NEW.released_by")},
                'kill_switch.released', 'kill_switch', NEW.id::text,
                jsonb_build_object(
                    'workflow_id', NEW.workflow_id, 'reason', NEW.release_reason,
                    'released_by', NEW.released_by, 'activated_by', NEW.activated_by
                )
            );
        END IF;
    """,
    # incidents has no column for who closed it: an operator's close says so in its resolution
    # ("resolved by alice: …"), and a transaction may name its actor in app.actor.
    "awfdrs_audit_incident": f"""
        PERFORM audit_append(
            NEW.tenant_id, {ACTOR.format(column="NULL")}, 'incident.closed',
            'incident', NEW.id::text,
            jsonb_build_object(
                'from', OLD.status, 'status', NEW.status, 'resolution', NEW.resolution,
                'signature', NEW.signature, 'title', NEW.title,
                'cancelled_requests', (
                    SELECT count(*) FROM remediation_requests r
                    WHERE r.tenant_id = NEW.tenant_id AND r.incident_id = NEW.id
                      AND r.status = 'CANCELLED'
                )
            )
        );
    """,
}


def _tables() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column(
            "occurred_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("clock_timestamp()"),
            nullable=False,
        ),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("subject_type", sa.String(64), nullable=True),
        sa.Column("subject_id", sa.Text(), nullable=True),
        sa.Column(
            "body",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.CheckConstraint("seq >= 1", name=op.f("ck_audit_log_seq_positive")),
        sa.CheckConstraint("length(btrim(actor)) > 0", name=op.f("ck_audit_log_actor_not_blank")),
        sa.CheckConstraint(f"kind ~ '{KIND_PATTERN}'", name=op.f("ck_audit_log_kind_format")),
        sa.CheckConstraint(
            "length(prev_hash) = 64 AND length(hash) = 64", name=op.f("ck_audit_log_hash_length")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_audit_log_tenant_id_tenants"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
        sa.UniqueConstraint("tenant_id", "seq", name=op.f("uq_audit_log_tenant_id_seq")),
    )
    op.create_table(
        "audit_heads",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("clock_timestamp()"),
            nullable=False,
        ),
        sa.CheckConstraint("seq >= 0", name=op.f("ck_audit_heads_seq_non_negative")),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_audit_heads_tenant_id_tenants"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_audit_heads")),
    )
    op.execute(
        "CREATE TRIGGER trg_audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
        "FOR EACH ROW EXECUTE FUNCTION awfdrs_refuse_change()"
    )
    op.execute(
        "CREATE TRIGGER trg_audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
        "FOR EACH STATEMENT EXECUTE FUNCTION awfdrs_refuse_change()"
    )
    for table in ("audit_log", "audit_heads"):
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON {table} "
            "USING (tenant_id = awfdrs_current_tenant()) "
            "WITH CHECK (tenant_id = awfdrs_current_tenant())"
        )
        op.execute(f"GRANT SELECT ON {table} TO {APP_ROLE}")


def _functions() -> None:
    schema = op.get_bind().exec_driver_sql("SELECT current_schema()").scalar_one()
    definer = f"SECURITY DEFINER SET search_path = {schema}, pg_temp"
    op.execute(HASH_FUNCTION)
    op.execute(APPEND.format(definer=definer, genesis=GENESIS))
    op.execute(RECORD_COMMAND.format(definer=definer))
    for signature in (APPEND_SIGNATURE, COMMAND_SIGNATURE):
        op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION {COMMAND_SIGNATURE} TO {APP_ROLE}")
    # SECURITY DEFINER: the application role fires these triggers but may not call audit_append.
    for name, body in TRIGGER_FUNCTIONS.items():
        op.execute(
            f"""
            CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql {definer} AS $$
            BEGIN
                {body}
                RETURN NULL;
            END
            $$
            """
        )
        op.execute(f"REVOKE ALL ON FUNCTION {name}() FROM PUBLIC")


def _triggers() -> None:
    for table, suffix, event, condition, function in TRIGGERS:
        when = f"WHEN ({condition}) " if condition else ""
        op.execute(
            f"CREATE CONSTRAINT TRIGGER trg_{table}_audit_{suffix} AFTER {event} ON {table} "
            f"DEFERRABLE INITIALLY DEFERRED FOR EACH ROW {when}EXECUTE FUNCTION {function}()"
        )


def upgrade() -> None:
    _tables()
    _functions()
    _triggers()


def downgrade() -> None:
    for table, suffix, *_ in TRIGGERS:
        op.execute(f"DROP TRIGGER trg_{table}_audit_{suffix} ON {table}")
    for name in TRIGGER_FUNCTIONS:
        op.execute(f"DROP FUNCTION {name}()")
    for signature in (COMMAND_SIGNATURE, APPEND_SIGNATURE, HASH_SIGNATURE):
        op.execute(f"DROP FUNCTION {signature}")
    op.drop_table("audit_heads")
    op.drop_table("audit_log")
