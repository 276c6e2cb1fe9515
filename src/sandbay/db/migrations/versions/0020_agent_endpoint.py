"""many hosts: where a running environment's agent answers from other hosts (the
node's address and the port its engine published), for replicas on another host, and
since when its runner (a Swarm node) has been unreachable

Revision ID: 0020_agent_endpoint
Revises: 0019_egress
Create Date: 2026-11-30 18:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020_agent_endpoint"
down_revision: str | None = "0019_egress"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("environments") as batch:
        batch.add_column(sa.Column("agent_endpoint", sa.String(length=255), nullable=True))
        batch.add_column(
            sa.Column("runner_unreachable_since", sa.DateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("environments") as batch:
        batch.drop_column("runner_unreachable_since")
        batch.drop_column("agent_endpoint")
