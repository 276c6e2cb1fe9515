"""environments can be paused by an idle tier before auto-stop, and woken by a request

Revision ID: 0016_pause_wake
Revises: 0015_disk_usage
Create Date: 2026-11-30 11:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016_pause_wake"
down_revision: str | None = "0015_disk_usage"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("environments") as batch:
        batch.add_column(
            sa.Column("auto_pause_interval", sa.Float(), server_default="0", nullable=False)
        )
        batch.add_column(
            sa.Column("wake_on_request", sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("environments") as batch:
        batch.drop_column("wake_on_request")
        batch.drop_column("auto_pause_interval")
