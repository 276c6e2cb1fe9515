"""sandbox settings the Daytona SDK sets: a TTL (`auto_destroy_at`) and signed
preview URLs (`preview_tokens.signed`)

Revision ID: 0009_daytona_settings
Revises: 0008_agents
Create Date: 2026-11-30 01:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_daytona_settings"
down_revision: str | None = "0008_agents"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("environments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("auto_destroy_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_environments_auto_destroy_at"), ["auto_destroy_at"], unique=False
        )
    with op.batch_alter_table("preview_tokens", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("signed", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("preview_tokens", schema=None) as batch_op:
        batch_op.drop_column("signed")
    with op.batch_alter_table("environments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_environments_auto_destroy_at"))
        batch_op.drop_column("auto_destroy_at")
