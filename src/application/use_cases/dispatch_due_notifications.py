from __future__ import annotations

from application.delivery import NotificationDelivery
from application.policy import DeliveryPolicy
from application.ports import Clock, UnitOfWorkFactory


class DispatchDueNotifications:
    """One step of the retry loop: claim the notifications whose next attempt is due and deliver them.

    Claiming moves each one's next attempt to the end of a lease in the same transaction, so another
    dispatcher skips it, and a crash mid-delivery only delays it. Returns how many were attempted.
    """

    def __init__(
        self, uow_factory: UnitOfWorkFactory, delivery: NotificationDelivery, clock: Clock, policy: DeliveryPolicy
    ) -> None:
        self._uow_factory = uow_factory
        self._delivery = delivery
        self._clock = clock
        self._policy = policy

    async def execute(self) -> int:
        now = self._clock.now()
        async with self._uow_factory() as uow:
            claimed = await uow.notifications.claim_due(now, self._policy.claim_batch)
            lease_until = self._delivery.lease_until()
            for n in claimed:
                n.start_attempt(now, lease_until)
            await uow.notifications.save_deliveries(claimed)
            push_due = {n.recipient_id for n in claimed if n.pending_channels[0]}
            devices = await uow.devices.active_for_users(push_due) if push_due else {}
            await uow.commit()
        await self._delivery.deliver(claimed, devices)
        return len(claimed)
