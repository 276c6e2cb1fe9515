"""sandbox settings the Daytona SDK sets (to be filled in)

Revision ID: 0009_daytona_settings
Revises: 0008_agents
Create Date: 2026-11-30 01:00:00
"""

from collections.abc import Sequence

revision: str = "0009_daytona_settings"
down_revision: str | None = "0008_agents"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
