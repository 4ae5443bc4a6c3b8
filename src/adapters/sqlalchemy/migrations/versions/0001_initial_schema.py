"""Initial schema: profiles, device tokens, work orders, notifications.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "profiles",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=150), nullable=False),
        sa.Column("mobile", sa.String(length=32), nullable=False),
        sa.Column("is_active_for_work", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("latitude", sa.Float(), nullable=True),
        sa.Column("longitude", sa.Float(), nullable=True),
        sa.Column("location_updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("role IN ('seeker', 'provider', 'operator')", name=op.f("ck_profiles_role")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_profiles")),
    )
    op.create_index(
        "ix_profiles_active_providers", "profiles", ["role", "is_active_for_work", "latitude"], unique=False
    )

    op.create_table(
        "device_tokens",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("token", sa.String(length=1024), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("platform", sa.String(length=32), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("invalidated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("invalid_reason", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["profiles.id"], name=op.f("fk_device_tokens_user_id_profiles"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_tokens")),
        sa.UniqueConstraint("token", name=op.f("uq_device_tokens_token")),
    )
    op.create_index("ix_device_tokens_user_id", "device_tokens", ["user_id"], unique=False)

    op.create_table(
        "work_orders",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("seeker_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("provider_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("service_type", sa.String(length=64), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("distance", sa.String(length=32), nullable=False),
        sa.Column("latitude", sa.Float(), nullable=False),
        sa.Column("longitude", sa.Float(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("responded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'accepted', 'rejected', 'cancelled', 'expired', 'completed')",
            name=op.f("ck_work_orders_status"),
        ),
        sa.ForeignKeyConstraint(["provider_id"], ["profiles.id"], name=op.f("fk_work_orders_provider_id_profiles")),
        sa.ForeignKeyConstraint(["seeker_id"], ["profiles.id"], name=op.f("fk_work_orders_seeker_id_profiles")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_work_orders")),
    )
    op.create_index(
        "ix_work_orders_provider_id_status_id", "work_orders", ["provider_id", "status", "id"], unique=False
    )
    op.create_index("ix_work_orders_seeker_id_id", "work_orders", ["seeker_id", "id"], unique=False)
    op.create_index("ix_work_orders_status_expires_at", "work_orders", ["status", "expires_at"], unique=False)

    op.create_table(
        "notifications",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("recipient_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("work_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("push_state", sa.String(length=16), nullable=False),
        sa.Column("push_message_id", sa.String(length=255), nullable=True),
        sa.Column("push_error", sa.String(length=500), nullable=True),
        sa.Column("socket_state", sa.String(length=16), nullable=False),
        sa.Column("socket_error", sa.String(length=500), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["recipient_id"], ["profiles.id"], name=op.f("fk_notifications_recipient_id_profiles"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["work_id"], ["work_orders.id"], name=op.f("fk_notifications_work_id_work_orders"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
    )
    op.create_index(
        "ix_notifications_next_attempt_at",
        "notifications",
        ["next_attempt_at"],
        unique=False,
        postgresql_where=sa.text("next_attempt_at IS NOT NULL"),
        sqlite_where=sa.text("next_attempt_at IS NOT NULL"),
    )
    op.create_index("ix_notifications_recipient_id_id", "notifications", ["recipient_id", "id"], unique=False)
    op.create_index(
        "ix_notifications_undelivered",
        "notifications",
        ["recipient_id", "created_at"],
        unique=False,
        postgresql_where=sa.text("delivered_at IS NULL"),
        sqlite_where=sa.text("delivered_at IS NULL"),
    )
    op.create_index("ix_notifications_work_id", "notifications", ["work_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_notifications_work_id", table_name="notifications")
    op.drop_index("ix_notifications_undelivered", table_name="notifications")
    op.drop_index("ix_notifications_recipient_id_id", table_name="notifications")
    op.drop_index("ix_notifications_next_attempt_at", table_name="notifications")

    op.drop_table("notifications")
    op.drop_index("ix_work_orders_status_expires_at", table_name="work_orders")
    op.drop_index("ix_work_orders_seeker_id_id", table_name="work_orders")
    op.drop_index("ix_work_orders_provider_id_status_id", table_name="work_orders")

    op.drop_table("work_orders")
    op.drop_index("ix_device_tokens_user_id", table_name="device_tokens")

    op.drop_table("device_tokens")
    op.drop_index("ix_profiles_active_providers", table_name="profiles")

    op.drop_table("profiles")
