"""Signed command credentials are spent once.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03

A credential (awfdrs.signing) travels in a signal's or update's input, so anyone who can read
the workflow's history can copy it. ``spent_credentials`` records each token's ``jti`` with the
use it was spent on (a kill-switch request id, an update id) in the same transaction as its
effect: the same use again (an activity retried) passes, any other use of it is refused. Rows
are only needed until the token expires; the writer deletes its tenant's expired ones.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP_ROLE = "awfdrs_app"


def upgrade() -> None:
    op.create_table(
        "spent_credentials",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("jti", sa.String(64), nullable=False),
        sa.Column("use_key", sa.String(255), nullable=False),
        sa.Column("command", sa.String(32), nullable=False),
        sa.Column("principal", sa.String(255), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
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
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name="fk_spent_credentials_tenant_id_tenants",
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_spent_credentials"),
        sa.UniqueConstraint("tenant_id", "jti", name="uq_spent_credentials_tenant_id_jti"),
    )
    op.create_index(
        "ix_spent_credentials_tenant_id_expires_at",
        "spent_credentials",
        ["tenant_id", "expires_at"],
    )
    op.execute(
        "CREATE TRIGGER trg_spent_credentials_updated_at BEFORE UPDATE ON spent_credentials "
        "FOR EACH ROW EXECUTE FUNCTION awfdrs_touch_updated_at()"
    )
    op.execute("ALTER TABLE spent_credentials ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE spent_credentials FORCE ROW LEVEL SECURITY")
    op.execute(
        "CREATE POLICY tenant_isolation ON spent_credentials "
        "USING (tenant_id = awfdrs_current_tenant()) "
        "WITH CHECK (tenant_id = awfdrs_current_tenant())"
    )
    op.execute(f"GRANT SELECT, INSERT, DELETE ON spent_credentials TO {APP_ROLE}")


def downgrade() -> None:
    op.drop_table("spent_credentials")
