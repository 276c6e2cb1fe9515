"""work items on self-hosted environments, and who polls for them

Revision ID: 0003_work_items
Revises: 0001
Create Date: 2026-11-22 09:00:00.000000
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003_work_items"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# JSON on SQLite, JSONB on PostgreSQL (as sandbay.db.base.JSONType at this revision).
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _ts(name: str, *, nullable: bool = True) -> sa.Column[Any]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "work_items",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("org_id", sa.String(length=64), nullable=False),
        sa.Column("environment_id", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("data", JSON, nullable=False),
        sa.Column("metadata", JSON, nullable=False),
        sa.Column("on_lease_expired", sa.String(length=16), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("worker_id", sa.String(length=255), nullable=True),
        _ts("delivered_at"),
        sa.Column("deliveries", sa.Integer(), nullable=False),
        _ts("lease_expires_at"),
        sa.Column("lease_ttl_seconds", sa.Integer(), nullable=True),
        sa.Column("stop_reason", sa.Text(), nullable=True),
        _ts("created_at", nullable=False),
        _ts("updated_at", nullable=False),
        _ts("acknowledged_at"),
        _ts("started_at"),
        _ts("latest_heartbeat_at"),
        _ts("stop_requested_at"),
        _ts("stopped_at"),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["environment_id"],
            ["environments.id"],
            name=op.f("fk_work_items_environment_id_environments"),
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name=op.f("fk_work_items_org_id_organizations")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_work_items")),
    )
    with op.batch_alter_table("work_items", schema=None) as batch_op:
        batch_op.create_index(
            "ix_work_items_environment_id_state_id",
            ["environment_id", "state", "id"],
            unique=False,
        )
        batch_op.create_index(
            "ix_work_items_state_lease_expires_at", ["state", "lease_expires_at"], unique=False
        )

    op.create_table(
        "work_pollers",
        sa.Column("environment_id", sa.String(length=64), nullable=False),
        sa.Column("worker_id", sa.String(length=255), nullable=False),
        _ts("last_poll_at", nullable=False),
        sa.PrimaryKeyConstraint("environment_id", "worker_id", name=op.f("pk_work_pollers")),
    )


def downgrade() -> None:
    op.drop_table("work_pollers")
    with op.batch_alter_table("work_items", schema=None) as batch_op:
        batch_op.drop_index("ix_work_items_state_lease_expires_at")
        batch_op.drop_index("ix_work_items_environment_id_state_id")
    op.drop_table("work_items")
