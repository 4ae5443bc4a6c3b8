"""The ops console's overviews over SQLAlchemy Core (read-only, off the delivery hot path)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.sqlalchemy.repositories import DELIVERY_STATUS, row_to_device, row_to_order
from adapters.sqlalchemy.tables import device_tokens, notifications, work_orders
from application.ports import MinuteActivity, OperatorQueries
from domain.devices import DeviceToken
from domain.work_orders import WorkOrder


class SqlAlchemyOperatorQueries(OperatorQueries):
    def __init__(self, connection: AsyncConnection) -> None:
        self._c = connection

    async def orders_by_status(self) -> dict[str, int]:
        rows = await self._c.execute(select(work_orders.c.status, func.count()).group_by(work_orders.c.status))
        return {status: count for status, count in rows.all()}

    async def recent_orders(self, limit: int, party_id: int | None = None) -> list[WorkOrder]:
        query = select(work_orders).order_by(work_orders.c.id.desc()).limit(limit)
        if party_id is not None:
            query = query.where(or_(work_orders.c.seeker_id == party_id, work_orders.c.provider_id == party_id))
        return [row_to_order(row) for row in await self._c.execute(query)]

    async def devices_of(self, user_id: int) -> list[DeviceToken]:
        rows = await self._c.execute(
            select(device_tokens).where(device_tokens.c.user_id == user_id).order_by(device_tokens.c.id.desc())
        )
        return [row_to_device(row) for row in rows]

    async def activity_per_minute(self, since: datetime) -> list[MinuteActivity]:
        if self._c.dialect.name == "postgresql":
            minute = func.date_trunc("minute", notifications.c.created_at)
        else:  # SQLite stores UTC text: its first 16 characters are the minute
            minute = func.substr(notifications.c.created_at, 1, 16)
        status = DELIVERY_STATUS
        rows = await self._c.execute(
            select(
                minute.label("minute"),
                func.count(),
                func.count(notifications.c.delivered_at),
                func.sum((status == "failed").cast(type_=notifications.c.attempts.type)),
            )
            .where(notifications.c.created_at >= since)
            .group_by(minute)
            .order_by(minute)
        )
        return [
            MinuteActivity(_as_minute(at), created, delivered, int(failed or 0))
            for at, created, delivered, failed in rows.all()
        ]


def _as_minute(value: datetime | str) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace(" ", "T"))
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
