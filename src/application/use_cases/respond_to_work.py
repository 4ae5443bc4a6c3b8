from __future__ import annotations

from dataclasses import dataclass

from application.delivery import NotificationDelivery
from application.idempotency import IN_FLIGHT_MARGIN, IdempotentRequest, claim, remember, remember_final
from application.policy import DeliveryPolicy
from application.ports import Clock, UnitOfWorkFactory
from application.use_cases._caller import providers_order
from application.use_cases._notify import save_notifications_for
from domain.errors import AlreadyAnswered
from domain.notifications import Notification, SocketState
from domain.work_orders import WorkOrder, WorkStatus


@dataclass(frozen=True)
class WorkAnswerRecorded:
    order: WorkOrder
    seeker_notification: Notification | None  # None: a broadcast's decline, which the seeker is not told

    @property
    def seeker_notified_live(self) -> bool:
        return self.seeker_notification is not None and self.seeker_notification.socket_state is SocketState.SENT


def _seekers(order: WorkOrder, notifications: list[Notification]) -> Notification | None:
    return next((n for n in notifications if n.recipient_id == order.seeker_id), None)


class RespondToWork:
    """The assigned provider accepts or rejects a pending order; the seeker hears the answer.

    Two answers racing for one order end with one winner: the order's row is locked while it is
    answered, the store only records the change if the order is still pending, and the loser gets
    ``AlreadyAnswered`` (``AlreadyTaken`` on a broadcast someone else accepted). On a broadcast, an
    acceptance tells the other providers it was taken and settles their offers; a decline is recorded
    silently, unless it was the last one, which ends the order ``expired`` and tells the seeker.
    """

    def __init__(
        self, uow_factory: UnitOfWorkFactory, delivery: NotificationDelivery, clock: Clock, policy: DeliveryPolicy
    ) -> None:
        self._uow_factory = uow_factory
        self._delivery = delivery
        self._clock = clock
        self._policy = policy

    async def execute(
        self, provider_id: int, work_id: int, accepted: bool, idempotency: IdempotentRequest | None = None
    ) -> WorkAnswerRecorded:
        now = self._clock.now()
        async with self._uow_factory() as uow:
            await claim(uow, idempotency, now, self._policy.request_budget + IN_FLIGHT_MARGIN)
            order, people, devices = await providers_order(uow, provider_id, work_id, "answer", lock=True)
            order.answer(provider_id, accepted, now)
            if order.is_broadcast:
                await uow.work_orders.save_declines(order)
            if order.status is not WorkStatus.PENDING and not await uow.work_orders.save_transition(
                order, WorkStatus.PENDING
            ):
                raise AlreadyAnswered("this work order was answered a moment ago")
            # Answering is proof the offer arrived (the seed's app never sends ack): never sent or replayed again.
            # An accepted broadcast settles everyone's offer: the others hear work_taken instead.
            settled = provider_id if order.status is WorkStatus.PENDING or not order.is_broadcast else None
            await uow.notifications.acknowledge_offers(work_id, settled, now)
            notifications = await save_notifications_for(uow, self._delivery, [order], people, now)
            await remember(uow, idempotency, WorkAnswerRecorded(order, _seekers(order, notifications)), final=False)
            await uow.commit()
        await self._delivery.deliver(notifications, devices, self._policy.request_budget)
        recorded = WorkAnswerRecorded(order, _seekers(order, notifications))
        await remember_final(self._uow_factory, idempotency, recorded)
        return recorded
