"""Work orders and their status machine.

    pending  -> accepted | rejected | cancelled | expired
    accepted -> completed | cancelled

Everything else is terminal and never changes again.

An order is either assigned to one provider (the seed's assign-work) or *broadcast*: offered at once to
several providers (``offers``), with no provider until the first of them accepts. The others then hear
that it was taken; a broadcast every provider declines expires (it never becomes ``rejected``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from domain.errors import (
    AlreadyAnswered,
    AlreadyTaken,
    InvalidTransition,
    NoProvidersNearby,
    NotASeeker,
    NotYourOrder,
    ProviderUnavailable,
)
from domain.events import (
    Event,
    WorkAnswered,
    WorkAssigned,
    WorkCancelled,
    WorkCompleted,
    WorkExpired,
    WorkOffered,
    WorkTaken,
)
from domain.geo import GeoPoint
from domain.profiles import Profile
from domain.text import check_text

# What an erased person leaves behind: the job's place becomes this, and notifications lose these keys.
ERASED_PLACE = GeoPoint(0.0, 0.0)
PERSONAL_PAYLOAD_KEYS = frozenset(
    {"seeker_name", "seeker_mobile", "provider_name", "provider_mobile", "message", "latitude", "longitude"}
)
SERVICE_TYPE_MAX = 64
MESSAGE_MAX = 2000
DISTANCE_MAX = 32


class WorkStatus(enum.StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    COMPLETED = "completed"


# An order in one of these has ended: nothing will change it again (retention may forget it).
CLOSED_STATUSES = frozenset({WorkStatus.REJECTED, WorkStatus.CANCELLED, WorkStatus.EXPIRED, WorkStatus.COMPLETED})


ALLOWED_TRANSITIONS: dict[WorkStatus, frozenset[WorkStatus]] = {
    WorkStatus.PENDING: frozenset({WorkStatus.ACCEPTED, WorkStatus.REJECTED, WorkStatus.CANCELLED, WorkStatus.EXPIRED}),
    WorkStatus.ACCEPTED: frozenset({WorkStatus.COMPLETED, WorkStatus.CANCELLED}),
}
TERMINAL_STATUSES = frozenset(s for s in WorkStatus if s not in ALLOWED_TRANSITIONS)


@dataclass
class WorkOrder:
    """A job a seeker offers to one provider, or broadcasts to several. The store gives ``id`` when first saved."""

    seeker_id: int
    provider_id: int | None  # None: a broadcast nobody has accepted yet
    service_type: str
    message: str
    distance: str
    location: GeoPoint
    status: WorkStatus
    created_at: datetime
    expires_at: datetime
    responded_at: datetime | None = None
    closed_at: datetime | None = None
    id: int | None = None
    # A broadcast's offered providers, each with when they declined (None: not declined).
    offers: dict[int, datetime | None] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list, repr=False, compare=False)

    @classmethod
    def assign(
        cls,
        seeker: Profile,
        provider: Profile,
        *,
        service_type: str,
        message: str,
        distance: str,
        location: GeoPoint,
        now: datetime,
        time_to_answer: timedelta,
    ) -> WorkOrder:
        """A seeker offers work to an active provider. The order waits ``time_to_answer`` for an answer."""
        if not seeker.is_seeker:
            raise NotASeeker("only seekers can assign work")
        if not provider.is_provider:
            raise ProviderUnavailable("that user is not a provider", field="provider_id")
        if not provider.is_active_for_work:
            raise ProviderUnavailable("the provider is not accepting work right now", field="provider_id")
        service_type = service_type.strip()
        check_text("service_type", service_type, SERVICE_TYPE_MAX)
        check_text("message", message, MESSAGE_MAX, required=False, multiline=True)
        check_text("distance", distance, DISTANCE_MAX, required=False)
        assert seeker.id is not None and provider.id is not None
        order = cls(
            seeker_id=seeker.id,
            provider_id=provider.id,
            service_type=service_type,
            message=message,
            distance=distance,
            location=location,
            status=WorkStatus.PENDING,
            created_at=now,
            expires_at=now + time_to_answer,
        )
        return order

    @classmethod
    def broadcast(
        cls,
        seeker: Profile,
        providers: list[Profile],
        *,
        service_type: str,
        message: str,
        distance: str,
        location: GeoPoint,
        now: datetime,
        time_to_answer: timedelta,
    ) -> WorkOrder:
        """A seeker offers work to several active providers at once; the first to accept gets it."""
        if not seeker.is_seeker:
            raise NotASeeker("only seekers can offer work")
        if not providers:
            raise NoProvidersNearby("no active provider is within the radius: widen radius_km or try later")
        for provider in providers:
            if not provider.is_provider or not provider.is_active_for_work:
                raise ProviderUnavailable("only active providers can be offered work")
        first, *_ = providers
        order = cls.assign(
            seeker,
            first,
            service_type=service_type,
            message=message,
            distance=distance,
            location=location,
            now=now,
            time_to_answer=time_to_answer,
        )
        order.provider_id = None
        order.offers = {p.id: None for p in providers if p.id is not None}
        return order

    def record_assigned(self) -> None:
        """Raise the WorkAssigned event (one WorkOffered per provider of a broadcast) once the order has its id."""
        assert self.id is not None
        if self.is_broadcast:
            self.events += [WorkOffered(self.id, self.seeker_id, p) for p in self.offers]
        else:
            self.events.append(WorkAssigned(self.id, self.seeker_id, self.provider_id))

    @property
    def is_broadcast(self) -> bool:
        return bool(self.offers)

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    def is_party(self, user_id: int) -> bool:
        return user_id in (self.seeker_id, self.provider_id) or user_id in self.offers

    def parties(self) -> set[int]:
        """Everyone the order's notifications may go to."""
        return {self.seeker_id, *self.offers, *([self.provider_id] if self.provider_id is not None else [])}

    def _still_offered(self) -> list[int]:
        """A broadcast's providers who neither declined nor won it."""
        return [p for p, declined in self.offers.items() if declined is None and p != self.provider_id]

    def answer(self, provider_id: int, accepted: bool, now: datetime) -> None:
        """The assigned provider (or one of a broadcast's) accepts or rejects.

        An order that is not pending any more cannot be answered; a broadcast someone else accepted
        answers ``AlreadyTaken``."""
        if self.is_broadcast:
            self._answer_offer(provider_id, accepted, now)
            return
        if provider_id != self.provider_id:
            raise NotYourOrder("this work order is assigned to another provider")
        if self.status is not WorkStatus.PENDING:
            raise AlreadyAnswered(f"this work order is already {self.status.value}")
        if now >= self.expires_at:
            raise AlreadyAnswered("this work order expired before it was answered")
        self._move_to(WorkStatus.ACCEPTED if accepted else WorkStatus.REJECTED, now)
        self.responded_at = now
        if not accepted:
            self.closed_at = now
        assert self.id is not None
        self.events.append(WorkAnswered(self.id, self.seeker_id, self.provider_id, accepted))

    def _answer_offer(self, provider_id: int, accepted: bool, now: datetime) -> None:
        if provider_id not in self.offers:
            raise NotYourOrder("this work order was offered to other providers")
        if self.status is WorkStatus.ACCEPTED and self.provider_id != provider_id:
            raise AlreadyTaken("another provider accepted this work order first")
        if self.status is not WorkStatus.PENDING:
            raise AlreadyAnswered(f"this work order is already {self.status.value}")
        if self.offers[provider_id] is not None:
            raise AlreadyAnswered("you already declined this work order")
        if now >= self.expires_at:
            raise AlreadyAnswered("this work order expired before it was answered")
        assert self.id is not None
        if accepted:
            self._move_to(WorkStatus.ACCEPTED, now)
            self.provider_id = provider_id
            self.responded_at = now
            self.events.append(WorkAnswered(self.id, self.seeker_id, provider_id, True))
            self.events += [WorkTaken(self.id, self.seeker_id, p) for p in self._still_offered()]
            return
        self.offers[provider_id] = now
        if not self._still_offered():  # everyone declined: the seeker hears it ended, as on expiry
            self._move_to(WorkStatus.EXPIRED, now)
            self.responded_at = self.closed_at = now
            self.events.append(WorkExpired(self.id, self.seeker_id, None))

    def cancel(self, seeker_id: int, now: datetime) -> None:
        """Only the seeker who created the order may cancel it, while pending or accepted."""
        if seeker_id != self.seeker_id:
            raise NotYourOrder("only the seeker who created this work order can cancel it")
        still_offered = self._still_offered() if self.status is WorkStatus.PENDING else []
        self._move_to(WorkStatus.CANCELLED, now)
        self.closed_at = now
        assert self.id is not None
        if self.is_broadcast and self.provider_id is None:
            self.events += [WorkCancelled(self.id, self.seeker_id, p) for p in still_offered]
        else:
            self.events.append(WorkCancelled(self.id, self.seeker_id, self.provider_id))

    def complete(self, user_id: int, now: datetime) -> None:
        """Either party marks accepted work as done."""
        if not self.is_party(user_id):
            raise NotYourOrder("this work order belongs to other users")
        self._move_to(WorkStatus.COMPLETED, now)
        self.closed_at = now
        assert self.id is not None
        self.events.append(WorkCompleted(self.id, self.seeker_id, self.provider_id))

    def is_overdue(self, now: datetime) -> bool:
        return self.status is WorkStatus.PENDING and now >= self.expires_at

    def expire(self, now: datetime) -> None:
        """A pending order nobody answered in time."""
        if not self.is_overdue(now):
            raise InvalidTransition(f"a {self.status.value} order that is not overdue cannot expire")
        self._move_to(WorkStatus.EXPIRED, now)
        self.closed_at = now
        assert self.id is not None
        if self.is_broadcast:
            self.events.append(WorkExpired(self.id, self.seeker_id, None))
            self.events += [WorkExpired(self.id, self.seeker_id, p, tell_seeker=False) for p in self._still_offered()]
        else:
            self.events.append(WorkExpired(self.id, self.seeker_id, self.provider_id))

    def _move_to(self, target: WorkStatus, now: datetime) -> None:
        if target not in ALLOWED_TRANSITIONS.get(self.status, frozenset()):
            raise InvalidTransition(f"a {self.status.value} work order cannot become {target.value}")
        self.status = target
