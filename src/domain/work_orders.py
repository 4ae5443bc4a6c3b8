"""Work orders and their status machine.

    pending  -> accepted | rejected | cancelled | expired
    accepted -> completed | cancelled

Everything else is terminal and never changes again.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from domain.errors import (
    AlreadyAnswered,
    InvalidTransition,
    NotASeeker,
    NotYourOrder,
    ProviderUnavailable,
)
from domain.events import Event, WorkAnswered, WorkAssigned, WorkCancelled, WorkCompleted, WorkExpired
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
    """A job a seeker offers to one provider. ``id`` is given by the store when first saved."""

    seeker_id: int
    provider_id: int
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

    def record_assigned(self) -> None:
        """Raise the WorkAssigned event once the order has its id."""
        assert self.id is not None
        self.events.append(WorkAssigned(self.id, self.seeker_id, self.provider_id))

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    def is_party(self, user_id: int) -> bool:
        return user_id in (self.seeker_id, self.provider_id)

    def answer(self, provider_id: int, accepted: bool, now: datetime) -> None:
        """The assigned provider accepts or rejects. An order that is not pending any more cannot be answered."""
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

    def cancel(self, seeker_id: int, now: datetime) -> None:
        """Only the seeker who created the order may cancel it, while pending or accepted."""
        if seeker_id != self.seeker_id:
            raise NotYourOrder("only the seeker who created this work order can cancel it")
        self._move_to(WorkStatus.CANCELLED, now)
        self.closed_at = now
        assert self.id is not None
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
        self.events.append(WorkExpired(self.id, self.seeker_id, self.provider_id))

    def _move_to(self, target: WorkStatus, now: datetime) -> None:
        if target not in ALLOWED_TRANSITIONS.get(self.status, frozenset()):
            raise InvalidTransition(f"a {self.status.value} work order cannot become {target.value}")
        self.status = target
