"""idempotency keys of creates (to be filled in)

Revision ID: 0013_idempotency
Revises: 0012_env_unset
Create Date: 2026-11-30 02:10:00
"""

from collections.abc import Sequence

revision: str = "0013_idempotency"
down_revision: str | None = "0012_env_unset"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
