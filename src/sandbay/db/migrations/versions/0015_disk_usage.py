"""metrics samples carry the environment's disk use and size (disk_gb enforced)

Revision ID: 0015_disk_usage
Revises: 0014_runtime
Create Date: 2026-11-30 08:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015_disk_usage"
down_revision: str | None = "0014_runtime"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("environment_metrics") as batch:
        batch.add_column(sa.Column("disk_used_bytes", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("disk_limit_bytes", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("environment_metrics") as batch:
        batch.drop_column("disk_limit_bytes")
        batch.drop_column("disk_used_bytes")
