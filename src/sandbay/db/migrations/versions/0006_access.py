"""access: SSH credentials and preview tokens

Revision ID: 0006_access
Revises: 0004_metrics
Create Date: 2026-11-23 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_access"
down_revision: str | None = "0004_metrics"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ssh_credentials",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("org_id", sa.String(length=64), nullable=False),
        sa.Column("environment_id", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.String(length=64), nullable=False),
        sa.Column("key_fingerprint", sa.String(length=128), nullable=True),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ssh_credentials")),
        sa.UniqueConstraint("password_hash", name=op.f("uq_ssh_credentials_password_hash")),
    )
    with op.batch_alter_table("ssh_credentials", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ssh_credentials_environment_id"), ["environment_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_ssh_credentials_key_fingerprint"), ["key_fingerprint"], unique=False
        )

    op.create_table(
        "preview_tokens",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("org_id", sa.String(length=64), nullable=False),
        sa.Column("environment_id", sa.String(length=64), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("port", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_preview_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_preview_tokens_token_hash")),
    )
    with op.batch_alter_table("preview_tokens", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_preview_tokens_environment_id"), ["environment_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("preview_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_preview_tokens_environment_id"))
    op.drop_table("preview_tokens")
    with op.batch_alter_table("ssh_credentials", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ssh_credentials_key_fingerprint"))
        batch_op.drop_index(batch_op.f("ix_ssh_credentials_environment_id"))
    op.drop_table("ssh_credentials")
