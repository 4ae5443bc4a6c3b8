from __future__ import annotations

from application.delivery import NotificationDelivery
from application.policy import DeliveryPolicy
from application.ports import Clock, UnitOfWorkFactory
from domain.errors import InvalidTransition, NotificationNotFound
from domain.notifications import Notification


class RetryNotificationNow:
    """For operators: try a notification's unsent channels again at once, with a fresh set of attempts.

    Claimed like the dispatcher claims (attempt counted, lease set, in one transaction), then delivered
    and its outcome written before returning, so the console shows the result of the try.
    """

    def __init__(
        self, uow_factory: UnitOfWorkFactory, delivery: NotificationDelivery, clock: Clock, policy: DeliveryPolicy
    ) -> None:
        self._uow_factory = uow_factory
        self._delivery = delivery
        self._clock = clock
        self._policy = policy

    async def execute(self, notification_id: int) -> Notification:
        now = self._clock.now()
        async with self._uow_factory() as uow:
            n = await uow.notifications.get(notification_id)
            if n is None:
                raise NotificationNotFound(f"there is no notification {notification_id}")
            if not n.reopen(now):
                raise InvalidTransition("this notification was acknowledged or sent on every channel: nothing to retry")
            n.start_attempt(now, self._delivery.lease_until())
            await uow.notifications.save_delivery(n)
            devices = await uow.devices.active_for_users([n.recipient_id]) if n.pending_channels[0] else {}
            await uow.commit()
        await self._delivery.deliver([n], devices, self._policy.push_timeout)
        await self._delivery.flush()
        async with self._uow_factory() as uow:
            return await uow.notifications.get(notification_id) or n
