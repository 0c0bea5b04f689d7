"""Analysts' boxes and the labelling tool's id of each verdict.

`feedback.boxes`: the regions an analyst drew or corrected, [{"label", "xyxy"}] in the
stored image's pixels (null: none given). `feedback.source_ref`: the verdict's id in the
tool it came from (`labelstudio:<project>:<annotation>`), unique, so an import that runs
twice adds each annotation once (null for verdicts posted to /v1/feedback).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("feedback", sa.Column("boxes", sa.JSON(), nullable=True))
    op.add_column("feedback", sa.Column("source_ref", sa.String(200), nullable=True))
    op.create_index("uq_feedback_source_ref", "feedback", ["source_ref"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_feedback_source_ref", table_name="feedback")
    with op.batch_alter_table("feedback") as batch:
        batch.drop_column("source_ref")
        batch.drop_column("boxes")
