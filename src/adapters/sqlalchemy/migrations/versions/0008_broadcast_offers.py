"""Broadcast offers: an order offered to several providers, with no provider until one accepts.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        # SQLite changes a column's nullability by copying the table and dropping the old one; with foreign
        # keys enforced, that DROP would cascade to every notification. Alembic's connection leaves them off.
        assert bind.execute(sa.text("PRAGMA foreign_keys")).scalar() == 0, "foreign keys must be off to migrate"
    with op.batch_alter_table("work_orders") as batch:
        batch.alter_column(
            "provider_id", existing_type=sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        )
        batch.add_column(sa.Column("broadcast", sa.Boolean(), server_default=sa.text("false"), nullable=False))
    id_type = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "work_offers",
        sa.Column("work_id", id_type, nullable=False),
        sa.Column("provider_id", id_type, nullable=False),
        sa.Column("declined_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["work_id"], ["work_orders.id"], name=op.f("fk_work_offers_work_id_work_orders"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["provider_id"], ["profiles.id"], name=op.f("fk_work_offers_provider_id_profiles"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("work_id", "provider_id", name=op.f("pk_work_offers")),
    )


def downgrade() -> None:
    op.drop_table("work_offers")
    with op.batch_alter_table("work_orders") as batch:
        batch.drop_column("broadcast")
