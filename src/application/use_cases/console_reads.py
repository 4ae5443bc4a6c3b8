"""What the ops console shows: an overview of the last hour, orders found by id or user, a user's record."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from application.ports import Clock, DeliveryStats, MinuteActivity, UnitOfWorkFactory
from domain.devices import DeviceToken
from domain.errors import ProfileNotFound
from domain.notifications import Notification
from domain.profiles import Profile
from domain.work_orders import WorkOrder

OVERVIEW_WINDOW = timedelta(hours=1)
TOP_ERRORS = 10


@dataclass(frozen=True)
class Overview:
    orders_by_status: dict[str, int]
    last_hour: DeliveryStats
    per_minute: list[MinuteActivity]


@dataclass(frozen=True)
class UserRecord:
    profile: Profile
    devices: list[DeviceToken]
    notifications: list[Notification]
    orders: list[WorkOrder]


class GetOverview:
    def __init__(self, uow_factory: UnitOfWorkFactory, clock: Clock) -> None:
        self._uow_factory = uow_factory
        self._clock = clock

    async def execute(self) -> Overview:
        since = self._clock.now() - OVERVIEW_WINDOW
        async with self._uow_factory() as uow:
            return Overview(
                await uow.operator.orders_by_status(),
                await uow.notifications.delivery_stats(since, TOP_ERRORS),
                await uow.operator.activity_per_minute(since),
            )


class FindOrders:
    def __init__(self, uow_factory: UnitOfWorkFactory) -> None:
        self._uow_factory = uow_factory

    async def execute(
        self, order_id: int | None = None, user_id: int | None = None, limit: int = 50
    ) -> list[WorkOrder]:
        """One order by id, a user's orders, or the most recent ones; newest first."""
        async with self._uow_factory() as uow:
            if order_id is not None:
                order = await uow.work_orders.get(order_id)
                return [order] if order else []
            return await uow.operator.recent_orders(limit, user_id)


class GetUserRecord:
    def __init__(self, uow_factory: UnitOfWorkFactory) -> None:
        self._uow_factory = uow_factory

    async def execute(self, user_id: int, limit: int = 30) -> UserRecord:
        async with self._uow_factory() as uow:
            profile = await uow.profiles.get(user_id)
            if profile is None:
                raise ProfileNotFound(f"there is no profile {user_id}")
            return UserRecord(
                profile,
                await uow.operator.devices_of(user_id),
                await uow.notifications.list_for_user(user_id, limit, None),
                await uow.operator.recent_orders(limit, user_id),
            )
