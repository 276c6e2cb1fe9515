"""warm pool

Revision ID: 0005
Revises: 0002
Create Date: 2026-11-22 06:19:58.708889
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0003_work_items"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("environments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pool_key", sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f("ix_environments_pool_key"), ["pool_key"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("environments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_environments_pool_key"))
        batch_op.drop_column("pool_key")
