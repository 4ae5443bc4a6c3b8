from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from application.delivery import NotificationDelivery
from application.idempotency import IN_FLIGHT_MARGIN, IdempotentRequest, claim, remember, remember_final
from application.policy import DeliveryPolicy, WorkPolicy
from application.ports import Clock, UnitOfWork, UnitOfWorkFactory
from application.remembered_profiles import RememberedProfiles
from application.use_cases._notify import claimed_notifications_for
from application.use_cases._pending_cap import refuse_when_full
from domain.devices import DeviceToken
from domain.errors import DomainError, NotASeeker, ProfileNotFound, ProviderUnavailable, UnknownProvider
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

    One round trip to the database when this process has seen both parties lately: the domain decides on the
    profiles it remembers, with an order id an earlier write reserved, and the write saves only if the parties
    still read the same and the seeker is under the cap (else nothing is saved and the slow way runs). The slow
    way is two round trips: one read (the parties, their devices, the seeker's pending count, a new order id),
    then that same conditional write. Without an Idempotency-Key they run on a single-write unit of work (no
    BEGIN/COMMIT); with one, the key's claim and answer share a transaction with the write.
    """

    # A party that changes between the read and the write (PostgreSQL, one statement each) is read again: a few
    # times at most, then the order is refused as if the provider had become unavailable.
    ATTEMPTS = 3

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        delivery: NotificationDelivery,
        clock: Clock,
        work_policy: WorkPolicy,
        delivery_policy: DeliveryPolicy,
        single_write_uow_factory: UnitOfWorkFactory | None = None,
        remembered: RememberedProfiles | None = None,
    ) -> None:
        self._uow_factory = uow_factory
        self._single_write_uow_factory = single_write_uow_factory or uow_factory
        self._delivery = delivery
        self._clock = clock
        self._work_policy = work_policy
        self._delivery_policy = delivery_policy
        self._remembered = remembered if remembered is not None else RememberedProfiles()

    async def execute(self, command: AssignWorkCommand, idempotency: IdempotentRequest | None = None) -> WorkAssignment:
        now: datetime = self._clock.now()
        unit_of_work = self._uow_factory if idempotency is not None else self._single_write_uow_factory
        async with unit_of_work() as uow:
            await claim(uow, idempotency, now, self._delivery_policy.request_budget + IN_FLIGHT_MARGIN)
            saved = await self._save_from_remembered(uow, command, now)
            for _ in range(self.ATTEMPTS):
                if saved is not None:
                    break
                saved = await self._save_from_a_read(uow, command, now)
            else:
                raise ProviderUnavailable("the provider changed while being assigned: try again", field="provider_id")
            self._delivery.created([saved.notification])
            await remember(uow, idempotency, saved.assignment, final=False)
            await uow.commit()
        await self._delivery.deliver([saved.notification], saved.devices, self._delivery_policy.request_budget)
        assignment = _assignment(saved.order, saved.provider, saved.notification)
        await remember_final(self._uow_factory, idempotency, assignment)
        return assignment

    async def _save_from_remembered(self, uow: UnitOfWork, command: AssignWorkCommand, now: datetime) -> _Saved | None:
        """One round trip: the order decided on remembered parties, saved if they still hold. None: read first."""
        seeker, provider = self._remembered.get(command.seeker_id), self._remembered.get(command.provider_id)
        if seeker is None or provider is None:
            return None
        order_id = uow.work_orders.reserved_order_id()
        if order_id is None:
            return None
        try:
            order = self._decide(command, seeker, provider, now)
        except DomainError:  # perhaps no longer true: the read decides, and answers
            return None
        saved = await self._try_to_save(uow, order, order_id, seeker, provider, now)
        if saved is None:
            self._remembered.forget(seeker.id or 0, provider.id or 0)
        return saved

    async def _save_from_a_read(self, uow: UnitOfWork, command: AssignWorkCommand, now: datetime) -> _Saved | None:
        """Read the parties, decide, and save if they still hold (None: one of them changed in between)."""
        reads = await uow.work_orders.read_for_assignment(
            command.seeker_id, command.provider_id, now, self._work_policy.max_pending_per_seeker
        )
        self._remembered.remember(reads.people.values())
        seeker, provider = reads.people.get(command.seeker_id), reads.people.get(command.provider_id)
        if seeker is None:
            raise ProfileNotFound("no profile for this user")
        if not seeker.is_seeker:
            raise NotASeeker("only seekers can assign work")
        if provider is None:
            raise UnknownProvider(f"there is no provider with id {command.provider_id}", field="provider_id")
        refuse_when_full(self._work_policy, reads.seeker_pending, "assigning")
        order = self._decide(command, seeker, provider, now)
        return await self._try_to_save(uow, order, reads.order_id, seeker, provider, now)

    def _decide(self, command: AssignWorkCommand, seeker: Profile, provider: Profile, now: datetime) -> WorkOrder:
        return WorkOrder.assign(
            seeker,
            provider,
            service_type=command.service_type,
            message=command.message,
            distance=command.distance,
            location=command.location,
            now=now,
            time_to_answer=self._work_policy.time_to_answer,
        )

    async def _try_to_save(
        self, uow: UnitOfWork, order: WorkOrder, order_id: int, seeker: Profile, provider: Profile, now: datetime
    ) -> _Saved | None:
        order.id = order_id
        order.record_assigned()
        people = {seeker.id: seeker, provider.id: provider}
        (notification,) = claimed_notifications_for(self._delivery, [order], people, now)
        devices = await uow.work_orders.add_assignment_if_current(
            order, notification, seeker, provider, self._work_policy.max_pending_per_seeker
        )
        if devices is None:
            return None
        return _Saved(order, provider, notification, {notification.recipient_id: devices})


@dataclass(frozen=True)
class _Saved:
    order: WorkOrder
    provider: Profile
    notification: Notification
    devices: dict[int, list[DeviceToken]]

    @property
    def assignment(self) -> WorkAssignment:
        return _assignment(self.order, self.provider, self.notification)


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
