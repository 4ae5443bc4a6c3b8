"""The per-attempt audit trail.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    id_type = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "delivery_attempts",
        sa.Column("id", id_type, autoincrement=True, nullable=False),
        sa.Column("notification_id", id_type, nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("device_id", id_type, nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.String(length=500), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("instance", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["notification_id"],
            ["notifications.id"],
            name=op.f("fk_delivery_attempts_notification_id_notifications"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery_attempts")),
    )
    op.create_index("ix_delivery_attempts_notification_id", "delivery_attempts", ["notification_id"], unique=False)
    op.create_index("ix_delivery_attempts_at", "delivery_attempts", ["at"], unique=False)


def downgrade() -> None:
    op.drop_table("delivery_attempts")
