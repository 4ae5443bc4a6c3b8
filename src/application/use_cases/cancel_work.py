from __future__ import annotations

from application.delivery import NotificationDelivery
from application.idempotency import IN_FLIGHT_MARGIN, IdempotentRequest, claim, remember
from application.policy import DeliveryPolicy
from application.ports import Clock, UnitOfWorkFactory
from application.use_cases._caller import caller_profile
from application.use_cases._notify import save_notifications_for
from domain.errors import InvalidTransition, NotYourOrder, WorkOrderNotFound
from domain.work_orders import WorkOrder


class CancelWork:
    """The seeker withdraws a pending or accepted order; the provider hears about it."""

    def __init__(
        self, uow_factory: UnitOfWorkFactory, delivery: NotificationDelivery, clock: Clock, policy: DeliveryPolicy
    ) -> None:
        self._uow_factory = uow_factory
        self._delivery = delivery
        self._clock = clock
        self._policy = policy

    async def execute(self, user_id: int, work_id: int, idempotency: IdempotentRequest | None = None) -> WorkOrder:
        now = self._clock.now()
        async with self._uow_factory() as uow:
            await claim(uow, idempotency, now, self._policy.request_budget + IN_FLIGHT_MARGIN)
            await caller_profile(uow, user_id)
            order = await uow.work_orders.get(work_id)
            if order is None or not order.is_party(user_id):
                # Someone else's order reads exactly like a missing one: ids must not reveal what exists.
                raise WorkOrderNotFound(f"there is no work order {work_id}")
            if user_id != order.seeker_id:
                raise NotYourOrder("only the seeker who created this work order can cancel it")
            previous = order.status
            order.cancel(user_id, now)
            if not await uow.work_orders.save_transition(order, previous):
                raise InvalidTransition("this work order changed a moment ago; read it again")
            people, devices = await uow.profiles.get_many_with_devices(order.parties())
            notifications = await save_notifications_for(uow, self._delivery, [order], people, now)
            await remember(uow, idempotency, order, final=True)  # the answer does not depend on the delivery
            await uow.commit()
        await self._delivery.deliver(notifications, devices, self._policy.request_budget)
        return order
