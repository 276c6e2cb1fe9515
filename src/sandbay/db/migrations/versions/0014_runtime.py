"""environments choose their container runtime (runc, or runsc = gVisor); organizations a default

Revision ID: 0014_runtime
Revises: 0013_idempotency
Create Date: 2026-11-30 04:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_runtime"
down_revision: str | None = "0013_idempotency"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("environments") as batch:
        batch.add_column(sa.Column("runtime", sa.String(length=16), nullable=True))
    with op.batch_alter_table("organizations") as batch:
        batch.add_column(sa.Column("default_runtime", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("organizations") as batch:
        batch.drop_column("default_runtime")
    with op.batch_alter_table("environments") as batch:
        batch.drop_column("runtime")
