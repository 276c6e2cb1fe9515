"""agents: model providers (encrypted credentials), agent runs, OpenClaw instances

Revision ID: 0008_agents
Revises: 0004_metrics
Create Date: 2026-11-22 08:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008_agents"
down_revision: str | None = "0006_access"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# JSON on SQLite, JSONB on PostgreSQL (as sandbay.db.base.JSONType at this revision).
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "model_providers",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("org_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("base_url", sa.String(length=2048), nullable=True),
        sa.Column("models", JSON, nullable=False),
        sa.Column("default_model", sa.String(length=200), nullable=True),
        sa.Column("secret_ciphertext", sa.Text(), nullable=False),
        sa.Column("secret_hint", sa.String(length=32), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name=op.f("fk_model_providers_org_id_organizations")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_providers")),
    )
    with op.batch_alter_table("model_providers", schema=None) as batch_op:
        batch_op.create_index("uq_model_providers_org_name", ["org_id", "name"], unique=True)

    op.create_table(
        "agent_runs",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("org_id", sa.String(length=64), nullable=False),
        sa.Column("environment_id", sa.String(length=64), nullable=False),
        sa.Column("agent", sa.String(length=32), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=True),
        sa.Column("provider", sa.String(length=64), nullable=True),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("cwd", sa.String(length=4096), nullable=False),
        sa.Column("git_url", sa.String(length=2048), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("events", JSON, nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("ended_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_runs")),
    )
    with op.batch_alter_table("agent_runs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_agent_runs_environment_id_id", ["environment_id", "id"], unique=False
        )

    op.create_table(
        "agent_instances",
        sa.Column("environment_id", sa.String(length=64), nullable=False),
        sa.Column("org_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("model_provider", sa.String(length=64), nullable=False),
        sa.Column("provider_name", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=True),
        sa.Column("openclaw_version", sa.String(length=32), nullable=False),
        sa.Column("openclaw_config", JSON, nullable=True),
        sa.Column("region", sa.String(length=64), nullable=True),
        sa.Column("provisioned_at", TS, nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("deleted_at", TS, nullable=True),
        sa.ForeignKeyConstraint(
            ["environment_id"],
            ["environments.id"],
            name=op.f("fk_agent_instances_environment_id_environments"),
        ),
        sa.PrimaryKeyConstraint("environment_id", name=op.f("pk_agent_instances")),
    )
    with op.batch_alter_table("agent_instances", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_agent_instances_org_id"), ["org_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("agent_instances", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_agent_instances_org_id"))
    op.drop_table("agent_instances")
    with op.batch_alter_table("agent_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_agent_runs_environment_id_id")
    op.drop_table("agent_runs")
    with op.batch_alter_table("model_providers", schema=None) as batch_op:
        batch_op.drop_index("uq_model_providers_org_name")
    op.drop_table("model_providers")
