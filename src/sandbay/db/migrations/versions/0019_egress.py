"""egress by name: an organization's secrets (encrypted, write-only) and, per
environment, its domain allow and deny lists and the secrets it is given by name

Revision ID: 0019_egress
Revises: 0018_web_sessions
Create Date: 2026-11-30 15:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0019_egress"
down_revision: str | None = "0018_web_sessions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# JSON on SQLite, JSONB on PostgreSQL (as sandbay.db.base.JSONType at this revision).
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "org_secrets",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("org_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("description", sa.String(length=1024), nullable=True),
        sa.Column("ciphertext", sa.Text(), nullable=False),
        sa.Column("hosts", JSON, nullable=False, server_default="[]"),
        sa.Column("placeholder", sa.String(length=64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name=op.f("fk_org_secrets_org_id_organizations")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_org_secrets")),
        sa.UniqueConstraint("placeholder", name=op.f("uq_org_secrets_placeholder")),
    )
    with op.batch_alter_table("org_secrets", schema=None) as batch_op:
        batch_op.create_index("uq_org_secrets_org_name", ["org_id", "name"], unique=True)
    with op.batch_alter_table("environments", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("network_domain_allow_list", JSON, nullable=False, server_default="[]")
        )
        batch_op.add_column(
            sa.Column("network_domain_deny_list", JSON, nullable=False, server_default="[]")
        )
        batch_op.add_column(sa.Column("secrets", JSON, nullable=False, server_default="{}"))


def downgrade() -> None:
    with op.batch_alter_table("environments", schema=None) as batch_op:
        batch_op.drop_column("secrets")
        batch_op.drop_column("network_domain_deny_list")
        batch_op.drop_column("network_domain_allow_list")
    with op.batch_alter_table("org_secrets", schema=None) as batch_op:
        batch_op.drop_index("uq_org_secrets_org_name")
    op.drop_table("org_secrets")
