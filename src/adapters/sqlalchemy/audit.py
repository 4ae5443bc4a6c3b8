"""The per-attempt audit trail over SQLAlchemy Core."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import bindparam, func, insert, select
from sqlalchemy.dialects.postgresql import ARRAY

from adapters.sqlalchemy.batches import delete_oldest
from adapters.sqlalchemy.driver import execute_many
from adapters.sqlalchemy.tables import delivery_attempts
from adapters.sqlalchemy.types import UtcDateTime
from application.ports import DeliveryAttemptRepository
from domain.audit import DETAIL_MAX, AttemptOutcome, DeliveryAttempt

_COLUMNS = ("notification_id", "channel", "device_id", "at", "outcome", "detail", "duration_ms", "instance")
INSERT_ATTEMPT = insert(delivery_attempts).values(
    {name: bindparam(f"a_{name}", type_=UtcDateTime if name == "at" else None) for name in _COLUMNS}
)
# PostgreSQL: the whole batch in one INSERT ... SELECT of the rows given as arrays (driver.execute_many's at_once).
INSERT_ATTEMPTS_AT_ONCE = insert(delivery_attempts).from_select(
    _COLUMNS,
    select(
        *(
            func.unnest(bindparam(f"a_{name}", type_=ARRAY(delivery_attempts.c[name].type))).label(name)
            for name in _COLUMNS
        )
    ),
)


class SqlAlchemyDeliveryAttemptRepository(DeliveryAttemptRepository):
    def __init__(self, connection) -> None:
        self._c = connection

    async def add_many(self, attempts: Sequence[DeliveryAttempt]) -> None:
        # In the outcome recorder's transaction: one statement on PostgreSQL, one executemany on SQLite.
        await execute_many(
            self._c,
            INSERT_ATTEMPT,
            [
                {
                    "a_notification_id": a.notification_id,
                    "a_channel": a.channel,
                    "a_device_id": a.device_id,
                    "a_at": a.at,
                    "a_outcome": a.outcome.value,
                    "a_detail": a.detail[:DETAIL_MAX] if a.detail else None,
                    "a_duration_ms": a.duration_ms,
                    "a_instance": a.instance[:64],
                }
                for a in attempts
            ],
            at_once=INSERT_ATTEMPTS_AT_ONCE,
        )

    async def for_notifications(self, notification_ids: Collection[int]) -> list[DeliveryAttempt]:
        if not notification_ids:
            return []
        rows = await self._c.execute(
            select(delivery_attempts)
            .where(delivery_attempts.c.notification_id.in_(list(notification_ids)))
            .order_by(delivery_attempts.c.at, delivery_attempts.c.id)
        )
        return [
            DeliveryAttempt(
                id=row.id,
                notification_id=row.notification_id,
                channel=row.channel,
                device_id=row.device_id,
                at=row.at,
                outcome=AttemptOutcome(row.outcome),
                detail=row.detail,
                duration_ms=row.duration_ms,
                instance=row.instance,
            )
            for row in rows
        ]

    async def delete_before(self, cutoff: datetime, limit: int) -> int:
        # Oldest first by the index on ``at``.
        return await delete_oldest(
            self._c, delivery_attempts, delivery_attempts.c.at < cutoff, delivery_attempts.c.at, limit
        )
