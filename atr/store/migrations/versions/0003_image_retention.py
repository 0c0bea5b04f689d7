"""Retention of frontline images: when a row's image was pruned (atr store prune).

The row and its image_ref stay (the reference is the audit trail of what was scanned);
`image_pruned_at` tells every reader that the bytes are gone on purpose.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("predictions", sa.Column("image_pruned_at", sa.DateTime(timezone=True),
                                           nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("predictions") as batch:
        batch.drop_column("image_pruned_at")
