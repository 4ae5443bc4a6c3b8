"""Ports: what the use cases need from the outside world, as ``typing.Protocol``s.

Adapters in ``adapters/<technology>/`` implement them; the composition root picks which.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Protocol, Self, runtime_checkable

from domain.audit import DeliveryAttempt
from domain.devices import DeviceToken
from domain.geo import GeoPoint
from domain.limits import Rate
from domain.notifications import Notification
from domain.profiles import Profile, Role
from domain.work_orders import WorkOrder, WorkStatus


@runtime_checkable
class ProfileRepository(Protocol):
    async def add(self, profile: Profile) -> Profile:
        """Store a new profile and give it its id; without an external id, its id (as text) becomes its external id."""

    async def get(self, profile_id: int) -> Profile | None:
        """The profile, unless there is none or it was erased."""

    async def get_by_external_id(self, external_id: str) -> Profile | None:
        """The live profile the app's tokens call ``external_id`` (compared exactly)."""

    async def add_many(self, new: Sequence[Profile]) -> None:
        """Store new profiles, each with its external id, in one statement; gives each its id."""

    async def save_many(self, changed: Sequence[Profile]) -> None:
        """``save`` for many profiles, in one statement."""

    async def by_external_ids(self, external_ids: Collection[str]) -> dict[str, Profile]:
        """The live profiles with these external ids, in one read (import reads a batch at a time)."""

    async def has_open_orders(self, profile_id: int) -> bool:
        """Whether the profile is a party to a pending or accepted work order."""

    async def get_many_with_devices(
        self, profile_ids: Collection[int]
    ) -> tuple[dict[int, Profile], dict[int, list[DeviceToken]]]:
        """The profiles and the active devices of each (as ``DeviceTokenRepository.active_for_users``),
        in one read: everything a state change needs to notify its parties."""

    async def existing_ids(self, profile_ids: Collection[int]) -> set[int]:
        """Which of these ids still have a live (not erased) profile (one read, whatever the number of ids)."""

    async def erased_since(self, since: datetime) -> set[int]:
        """The ids of the profiles erased at or after ``since``."""

    async def save(self, profile: Profile) -> None:
        """Store everything about an existing profile (role, name, mobile, availability, location, identity)."""

    async def list_active_providers(self, limit: int) -> list[Profile]:
        """Active providers, lowest id first."""


# --- nearby ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NearbyProvider:
    profile: Profile
    distance_km: float  # great-circle (haversine, domain.geo)


@runtime_checkable
class NearbyProviders(Protocol):
    """The spatial index over active providers' positions (adapters/geo)."""

    async def nearest(self, near: GeoPoint, limit: int, within_km: float | None = None) -> list[NearbyProvider]:
        """Active providers with a location, nearest first by great-circle distance (equal distances: lowest
        id first), at most ``limit``; with ``within_km``, only those at most that far. Exact, whatever the
        number of providers: the store answers from its index, never by reading every candidate."""

    async def move_many(self, positions: Mapping[int, GeoPoint], at: datetime) -> int:
        """Set the location of these providers (live location, one statement for the batch); returns how many
        provider profiles were updated (ids of other roles or erased profiles are skipped)."""


@runtime_checkable
class DeviceTokenRepository(Protocol):
    async def get_by_token(self, token: str) -> DeviceToken | None: ...

    async def add(self, device: DeviceToken) -> DeviceToken: ...

    async def save(self, device: DeviceToken) -> None: ...

    async def by_tokens(self, tokens: Collection[str]) -> dict[str, DeviceToken]:
        """The devices with these tokens, in one read."""

    async def add_many(self, new: Sequence[DeviceToken]) -> None: ...

    async def save_many(self, changed: Sequence[DeviceToken]) -> None: ...

    async def remove_for_user(self, user_id: int, token: str | None = None) -> int:
        """Forget the user's device with this token (FCM token or fid), or all the user's devices; returns how many."""

    async def active_for_users(self, user_ids: Collection[int]) -> dict[int, list[DeviceToken]]:
        """Active devices of each user (users without one are absent), oldest registration first."""

    async def invalidate(self, reasons: Mapping[int, str], at: datetime) -> None:
        """Mark the devices (by id) dead with the reason FCM gave; already dead ones keep their first reason."""


@dataclass(frozen=True)
class AssignmentReads:
    """Everything assigning work reads, in one round trip: the parties with their active devices, how many
    unanswered orders the seeker holds (counted up to the cap) and the id the new order will get."""

    people: dict[int, Profile]
    devices: dict[int, list[DeviceToken]]
    seeker_pending: int
    order_id: int


@runtime_checkable
class WorkOrderRepository(Protocol):
    async def add(self, order: WorkOrder) -> WorkOrder: ...

    async def read_for_assignment(
        self, seeker_id: int, provider_id: int, now: datetime, pending_cap: int
    ) -> AssignmentReads:
        """``AssignmentReads`` for a new order from ``seeker_id`` to ``provider_id`` (``pending_cap`` 0: not counted).
        No other assignment gets the reserved id while this unit of work is open."""

    def reserved_order_id(self) -> int | None:
        """An id for a new order that an earlier assignment's write reserved, while it is fresh (no round trip);
        None when there is none (then ``read_for_assignment`` reserves one)."""

    async def add_assignment_if_current(
        self, order: WorkOrder, notification: Notification, seeker: Profile, provider: Profile, pending_cap: int
    ) -> list[DeviceToken] | None:
        """In one statement, also in a ``single_write`` unit of work: save a new order (its id reserved by
        ``reserved_order_id`` or ``read_for_assignment``) and its one notification, both or neither, only if both
        parties still read as given (``reads_the_same``) and the seeker holds fewer than ``pending_cap``
        unanswered orders at ``order.created_at`` (0: not counted). Returns the recipient's active devices (oldest
        registration first), or None when something changed and nothing was saved."""

    async def get(self, order_id: int, lock: bool = False) -> WorkOrder | None:
        """The order (a broadcast with its offers); ``lock``: hold the row until the transaction ends, so that
        answers to one order take turns (PostgreSQL; SQLite has one writer at a time anyway)."""

    async def save_declines(self, order: WorkOrder) -> None:
        """Store which of a broadcast's providers declined (a decline is never undone)."""

    async def save_transition(self, order: WorkOrder, from_status: WorkStatus) -> bool:
        """Store the order's new status only if the stored status is still ``from_status``.

        Returns False when another transaction changed it first: this is what makes two concurrent
        answers to one order end with exactly one winner.
        """

    async def list_for_user(
        self, user_id: int, role: Role, status: WorkStatus | None, limit: int, before_id: int | None
    ) -> list[WorkOrder]:
        """Orders the seeker created (or the provider was assigned), newest first, ids below ``before_id``."""

    async def anonymise_for_user(self, user_id: int) -> None:
        """The user was erased: drop what their orders say about them (the seeker's message and location)."""

    async def overdue(self, now: datetime, limit: int) -> list[WorkOrder]:
        """Pending orders whose answer time has passed, oldest first."""

    async def count_pending_for_seeker(self, seeker_id: int, now: datetime, up_to: int) -> int:
        """How many of the seeker's orders are pending and not yet expired at ``now``, counting at most ``up_to``."""

    async def delete_closed_before(self, cutoff: datetime, limit: int) -> int:
        """Forget at most ``limit`` orders closed (rejected, cancelled, expired, completed) before ``cutoff``, with
        their notifications and attempts; returns how many orders."""


@dataclass(frozen=True)
class DeliveryStats:
    """Counts over the notifications created since a moment (the operators' monitoring numbers)."""

    total: int
    by_delivery_status: Mapping[str, int]
    by_push_state: Mapping[str, int]
    by_socket_state: Mapping[str, int]
    push_errors: Mapping[str, int]  # the most frequent push error reasons
    opened: int = 0  # of those, how many the user opened
    # per kind: created, sent (a channel reached the user), pushed and on_socket (sent per channel),
    # delivered (acknowledged), opened
    by_kind: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    # per device platform (from the push attempts' devices): pushed, delivered, opened
    by_platform: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    # seconds from creation to the ack and to the open: p50, p90, p99 and how many samples
    time_to_ack: Mapping[str, float | None] = field(default_factory=dict)
    time_to_open: Mapping[str, float | None] = field(default_factory=dict)


@runtime_checkable
class NotificationRepository(Protocol):
    async def add_many(self, notifications: Sequence[Notification]) -> None:
        """Store new notifications and give each its id."""

    async def get(self, notification_id: int) -> Notification | None: ...

    async def get_many(self, notification_ids: Collection[int]) -> list[Notification]:
        """The notifications that exist among these ids, in id order."""

    async def save_delivery(self, notification: Notification) -> None:
        """Store the delivery fields (channel states, attempts, schedule, acknowledgement).

        Writers race (the outcome recorder, a replay on connect, an acknowledgement), so the store
        never moves back: a channel stored as sent stays sent (with its message id and no error), and
        a stored acknowledgement time is kept.
        """

    async def save_deliveries(self, notifications: Sequence[Notification]) -> None:
        """``save_delivery`` for many at once, in order."""

    async def claim_due(self, now: datetime, limit: int) -> list[Notification]:
        """Notifications whose next attempt is due, oldest due first.

        They are locked for this unit of work: another process claiming at the same time skips them.
        """

    async def replay_for_user(
        self, user_id: int, since: datetime, now: datetime, limit: int
    ) -> list[tuple[Notification, WorkStatus]]:
        """The user's unacknowledged notifications created since ``since``, newest first, at most ``limit``,
        each with its order's current status; offers whose order is no longer pending or has expired by
        ``now`` are left out (they can no longer be taken)."""

    async def acknowledge_offers(self, work_id: int, recipient_id: int | None, now: datetime) -> None:
        """The recipient answered the order: its offers of that order count as received (never sent again).
        ``None``: a broadcast was taken, and every provider's offer of it is settled."""

    async def anonymise_for_user(self, user_id: int) -> None:
        """The user was erased: names, mobiles, messages and places leave every notification about their orders."""

    async def retry_sockets_now(self, user_ids: Collection[int], since: datetime, now: datetime) -> int:
        """After a broker outage: make due now, on the socket channel, the unacknowledged notifications that the
        outage kept from sockets: those of ``user_ids`` created since ``since`` and recorded not connected, and
        any whose socket attempt failed because the broker was unavailable. Returns how many."""

    async def list_for_user(self, user_id: int, limit: int, before_id: int | None) -> list[Notification]:
        """The user's notifications, newest first, ids below ``before_id``."""

    async def delivery_stats(self, since: datetime, top_errors: int) -> DeliveryStats:
        """Counts by derived delivery status, by channel state and by kind, and the most frequent push errors."""

    async def response_times(self, since: datetime, limit: int) -> tuple[list[float], list[float]]:
        """Seconds from creation to the ack, and to the open, of the most recent ``limit`` acknowledged
        notifications created since ``since``."""

    async def delete_before(self, cutoff: datetime, limit: int) -> int:
        """Forget at most ``limit`` notifications created before ``cutoff`` (oldest first), with their attempts."""

    async def list_for_work(self, work_id: int, limit: int) -> list[Notification]:
        """The notifications about one work order, oldest first."""

    async def due_backlog(self, now: datetime) -> tuple[int, datetime | None]:
        """How many notifications are due by ``now``, and when the oldest of them became due."""


@runtime_checkable
class DeliveryAttemptRepository(Protocol):
    """The per-attempt audit trail."""

    async def add_many(self, attempts: Sequence[DeliveryAttempt]) -> None: ...

    async def for_notifications(self, notification_ids: Collection[int]) -> list[DeliveryAttempt]:
        """The attempts of these notifications, in the order they were made."""

    async def delete_before(self, cutoff: datetime, limit: int) -> int:
        """Forget at most ``limit`` attempts made before ``cutoff`` (the retention sweep); returns how many."""


@dataclass(frozen=True)
class MinuteActivity:
    """Notifications created in one minute, and how many of those were delivered (acknowledged) or failed."""

    minute: datetime
    created: int
    delivered: int
    failed: int


@runtime_checkable
class OperatorQueries(Protocol):
    """What the ops console reads beyond the repositories: overviews across users."""

    async def orders_by_status(self) -> dict[str, int]: ...

    async def recent_orders(self, limit: int, party_id: int | None = None) -> list[WorkOrder]:
        """Newest orders first; with ``party_id``, only those where that user is the seeker or the provider."""

    async def devices_of(self, user_id: int) -> list[DeviceToken]:
        """All the user's devices, invalidated ones included, newest first."""

    async def activity_per_minute(self, since: datetime) -> list[MinuteActivity]:
        """Per minute since ``since`` (minutes without notifications are absent), oldest first."""


@dataclass(frozen=True)
class StoredAnswer:
    """What an idempotency key remembers: the request it was used for, and the answer it got."""

    fingerprint: str
    created_at: datetime
    status_code: int | None
    body: str | None
    final: bool


@runtime_checkable
class IdempotencyRepository(Protocol):
    async def claim(self, user_id: int, key: str, fingerprint: str, now: datetime) -> StoredAnswer | None:
        """Claim the user's key for this request (None), or return what it holds if it was claimed before.

        A claim by a concurrent transaction is waited for (PostgreSQL) or serialized (SQLite)."""

    async def save_answer(self, user_id: int, key: str, status_code: int, body: str, final: bool) -> None: ...

    async def delete_before(self, cutoff: datetime, limit: int) -> int:
        """Forget at most ``limit`` keys claimed before ``cutoff``; returns how many."""


class UnitOfWork(Protocol):
    """One transaction over all repositories: commit makes every change durable, anything else undoes all.

    ``async with uow:`` rolls back on exit unless ``commit()`` was called.
    """

    profiles: ProfileRepository
    devices: DeviceTokenRepository
    work_orders: WorkOrderRepository
    notifications: NotificationRepository
    attempts: DeliveryAttemptRepository
    operator: OperatorQueries
    idempotency: IdempotencyRepository
    nearby: NearbyProviders

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    async def commit(self) -> None: ...

    async def rollback(self) -> None: ...


UnitOfWorkFactory = Callable[[], UnitOfWork]
"""A unit of work of its own per call. Another kind the composition root may hand a use case whose only write is
one statement: a *single-write* factory, whose units skip the transaction where the store allows (PostgreSQL in
autocommit: no BEGIN/COMMIT round trips). There every statement is durable when it returns and ``commit()`` adds
nothing, so such a use case must make its changes in exactly one repository call."""


# --- push -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PushMessage:
    """A push notification, independent of the push service."""

    title: str
    body: str
    data: Mapping[str, str]
    time_to_live: timedelta
    high_priority: bool = True
    # For the app to render the text in the user's language: string keys in its resources, and their
    # arguments (title and body take the same ones). ``title``/``body`` are the English fallback.
    title_loc_key: str | None = None
    body_loc_key: str | None = None
    loc_args: tuple[str, ...] = ()
    # Quiet hours: data only on Android, content-available on APNs; no title, body, sound or alert.
    silent: bool = False


@dataclass(frozen=True)
class PushSent:
    message_id: str


@dataclass(frozen=True)
class PushTokenInvalid:
    """The push service says the device is gone or not ours: invalidate it and do not retry."""

    reason: str


@dataclass(frozen=True)
class PushRetryLater:
    """A passing failure (quota, outage, timeout): try again, not before ``retry_after`` if given."""

    reason: str
    retry_after: timedelta | None = None


@dataclass(frozen=True)
class PushFailed:
    """A failure retrying will not fix (bad credentials, rejected payload): record it."""

    reason: str


PushResult = PushSent | PushTokenInvalid | PushRetryLater | PushFailed


@runtime_checkable
class PushSender(Protocol):
    async def send(self, message: PushMessage, devices: Sequence[DeviceToken]) -> list[PushResult]:
        """Send one message to each device; the results are in the order of ``devices``."""


# --- metrics --------------------------------------------------------------------------------------------


@runtime_checkable
class DeliveryMetrics(Protocol):
    """What delivery counts for operators. Labels are bounded: kinds, channels, outcomes, FCM error codes."""

    def notification_created(self, kind: str) -> None: ...

    def channel_outcome(self, channel: str, outcome: str, seconds_since_created: float | None = None) -> None:
        """A channel attempt ended (``sent``, ``not_connected``, ``pending``, ``failed``, ``skipped``); for a
        success, how long after the notification was committed."""

    def push_error(self, code: str) -> None: ...

    def acknowledged(self, channel: str, kind: str, seconds_since_created: float) -> None:
        """The app confirmed it showed a notification (``socket`` or ``http``)."""

    def opened(self, channel: str, kind: str, seconds_since_created: float) -> None:
        """The user opened a notification (tapped the push or the in-app item)."""

    def push_accepted(self, platform: str) -> None:
        """FCM accepted a push for a device of this platform (the funnel by platform)."""


class NoDeliveryMetrics(DeliveryMetrics):
    """Counting nothing: unit tests and tools that expose no metrics."""

    def notification_created(self, kind: str) -> None:
        return None

    def channel_outcome(self, channel: str, outcome: str, seconds_since_created: float | None = None) -> None:
        return None

    def push_error(self, code: str) -> None:
        return None

    def acknowledged(self, channel: str, kind: str, seconds_since_created: float) -> None:
        return None

    def opened(self, channel: str, kind: str, seconds_since_created: float) -> None:
        return None

    def push_accepted(self, platform: str) -> None:
        return None


# --- limits -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LimitDecision:
    allowed: bool
    retry_after: float  # seconds until the request would be allowed (0 when it is)


@runtime_checkable
class RateLimiter(Protocol):
    async def take(self, key: str, rate: Rate, cost: int = 1) -> LimitDecision:
        """Take ``cost`` from the key's bucket if it holds that much. ``LimiterUnavailable`` when it cannot tell."""

    async def close(self) -> None: ...


# --- identity -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifiedToken:
    """A token whose signature, time and claims were checked: who it names, and what else it says."""

    subject: str  # the external id of the user (the configured user claim)
    claims: Mapping[str, Any]


@runtime_checkable
class TokenVerifier(Protocol):
    async def verify(self, token: str) -> VerifiedToken:
        """Check the token; ``InvalidToken`` if it is not good, ``KeysUnavailable`` if it cannot be checked now."""


# --- real time --------------------------------------------------------------------------------------

SocketSink = Callable[[str], Awaitable[None]]
"""Writes one encoded text frame to one live socket."""

BrokerReconnected = Callable[[list[int], timedelta], Awaitable[None]]
"""Called after the broker's subscription was lost and is back: this instance's users, and for how long
messages to them may have been missed."""


@runtime_checkable
class RealtimeBroker(Protocol):
    async def publish(self, user_id: int, message: Mapping[str, Any]) -> int:
        """Send the message to every live socket of the user; return how many received it.

        Raises ``BrokerUnavailable`` when the message could not be carried at all.
        """

    async def subscribe(self, user_id: int, sink: SocketSink) -> None:
        """Start delivering the user's messages to this socket."""

    async def unsubscribe(self, user_id: int, sink: SocketSink) -> None: ...

    async def is_healthy(self) -> bool:
        """Can messages be carried right now? (Readiness checks ask this.)"""

    def on_reconnect(self, callback: BrokerReconnected) -> None:
        """Call ``callback`` each time the subscription comes back after a loss (never, for an in-process broker)."""

    async def online(self, user_ids: Collection[int]) -> set[int]:
        """Which of these users have a live socket right now, on any instance.

        Raises ``BrokerUnavailable`` when that cannot be known.
        """

    async def start(self) -> None:
        """Connect and start listening (called once, inside the event loop)."""

    async def close(self) -> None: ...


@runtime_checkable
class SocketRegistry(Protocol):
    """Every open socket of each user, on every instance: what caps the sockets one user may hold."""

    async def register(self, user_id: int, socket_id: str, cap: int) -> list[str]:
        """Record a new socket. Returns the user's oldest sockets beyond ``cap`` (forgotten here: the caller
        closes them, wherever they are). ``BrokerUnavailable`` when it cannot tell."""

    async def unregister(self, user_id: int, socket_id: str) -> None: ...


@runtime_checkable
class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
