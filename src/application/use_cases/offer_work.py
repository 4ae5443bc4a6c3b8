"""Broadcast offers: one order offered at once to the nearest active providers; the first to accept wins."""

from __future__ import annotations

from dataclasses import dataclass

from application.delivery import NotificationDelivery
from application.errors import BrokerUnavailable
from application.idempotency import IN_FLIGHT_MARGIN, IdempotentRequest, claim, remember, remember_final
from application.policy import DeliveryPolicy, WorkPolicy
from application.ports import Clock, NearbyProvider, RealtimeBroker, UnitOfWorkFactory
from application.use_cases._notify import save_notifications_for
from application.use_cases._pending_cap import check_room_for_another_order
from domain.errors import InvalidInput, NotASeeker, ProfileNotFound
from domain.geo import MAX_RADIUS_KM, GeoPoint
from domain.work_orders import WorkOrder

MAX_PROVIDERS = 50
# Online providers go first, so the search looks past the nearest few for them (bounded: an index read).
CANDIDATES_PER_OFFER = 4


@dataclass(frozen=True)
class OfferWorkCommand:
    seeker_id: int
    service_type: str
    message: str
    distance: str
    location: GeoPoint
    radius_km: float
    max_providers: int = 10


@dataclass(frozen=True)
class WorkOffer:
    order: WorkOrder

    @property
    def offered_to(self) -> int:
        return len(self.order.offers)


class OfferWork:
    """A seeker's job goes at once to up to ``max_providers`` active providers within ``radius_km`` of it:
    those with an open socket first, then by distance (ties: lowest id). Each hears of it by socket and
    push (its own tracked notification), all committed with the order before anything is sent."""

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        delivery: NotificationDelivery,
        broker: RealtimeBroker,
        clock: Clock,
        work_policy: WorkPolicy,
        delivery_policy: DeliveryPolicy,
    ) -> None:
        self._uow_factory = uow_factory
        self._delivery = delivery
        self._broker = broker
        self._clock = clock
        self._work_policy = work_policy
        self._delivery_policy = delivery_policy

    async def execute(self, command: OfferWorkCommand, idempotency: IdempotentRequest | None = None) -> WorkOffer:
        if not 1 <= command.max_providers <= MAX_PROVIDERS:
            raise InvalidInput(f"max_providers must be between 1 and {MAX_PROVIDERS}", field="max_providers")
        if not 0 < command.radius_km <= MAX_RADIUS_KM:
            raise InvalidInput(f"radius_km must be above 0 and at most {MAX_RADIUS_KM:g}", field="radius_km")
        now = self._clock.now()
        budget = self._delivery_policy.request_budget
        async with self._uow_factory() as uow:
            await claim(uow, idempotency, now, budget + IN_FLIGHT_MARGIN)
            seeker = await uow.profiles.get(command.seeker_id)
            if seeker is None or seeker.deleted_at is not None:
                raise ProfileNotFound("no profile for this user")
            if not seeker.is_seeker:
                raise NotASeeker("only seekers can offer work")
            await check_room_for_another_order(uow, self._work_policy, command.seeker_id, now, "offering")
            wanted = command.max_providers
            nearby = await uow.nearby.nearest(command.location, wanted * CANDIDATES_PER_OFFER, command.radius_km)
            chosen = [n.profile.id for n in await self._online_first(nearby, wanted)]
            people, devices = await uow.profiles.get_many_with_devices({command.seeker_id, *chosen})
            order = WorkOrder.broadcast(
                seeker,
                [people[p] for p in chosen if p in people],
                service_type=command.service_type,
                message=command.message,
                distance=command.distance,
                location=command.location,
                now=now,
                time_to_answer=self._work_policy.time_to_answer,
            )
            await uow.work_orders.add(order)
            order.record_assigned()
            notifications = await save_notifications_for(uow, self._delivery, [order], people, now)
            await remember(uow, idempotency, WorkOffer(order), final=False)
            await uow.commit()
        await self._delivery.deliver(notifications, devices, budget)
        offer = WorkOffer(order)
        await remember_final(self._uow_factory, idempotency, offer)
        return offer

    async def _online_first(self, nearby: list[NearbyProvider], wanted: int) -> list[NearbyProvider]:
        try:
            online = await self._broker.online({n.profile.id for n in nearby if n.profile.id is not None})
        except BrokerUnavailable:
            online = set()  # cannot tell: by distance alone
        return sorted(nearby, key=lambda n: (n.profile.id not in online, n.distance_km, n.profile.id))[:wanted]
