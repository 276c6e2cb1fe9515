"""snapshots of environments (root layer and /workspace) and forks seeded from them

Revision ID: 0017_environment_snapshots
Revises: 0016_pause_wake
Create Date: 2026-11-30 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0017_environment_snapshots"
down_revision: str | None = "0016_pause_wake"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# JSON on SQLite, JSONB on PostgreSQL (as sandbay.db.base.JSONType at this revision).
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)
LIVE = sa.text("deleted_at IS NULL")


def upgrade() -> None:
    op.create_table(
        "environment_snapshots",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("org_id", sa.String(length=64), nullable=False),
        sa.Column("environment_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("image", sa.String(length=512), nullable=False),
        sa.Column("settings", JSON, nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("frozen_ms", sa.Float(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("lease_token", sa.String(length=64), nullable=True),
        sa.Column("lease_expires_at", TS, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("ready_at", TS, nullable=True),
        sa.Column("deleted_at", TS, nullable=True),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_environment_snapshots_org_id_organizations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_environment_snapshots")),
    )
    with op.batch_alter_table("environment_snapshots", schema=None) as batch_op:
        batch_op.create_index(
            "uq_environment_snapshots_org_name_live",
            ["org_id", "name"],
            unique=True,
            sqlite_where=LIVE,
            postgresql_where=LIVE,
        )
        batch_op.create_index("ix_environment_snapshots_state", ["state"], unique=False)
        batch_op.create_index(op.f("ix_environment_snapshots_org_id"), ["org_id"], unique=False)
        batch_op.create_index(
            op.f("ix_environment_snapshots_environment_id"), ["environment_id"], unique=False
        )
    with op.batch_alter_table("environments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("snapshot_id", sa.String(length=64), nullable=True))
        batch_op.create_index(op.f("ix_environments_snapshot_id"), ["snapshot_id"], unique=False)
    with op.batch_alter_table("organizations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("max_snapshots", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("organizations", schema=None) as batch_op:
        batch_op.drop_column("max_snapshots")
    with op.batch_alter_table("environments", schema=None) as batch_op:
        batch_op.drop_index(op.f("ix_environments_snapshot_id"))
        batch_op.drop_column("snapshot_id")
    with op.batch_alter_table("environment_snapshots", schema=None) as batch_op:
        batch_op.drop_index(op.f("ix_environment_snapshots_environment_id"))
        batch_op.drop_index(op.f("ix_environment_snapshots_org_id"))
        batch_op.drop_index("ix_environment_snapshots_state")
        batch_op.drop_index("uq_environment_snapshots_org_name_live")
    op.drop_table("environment_snapshots")
