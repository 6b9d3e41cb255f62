"""Per-tenant API keys for the HTTP edge.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03

``api_keys``: one row per key. The secret is never stored: only its SHA-256 (a key is 256 random
bits, so a fast hash is enough; a slow one would cost every request and protect nothing more).
The public ``prefix`` finds the row; the API compares the hash in constant time.

The API must find a key before it knows the tenant, and row-level security shows the
application role no row without one. Two SECURITY DEFINER functions bridge exactly that gap,
as the outbox functions of 0005 do: ``awfdrs_api_key_lookup(prefix)`` returns the one row a
presented key names (hash included, for the constant-time compare in the API), and
``awfdrs_api_key_tenant(id)`` returns only the tenant of a key id, so that ``awfdrs keys revoke
ID`` can open the right tenant's transaction; the revocation itself runs under row-level
security. As on ``outbox``, row-level security is enabled but not FORCE'd, so the functions
(which run as the owner) see every tenant's keys whether or not the owner is a superuser.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP_ROLE = "awfdrs_app"
ROLES = "('ingest', 'viewer', 'operator', 'admin')"
FUNCTIONS = (
    "awfdrs_api_key_lookup(text)",
    "awfdrs_api_key_tenant(uuid)",
    "awfdrs_api_key_used(uuid)",
)


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("prefix", sa.String(32), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
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
        sa.CheckConstraint(f"role IN {ROLES}", name=op.f("ck_api_keys_role")),
        sa.CheckConstraint("length(secret_hash) = 64", name=op.f("ck_api_keys_secret_hash")),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_api_keys_tenant_id_tenants"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("prefix", name=op.f("uq_api_keys_prefix")),
    )
    op.create_index("ix_api_keys_tenant_id", "api_keys", ["tenant_id", "created_at"])
    op.execute(
        "CREATE TRIGGER trg_api_keys_updated_at BEFORE UPDATE ON api_keys "
        "FOR EACH ROW EXECUTE FUNCTION awfdrs_touch_updated_at()"
    )
    op.execute("ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY")
    op.execute(
        "CREATE POLICY tenant_isolation ON api_keys "
        "USING (tenant_id = awfdrs_current_tenant()) "
        "WITH CHECK (tenant_id = awfdrs_current_tenant())"
    )
    # No DELETE: a revoked key stays, so "who used which key" is still answerable.
    op.execute(f"GRANT SELECT, INSERT, UPDATE ON api_keys TO {APP_ROLE}")
    schema = op.get_bind().exec_driver_sql("SELECT current_schema()").scalar_one()
    definer = f"SECURITY DEFINER SET search_path = {schema}, pg_temp"
    bodies = {
        "awfdrs_api_key_lookup(key_prefix text)": f"""
            RETURNS TABLE (id uuid, tenant_id uuid, role text, secret_hash text,
                           expires_at timestamptz, revoked_at timestamptz)
            LANGUAGE sql STABLE {definer} AS $$
                SELECT k.id, k.tenant_id, k.role::text, k.secret_hash::text, k.expires_at,
                       k.revoked_at
                FROM api_keys k WHERE k.prefix = key_prefix
            $$
        """,
        "awfdrs_api_key_tenant(key_id uuid)": f"""
            RETURNS uuid LANGUAGE sql STABLE {definer} AS $$
                SELECT tenant_id FROM api_keys WHERE id = key_id
            $$
        """,
        # Called by the API after a key verified, at most once per key per cache period, so
        # last_used_at is accurate to a few seconds without a write per request.
        "awfdrs_api_key_used(key_id uuid)": f"""
            RETURNS void LANGUAGE sql VOLATILE {definer} AS $$
                UPDATE api_keys SET last_used_at = clock_timestamp()
                WHERE id = key_id AND revoked_at IS NULL
            $$
        """,
    }
    for signature, body in bodies.items():
        op.execute(f"CREATE FUNCTION {signature} {body}")
    for signature in FUNCTIONS:
        op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
        op.execute(f"GRANT EXECUTE ON FUNCTION {signature} TO {APP_ROLE}")


def downgrade() -> None:
    for signature in FUNCTIONS:
        op.execute(f"DROP FUNCTION {signature}")
    op.drop_table("api_keys")
