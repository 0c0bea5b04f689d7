"""One decision per scanner and item: a resent item_id replays the stored decision.

`resend_seq` is 0 for the decision of record; the duplicates that an ATR before this
revision stored for a resent item keep their rows (they were acknowledged) and get 1, 2, ...
in the order they were stored. The unique index on (scanner_id, item_id, resend_seq) is the
conflict target of the line's INSERT ... ON CONFLICT DO NOTHING (serving/recorder.py).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

INDEX = "uq_predictions_scanner_item"


def upgrade() -> None:
    op.add_column("predictions", sa.Column("resend_seq", sa.Integer(), nullable=False,
                                           server_default="0"))
    # Earlier rows of the same scanner and item, counted: 0 for the first, then 1, 2, ...
    op.execute(
        "UPDATE predictions SET resend_seq = (SELECT COUNT(*) FROM predictions AS p2 "
        "WHERE p2.scanner_id = predictions.scanner_id AND p2.item_id = predictions.item_id "
        "AND p2.id < predictions.id) "
        "WHERE EXISTS (SELECT 1 FROM predictions AS p3 WHERE p3.scanner_id = "
        "predictions.scanner_id AND p3.item_id = predictions.item_id AND p3.id < predictions.id)")
    op.create_index(INDEX, "predictions", ["scanner_id", "item_id", "resend_seq"], unique=True)


def downgrade() -> None:
    op.drop_index(INDEX, table_name="predictions")
    with op.batch_alter_table("predictions") as batch:
        batch.drop_column("resend_seq")
