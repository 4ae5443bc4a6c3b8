"""An index of erased profiles: each instance asks every few seconds who was erased lately.

Before, it asked which of the users it holds sockets for still exist: 10,000 sockets read 10,000 profiles
every 5 s. Partial: only the few erased rows are in it.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

ERASED = sa.text("deleted_at IS NOT NULL")


def upgrade() -> None:
    op.create_index("ix_profiles_deleted_at", "profiles", ["deleted_at"], postgresql_where=ERASED, sqlite_where=ERASED)


def downgrade() -> None:
    op.drop_index("ix_profiles_deleted_at", table_name="profiles")
