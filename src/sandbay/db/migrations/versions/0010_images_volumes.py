"""built images (snapshots) and shared volumes (to be filled in)

Revision ID: 0010_images_volumes
Revises: 0009_daytona_settings
Create Date: 2026-11-30 01:00:00
"""

from collections.abc import Sequence

revision: str = "0010_images_volumes"
down_revision: str | None = "0009_daytona_settings"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
