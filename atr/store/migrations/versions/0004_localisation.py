"""Where the evidence is: the localisation of a REVIEW or INSPECT decision.

`localisation` holds the compact form the scan reply carries (serving's `localisation`
field): boxes per threat class with scores, in the image's pixels, and the peak of the
heatmap. CLEAR decisions and fail-safe rows have none (null).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("predictions", sa.Column("localisation", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("predictions") as batch:
        batch.drop_column("localisation")
