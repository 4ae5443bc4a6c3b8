from __future__ import annotations

from application.delivery import NotificationDelivery
from application.policy import WorkPolicy
from application.ports import Clock, UnitOfWorkFactory
from application.use_cases._notify import save_notifications_for
from domain.work_orders import WorkStatus


class ExpireOverdueWork:
    """Close pending orders nobody answered in time and tell both parties. Returns how many expired."""

    def __init__(
        self, uow_factory: UnitOfWorkFactory, delivery: NotificationDelivery, clock: Clock, policy: WorkPolicy
    ) -> None:
        self._uow_factory = uow_factory
        self._delivery = delivery
        self._clock = clock
        self._policy = policy

    async def execute(self) -> int:
        now = self._clock.now()
        async with self._uow_factory() as uow:
            orders = await uow.work_orders.overdue(now, self._policy.expiry_batch)
            expired = []
            for order in orders:
                order.expire(now)
                # False: answered or cancelled a moment ago, and that answer stands.
                if await uow.work_orders.save_transition(order, WorkStatus.PENDING):
                    expired.append(order)
            people, devices = await uow.profiles.get_many_with_devices({p for o in expired for p in o.parties()})
            notifications = await save_notifications_for(uow, self._delivery, expired, people, now)
            await uow.commit()
        await self._delivery.deliver(notifications, devices)
        return len(expired)
