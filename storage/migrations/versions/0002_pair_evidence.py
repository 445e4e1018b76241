"""pairs.evidence: the evidence trail of every pair decision

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05 10:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the JSON evidence column (NULL for pairs decided before it existed)."""
    with op.batch_alter_table("pairs") as batch:
        batch.add_column(sa.Column("evidence", sa.JSON(), nullable=True))


def downgrade() -> None:
    """Drop the evidence column."""
    with op.batch_alter_table("pairs") as batch:
        batch.drop_column("evidence")
