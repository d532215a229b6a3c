"""The business-day calendar.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op


revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "calendar_day_overrides",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("changed_by", sa.Text(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("kind IN ('working', 'day_off')", name=op.f("ck_calendar_day_overrides_kind")),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_calendar_day_overrides")),
    )


def downgrade() -> None:
    op.drop_table("calendar_day_overrides")
