"""External ids (the identity an existing app's tokens name) and erased profiles.

Every existing profile gets its own id as external id, so tokens whose subject is the numeric id keep
working. Works on a database with data: the column is added empty, filled, then indexed.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("profiles") as batch:
        batch.add_column(sa.Column("external_id", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE profiles SET external_id = CAST(id AS VARCHAR(20))")
    op.create_index("ix_profiles_external_id", "profiles", ["external_id"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_profiles_external_id", table_name="profiles")
    with op.batch_alter_table("profiles") as batch:
        batch.drop_column("deleted_at")
        batch.drop_column("external_id")
