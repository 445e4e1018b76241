"""Fingerprints leave the catalog for the on-disk index; sweep checks and swept recordings

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06 07:00:00

The blobs are kept, renamed ``legacy_fingerprints``, because the migration cannot know where
the index lives: the next ``vocalmine mine`` moves them into the index (no recording is
fingerprinted twice) and deletes them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Rename the blob table and add the sweep's two tables."""
    op.rename_table("fingerprints", "legacy_fingerprints")
    op.create_table(
        "fingerprint_checks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("index_key", sa.String(length=32), nullable=False),
        sa.Column("content_a", sa.String(length=64), nullable=False),
        sa.Column("content_b", sa.String(length=64), nullable=False),
        sa.Column("a_in_b", sa.JSON(), nullable=False),
        sa.Column("b_in_a", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("index_key", "content_a", "content_b"),
    )
    op.create_index("ix_fingerprint_checks_content_a", "fingerprint_checks", ["content_a"])
    op.create_index("ix_fingerprint_checks_content_b", "fingerprint_checks", ["content_b"])
    op.create_table(
        "swept_contents",
        sa.Column("index_key", sa.String(length=32), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("swept_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("index_key", "content_hash"),
    )


def downgrade() -> None:
    """Drop the sweep's tables and give the blob table its old name back."""
    op.drop_table("swept_contents")
    op.drop_index("ix_fingerprint_checks_content_b", "fingerprint_checks")
    op.drop_index("ix_fingerprint_checks_content_a", "fingerprint_checks")
    op.drop_table("fingerprint_checks")
    op.rename_table("legacy_fingerprints", "fingerprints")
