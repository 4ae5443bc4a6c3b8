from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from application.delivery import NotificationDelivery
from application.idempotency import IN_FLIGHT_MARGIN, IdempotentRequest, claim, remember, remember_final
from application.policy import DeliveryPolicy, WorkPolicy
from application.ports import Clock, UnitOfWorkFactory
from application.use_cases._notify import claimed_notifications_for
from application.use_cases._pending_cap import refuse_when_full
from domain.errors import NotASeeker, ProfileNotFound, UnknownProvider
from domain.geo import GeoPoint
from domain.notifications import Notification, PushState, SocketState
from domain.profiles import Profile
from domain.work_orders import WorkOrder


@dataclass(frozen=True)
class AssignWorkCommand:
    seeker_id: int
    provider_id: int
    service_type: str
    message: str
    distance: str
    location: GeoPoint


@dataclass(frozen=True)
class WorkAssignment:
    """What the seeker is told: the seed's response fields."""

    order: WorkOrder
    provider_name: str
    provider_mobile: str
    notification_id: int
    fcm_sent: bool
    websocket_sent: bool


class AssignWork:
    """A seeker offers a job to a provider, who hears about it by push and socket at once.

    The order and the provider's notification are saved in one statement before anything is sent;
    delivery then waits at most the request budget, and whatever did not finish in time is finished in
    the background or by the dispatcher.

    Two round trips to the database: one read (the parties, their devices, the seeker's pending count,
    the new order's id) and that one write. Without an Idempotency-Key they run on a single-write unit
    of work (no BEGIN/COMMIT); with one, the key's claim and answer share a transaction with the write.
    """

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        delivery: NotificationDelivery,
        clock: Clock,
        work_policy: WorkPolicy,
        delivery_policy: DeliveryPolicy,
        single_write_uow_factory: UnitOfWorkFactory | None = None,
    ) -> None:
        self._uow_factory = uow_factory
        self._single_write_uow_factory = single_write_uow_factory or uow_factory
        self._delivery = delivery
        self._clock = clock
        self._work_policy = work_policy
        self._delivery_policy = delivery_policy

    async def execute(self, command: AssignWorkCommand, idempotency: IdempotentRequest | None = None) -> WorkAssignment:
        now: datetime = self._clock.now()
        unit_of_work = self._uow_factory if idempotency is not None else self._single_write_uow_factory
        async with unit_of_work() as uow:
            await claim(uow, idempotency, now, self._delivery_policy.request_budget + IN_FLIGHT_MARGIN)
            reads = await uow.work_orders.read_for_assignment(
                command.seeker_id, command.provider_id, now, self._work_policy.max_pending_per_seeker
            )
            seeker, provider = reads.people.get(command.seeker_id), reads.people.get(command.provider_id)
            if seeker is None:
                raise ProfileNotFound("no profile for this user")
            if not seeker.is_seeker:
                raise NotASeeker("only seekers can assign work")
            if provider is None:
                raise UnknownProvider(f"there is no provider with id {command.provider_id}", field="provider_id")
            refuse_when_full(self._work_policy, reads.seeker_pending, "assigning")
            order = WorkOrder.assign(
                seeker,
                provider,
                service_type=command.service_type,
                message=command.message,
                distance=command.distance,
                location=command.location,
                now=now,
                time_to_answer=self._work_policy.time_to_answer,
            )
            order.id = reads.order_id
            order.record_assigned()
            (notification,) = notifications = claimed_notifications_for(self._delivery, [order], reads.people, now)
            await uow.work_orders.add_with_notification(order, notification)
            self._delivery.created(notifications)
            await remember(uow, idempotency, _assignment(order, provider, notification), final=False)
            await uow.commit()
        await self._delivery.deliver(notifications, reads.devices, self._delivery_policy.request_budget)
        assignment = _assignment(order, provider, notification)
        await remember_final(self._uow_factory, idempotency, assignment)
        return assignment


def _assignment(order: WorkOrder, provider: Profile, notification: Notification) -> WorkAssignment:
    assert notification.id is not None
    return WorkAssignment(
        order=order,
        provider_name=provider.name,
        provider_mobile=provider.mobile,
        notification_id=notification.id,
        fcm_sent=notification.push_state is PushState.SENT,
        websocket_sent=notification.socket_state is SocketState.SENT,
    )
