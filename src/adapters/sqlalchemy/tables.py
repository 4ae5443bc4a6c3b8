"""The schema. Alembic migrations create it; a test checks that they agree with these tables."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)

from adapters.sqlalchemy.types import IdType, UtcDateTime

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

profiles = Table(
    "profiles",
    metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("role", String(16), nullable=False),
    Column("name", String(150), nullable=False),
    Column("mobile", String(32), nullable=False),
    Column("is_active_for_work", Boolean, nullable=False, server_default=text("false")),
    Column("latitude", Float),
    Column("longitude", Float),
    # The location as a unit vector on the sphere, what the spatial index reads (adapters/geo).
    Column("geo_x", Float),
    Column("geo_y", Float),
    Column("geo_z", Float),
    Column("location_updated_at", UtcDateTime),
    # The identity the app's tokens name (a Firebase uid, a Django user id, ...); NULL once erased.
    Column("external_id", String(128)),
    Column("deleted_at", UtcDateTime),  # erased: personal data gone, kept for its orders' history
    # What the user wants pushed and when quietly (domain.preferences); NULL: the defaults.
    Column("notification_preferences", JSON),
    CheckConstraint("role IN ('seeker', 'provider', 'operator')", name="role"),
)
Index("ix_profiles_external_id", profiles.c.external_id, unique=True)
# Who was erased lately: each instance asks every few seconds, to close those users' sockets.
_erased = profiles.c.deleted_at.isnot(None)
Index("ix_profiles_deleted_at", profiles.c.deleted_at, postgresql_where=_erased, sqlite_where=_erased)
# Active providers (the seed's monitoring query and the map of who is available).
Index("ix_profiles_active_providers", profiles.c.role, profiles.c.is_active_for_work, profiles.c.latitude)

device_tokens = Table(
    "device_tokens",
    metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("user_id", IdType, ForeignKey("profiles.id", ondelete="CASCADE"), nullable=False),
    Column("token", String(1024), nullable=False, unique=True),
    Column("kind", String(8), nullable=False),
    Column("platform", String(32), nullable=False),
    Column("registered_at", UtcDateTime, nullable=False),
    Column("invalidated_at", UtcDateTime),
    Column("invalid_reason", String(200)),
)
Index("ix_device_tokens_user_id", device_tokens.c.user_id)

work_orders = Table(
    "work_orders",
    metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("seeker_id", IdType, ForeignKey("profiles.id"), nullable=False),
    Column("provider_id", IdType, ForeignKey("profiles.id")),  # NULL: a broadcast nobody accepted yet
    Column("service_type", String(64), nullable=False),
    Column("message", Text, nullable=False),
    Column("distance", String(32), nullable=False),
    Column("latitude", Float, nullable=False),
    Column("longitude", Float, nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("responded_at", UtcDateTime),
    Column("closed_at", UtcDateTime),
    # Offered to several providers at once (rows in work_offers), the first to accept taking it.
    Column("broadcast", Boolean, nullable=False, server_default=text("false")),
    CheckConstraint(
        "status IN ('pending', 'accepted', 'rejected', 'cancelled', 'expired', 'completed')", name="status"
    ),
)
# A seeker's orders by time, a provider's orders (pending ones first of all), and the expiry sweep.
Index("ix_work_orders_seeker_id_id", work_orders.c.seeker_id, work_orders.c.id)
# A seeker's pending orders (the cap on unanswered orders counts them on every assignment).
Index("ix_work_orders_seeker_id_status", work_orders.c.seeker_id, work_orders.c.status)
Index("ix_work_orders_provider_id_status_id", work_orders.c.provider_id, work_orders.c.status, work_orders.c.id)
Index("ix_work_orders_status_expires_at", work_orders.c.status, work_orders.c.expires_at)

# A broadcast's offers: who was offered the job, and when each declined.
work_offers = Table(
    "work_offers",
    metadata,
    Column("work_id", IdType, ForeignKey("work_orders.id", ondelete="CASCADE"), primary_key=True),
    Column("provider_id", IdType, ForeignKey("profiles.id", ondelete="CASCADE"), primary_key=True),
    Column("declined_at", UtcDateTime),
)

notifications = Table(
    "notifications",
    metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("recipient_id", IdType, ForeignKey("profiles.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("work_id", IdType, ForeignKey("work_orders.id", ondelete="CASCADE"), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("push_state", String(16), nullable=False),
    Column("push_message_id", String(255)),
    Column("push_error", String(500)),
    Column("socket_state", String(16), nullable=False),
    Column("socket_error", String(500)),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", UtcDateTime),
    Column("last_attempt_at", UtcDateTime),
    Column("delivered_at", UtcDateTime),
    Column("opened_at", UtcDateTime),
    # Created in the recipient's quiet hours: the push goes silent (no sound, no alert).
    Column("push_silent", Boolean, nullable=False, server_default=text("false")),
)
# Due notifications for the dispatcher, a user's history, and a user's unacknowledged ones (replay).
Index(
    "ix_notifications_next_attempt_at",
    notifications.c.next_attempt_at,
    postgresql_where=notifications.c.next_attempt_at.is_not(None),
    sqlite_where=notifications.c.next_attempt_at.is_not(None),
)
Index("ix_notifications_recipient_id_id", notifications.c.recipient_id, notifications.c.id)
Index(
    "ix_notifications_undelivered",
    notifications.c.recipient_id,
    notifications.c.created_at,
    postgresql_where=notifications.c.delivered_at.is_(None),
    sqlite_where=notifications.c.delivered_at.is_(None),
)
Index("ix_notifications_work_id", notifications.c.work_id)

# The audit trail: one row per attempt per channel (and per device for push), swept after AUDIT_RETENTION_DAYS.
delivery_attempts = Table(
    "delivery_attempts",
    metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("notification_id", IdType, ForeignKey("notifications.id", ondelete="CASCADE"), nullable=False),
    Column("channel", String(8), nullable=False),
    Column("device_id", IdType),  # no foreign key: the trail outlives a forgotten device
    Column("at", UtcDateTime, nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("detail", String(500)),
    Column("duration_ms", Integer, nullable=False),
    Column("instance", String(64), nullable=False),
)
Index("ix_delivery_attempts_notification_id", delivery_attempts.c.notification_id)
Index("ix_delivery_attempts_at", delivery_attempts.c.at)

# Idempotency keys: the first answer to a request, kept a day, so a retried request does not act twice.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("user_id", IdType, ForeignKey("profiles.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("status_code", Integer),
    Column("body", Text),
    Column("final", Boolean, nullable=False, server_default=text("false")),
)
Index("ix_idempotency_keys_created_at", idempotency_keys.c.created_at)
