"""signing keys of signed file URLs, and warm pools made through the API

Revision ID: 0011_signing_keys
Revises: 0010_images_volumes
Create Date: 2026-11-30 01:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_signing_keys"
down_revision: str | None = "0010_images_volumes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "signing_keys",
        sa.Column("environment_id", sa.String(length=64), nullable=False),
        sa.Column("org_id", sa.String(length=64), nullable=False),
        sa.Column("key_ciphertext", sa.Text(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("rotated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("environment_id", name=op.f("pk_signing_keys")),
    )
    op.create_table(
        "warm_pools",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("org_id", sa.String(length=64), nullable=False),
        sa.Column("snapshot", sa.String(length=512), nullable=False),
        sa.Column("image", sa.String(length=512), nullable=False),
        sa.Column("cpu", sa.Float(), nullable=False),
        sa.Column("memory_mb", sa.Integer(), nullable=False),
        sa.Column("disk_gb", sa.Integer(), nullable=False),
        sa.Column("pids_limit", sa.Integer(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name=op.f("fk_warm_pools_org_id_organizations")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_warm_pools")),
    )
    with op.batch_alter_table("warm_pools", schema=None) as batch_op:
        batch_op.create_index("ix_warm_pools_org_id", ["org_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("warm_pools", schema=None) as batch_op:
        batch_op.drop_index("ix_warm_pools_org_id")
    op.drop_table("warm_pools")
    op.drop_table("signing_keys")
