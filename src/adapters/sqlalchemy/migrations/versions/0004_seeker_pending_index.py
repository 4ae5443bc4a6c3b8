"""An index for counting a seeker's pending orders (the cap on unanswered orders).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_work_orders_seeker_id_status", "work_orders", ["seeker_id", "status"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_work_orders_seeker_id_status", table_name="work_orders")
