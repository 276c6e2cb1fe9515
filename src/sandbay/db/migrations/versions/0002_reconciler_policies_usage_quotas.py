"""reconciler policies usage quotas

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 06:01:40.536795
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "usage_records",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("org_id", sa.String(length=64), nullable=False),
        sa.Column("environment_id", sa.String(length=64), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("cpu", sa.Float(), nullable=False),
        sa.Column("memory_mb", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_records")),
    )
    with op.batch_alter_table("usage_records", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_usage_records_environment_id"), ["environment_id"], unique=False
        )
        batch_op.create_index("ix_usage_records_org_period", ["org_id", "period"], unique=False)

    with op.batch_alter_table("environments", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("max_lifetime", sa.Float(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("pre_stop", JSON, nullable=True))
        batch_op.add_column(
            sa.Column("restart_streak", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("running_seconds", sa.Float(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("state_changed_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True))

    with op.batch_alter_table("organizations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("max_running_environments", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("max_running_cpu", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("max_running_memory_mb", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("max_running_hours_per_month", sa.Float(), nullable=True))
        batch_op.add_column(
            sa.Column("quota_version", sa.Integer(), server_default="0", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("organizations", schema=None) as batch_op:
        batch_op.drop_column("quota_version")
        batch_op.drop_column("max_running_hours_per_month")
        batch_op.drop_column("max_running_memory_mb")
        batch_op.drop_column("max_running_cpu")
        batch_op.drop_column("max_running_environments")

    with op.batch_alter_table("environments", schema=None) as batch_op:
        batch_op.drop_column("archived_at")
        batch_op.drop_column("state_changed_at")
        batch_op.drop_column("running_seconds")
        batch_op.drop_column("restart_streak")
        batch_op.drop_column("pre_stop")
        batch_op.drop_column("max_lifetime")

    with op.batch_alter_table("usage_records", schema=None) as batch_op:
        batch_op.drop_index("ix_usage_records_org_period")
        batch_op.drop_index(batch_op.f("ix_usage_records_environment_id"))

    op.drop_table("usage_records")
