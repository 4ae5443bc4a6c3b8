from __future__ import annotations

from application.delivery import NotificationDelivery
from application.policy import DeliveryPolicy
from application.ports import Clock, UnitOfWorkFactory
from application.use_cases._caller import providers_order
from application.use_cases._notify import save_notifications_for
from domain.errors import InvalidTransition
from domain.work_orders import WorkOrder, WorkStatus


class CompleteWork:
    """The assigned provider marks accepted work as done; the seeker hears ``work_completed``."""

    def __init__(
        self, uow_factory: UnitOfWorkFactory, delivery: NotificationDelivery, clock: Clock, policy: DeliveryPolicy
    ) -> None:
        self._uow_factory = uow_factory
        self._delivery = delivery
        self._clock = clock
        self._policy = policy

    async def execute(self, provider_id: int, work_id: int) -> WorkOrder:
        now = self._clock.now()
        async with self._uow_factory() as uow:
            order, people, devices = await providers_order(uow, provider_id, work_id, "complete")
            order.complete(provider_id, now)
            if not await uow.work_orders.save_transition(order, WorkStatus.ACCEPTED):
                raise InvalidTransition("this work order changed a moment ago; read it again")
            notifications = await save_notifications_for(uow, self._delivery, [order], people, now)
            await uow.commit()
        await self._delivery.deliver(notifications, devices, self._policy.request_budget)
        return order
