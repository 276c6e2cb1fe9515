"""metrics: latest sample on environments, history table

Revision ID: 0004_metrics
Revises: 0001
Create Date: 2026-11-22 06:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004_metrics"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# JSON on SQLite, JSONB on PostgreSQL (as sandbay.db.base.JSONType at this revision).
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BIGINT_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("environments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("metrics", JSON, nullable=True))

    op.create_table(
        "environment_metrics",
        sa.Column("id", BIGINT_PK, autoincrement=True, nullable=False),
        sa.Column("environment_id", sa.String(length=64), nullable=False),
        sa.Column("org_id", sa.String(length=64), nullable=False),
        sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("online", sa.Boolean(), nullable=False),
        sa.Column("uptime_seconds", sa.Integer(), nullable=False),
        sa.Column("cpu_percent", sa.Float(), nullable=False),
        sa.Column("memory_bytes", sa.BigInteger(), nullable=False),
        sa.Column("memory_limit_bytes", sa.BigInteger(), nullable=False),
        sa.Column("network_rx_bytes", sa.BigInteger(), nullable=False),
        sa.Column("network_tx_bytes", sa.BigInteger(), nullable=False),
        sa.Column("block_read_bytes", sa.BigInteger(), nullable=False),
        sa.Column("block_write_bytes", sa.BigInteger(), nullable=False),
        sa.Column("pids", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_environment_metrics")),
    )
    with op.batch_alter_table("environment_metrics", schema=None) as batch_op:
        batch_op.create_index(
            "ix_environment_metrics_env_time", ["environment_id", "timestamp"], unique=False
        )
        batch_op.create_index("ix_environment_metrics_time", ["timestamp"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("environment_metrics", schema=None) as batch_op:
        batch_op.drop_index("ix_environment_metrics_time")
        batch_op.drop_index("ix_environment_metrics_env_time")
    op.drop_table("environment_metrics")
    with op.batch_alter_table("environments", schema=None) as batch_op:
        batch_op.drop_column("metrics")
