"""Notification preferences (per-kind pushes, quiet hours) and silent pushes.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMNs on both engines (SQLite copies no table for these): the profiles triggers stay.
    with op.batch_alter_table("profiles") as batch:
        batch.add_column(sa.Column("notification_preferences", sa.JSON(), nullable=True))
    with op.batch_alter_table("notifications") as batch:
        batch.add_column(sa.Column("push_silent", sa.Boolean(), server_default=sa.text("false"), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("notifications") as batch:
        batch.drop_column("push_silent")
    with op.batch_alter_table("profiles") as batch:
        batch.drop_column("notification_preferences")
