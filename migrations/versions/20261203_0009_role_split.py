"""The application role can no longer create tenants or change the vendor catalog.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03

Ingest, the workers and the API run as ``awfdrs_app``. What they need of ``tenants`` is to read
their tenant's row and, for a tenant's admin key, to change its settings; of ``vendors``, to
read the catalog (its deployment-wide stop included). Creating tenants, renaming or
deactivating one, and adding, changing or stopping vendors for everyone are the deployment
administrator's commands, run with the owner's connection (``AWFDRS_MIGRATION_DATABASE_URL``).

Row-level security still holds for the application role, but it is keyed on a transaction
setting the role may set itself: it protects tenants from query bugs, not from someone who holds
the application role's credentials. Those must stay with awfdrs's own processes.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP_ROLE = "awfdrs_app"


def upgrade() -> None:
    op.execute(f"REVOKE INSERT, UPDATE, DELETE ON tenants FROM {APP_ROLE}")
    # A tenant's admin key changes its settings (row-level security keeps it to its own row);
    # updated_at is set by the same statement.
    op.execute(f"GRANT UPDATE (settings, updated_at) ON tenants TO {APP_ROLE}")
    op.execute(f"REVOKE INSERT, UPDATE, DELETE ON vendors FROM {APP_ROLE}")


def downgrade() -> None:
    op.execute(f"REVOKE UPDATE (settings, updated_at) ON tenants FROM {APP_ROLE}")
    op.execute(f"GRANT INSERT, UPDATE ON tenants TO {APP_ROLE}")
    op.execute(f"GRANT INSERT, UPDATE, DELETE ON vendors TO {APP_ROLE}")
