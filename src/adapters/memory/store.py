"""Repositories and a unit of work kept in process memory, with the semantics of the SQL ones.

Every read returns a copy and every write stores a copy, so an entity changed but not saved stays
unchanged in the store, and a unit of work that is not committed leaves no trace. Units of work run
one at a time (a lock held from enter to exit), which is what makes ``save_transition`` race-free.
"""

from __future__ import annotations

import asyncio
import copy
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import TracebackType
from typing import Self, TypeVar

from adapters.geo.memory import MemoryNearbyProviders
from application.errors import DuplicateExternalId
from application.ports import (
    AssignmentReads,
    DeliveryAttemptRepository,
    DeliveryStats,
    DeviceTokenRepository,
    IdempotencyRepository,
    MinuteActivity,
    NotificationRepository,
    OperatorQueries,
    ProfileRepository,
    StoredAnswer,
    UnitOfWork,
    WorkOrderRepository,
)
from application.remembered_profiles import reads_the_same
from domain.audit import DETAIL_MAX, DeliveryAttempt
from domain.devices import DeviceToken
from domain.notifications import DeliveryStatus, Notification, NotificationKind, PushState, SocketState
from domain.profiles import Profile, Role
from domain.work_orders import CLOSED_STATUSES, ERASED_PLACE, PERSONAL_PAYLOAD_KEYS, WorkOrder, WorkStatus


@dataclass
class MemoryTables:
    profiles: dict[int, Profile] = field(default_factory=dict)
    devices: dict[int, DeviceToken] = field(default_factory=dict)
    work_orders: dict[int, WorkOrder] = field(default_factory=dict)
    notifications: dict[int, Notification] = field(default_factory=dict)
    attempts: dict[int, DeliveryAttempt] = field(default_factory=dict)
    answers: dict[tuple[int, str], StoredAnswer] = field(default_factory=dict)
    last_ids: dict[str, int] = field(
        default_factory=lambda: {"profiles": 0, "devices": 0, "work_orders": 0, "notifications": 0, "attempts": 0}
    )

    def copy(self) -> MemoryTables:
        # Entities are copied on every read and write, so sharing them between versions is safe.
        return MemoryTables(
            dict(self.profiles),
            dict(self.devices),
            dict(self.work_orders),
            dict(self.notifications),
            dict(self.attempts),
            dict(self.answers),
            dict(self.last_ids),
        )

    def next_id(self, table: str) -> int:
        self.last_ids[table] += 1
        return self.last_ids[table]


class MemoryStore:
    """The committed state shared by all units of work of one process."""

    def __init__(self) -> None:
        self.tables = MemoryTables()
        self.lock = asyncio.Lock()
        self.commits = 0


T = TypeVar("T")


def _copy(entity: T) -> T:
    return copy.deepcopy(entity)


class MemoryProfileRepository(ProfileRepository):
    def __init__(self, tables: MemoryTables) -> None:
        self._t = tables

    async def add(self, profile: Profile) -> Profile:
        if profile.external_id is not None and await self.get_by_external_id(profile.external_id):
            raise DuplicateExternalId(profile.external_id)  # the unique index, as the SQL stores have it
        profile.id = self._t.next_id("profiles")
        if profile.external_id is None:
            profile.external_id = str(profile.id)
        self._t.profiles[profile.id] = _copy(profile)
        return profile

    async def get(self, profile_id: int) -> Profile | None:
        found = self._t.profiles.get(profile_id)
        return _copy(found) if found and found.deleted_at is None else None

    async def get_by_external_id(self, external_id: str) -> Profile | None:
        for p in self._t.profiles.values():
            if p.external_id == external_id and p.deleted_at is None:
                return _copy(p)
        return None

    async def add_many(self, new: Sequence[Profile]) -> None:
        for profile in new:
            await self.add(profile)

    async def save_many(self, changed: Sequence[Profile]) -> None:
        for profile in changed:
            await self.save(profile)

    async def by_external_ids(self, external_ids: Collection[str]) -> dict[str, Profile]:
        wanted = set(external_ids)
        return {
            p.external_id: _copy(p)
            for p in self._t.profiles.values()
            if p.external_id in wanted and p.deleted_at is None and p.external_id is not None
        }

    async def has_open_orders(self, profile_id: int) -> bool:
        return any(
            profile_id in (o.seeker_id, o.provider_id) and o.status in (WorkStatus.PENDING, WorkStatus.ACCEPTED)
            for o in self._t.work_orders.values()
        )

    async def get_many_with_devices(
        self, profile_ids: Collection[int]
    ) -> tuple[dict[int, Profile], dict[int, list[DeviceToken]]]:
        people = {i: _copy(self._t.profiles[i]) for i in profile_ids if i in self._t.profiles}
        return people, await MemoryDeviceTokenRepository(self._t).active_for_users(people.keys())

    async def existing_ids(self, profile_ids: Collection[int]) -> set[int]:
        return {i for i in profile_ids if i in self._t.profiles and self._t.profiles[i].deleted_at is None}

    async def erased_since(self, since: datetime) -> set[int]:
        return {i for i, p in self._t.profiles.items() if p.deleted_at is not None and p.deleted_at >= since}

    async def save(self, profile: Profile) -> None:
        assert profile.id in self._t.profiles
        self._t.profiles[profile.id] = _copy(profile)

    async def list_active_providers(self, limit: int) -> list[Profile]:
        found = []
        for p in sorted(self._t.profiles.values(), key=lambda p: p.id or 0):
            if p.role is Role.PROVIDER and p.is_active_for_work:
                found.append(_copy(p))
                if len(found) == limit:
                    break
        return found


class MemoryDeviceTokenRepository(DeviceTokenRepository):
    def __init__(self, tables: MemoryTables) -> None:
        self._t = tables

    async def get_by_token(self, token: str) -> DeviceToken | None:
        for d in self._t.devices.values():
            if d.token == token:
                return _copy(d)
        return None

    async def add(self, device: DeviceToken) -> DeviceToken:
        device.id = self._t.next_id("devices")
        self._t.devices[device.id] = _copy(device)
        return device

    async def save(self, device: DeviceToken) -> None:
        assert device.id in self._t.devices
        self._t.devices[device.id] = _copy(device)

    async def by_tokens(self, tokens: Collection[str]) -> dict[str, DeviceToken]:
        wanted = set(tokens)
        return {d.token: _copy(d) for d in self._t.devices.values() if d.token in wanted}

    async def add_many(self, new: Sequence[DeviceToken]) -> None:
        for device in new:
            await self.add(device)

    async def save_many(self, changed: Sequence[DeviceToken]) -> None:
        for device in changed:
            await self.save(device)

    async def remove_for_user(self, user_id: int, token: str | None = None) -> int:
        gone = [i for i, d in self._t.devices.items() if d.user_id == user_id and (token is None or d.token == token)]
        for i in gone:
            del self._t.devices[i]
        return len(gone)

    async def active_for_users(self, user_ids: Collection[int]) -> dict[int, list[DeviceToken]]:
        found: dict[int, list[DeviceToken]] = {}
        for d in sorted(self._t.devices.values(), key=lambda d: (d.registered_at, d.id or 0)):
            if d.user_id in user_ids and d.is_active:
                found.setdefault(d.user_id, []).append(_copy(d))
        return found

    async def invalidate(self, reasons: Mapping[int, str], at: datetime) -> None:
        for device_id, reason in reasons.items():
            if device_id in self._t.devices:
                device = _copy(self._t.devices[device_id])
                device.invalidate(reason, at)
                self._t.devices[device_id] = device


class MemoryWorkOrderRepository(WorkOrderRepository):
    def __init__(self, tables: MemoryTables) -> None:
        self._t = tables

    async def add(self, order: WorkOrder) -> WorkOrder:
        order.id = self._t.next_id("work_orders")
        self._t.work_orders[order.id] = _stored_order(order)
        return order

    async def get(self, order_id: int, lock: bool = False) -> WorkOrder | None:
        found = self._t.work_orders.get(order_id)
        return _copy(found) if found else None

    async def save_declines(self, order: WorkOrder) -> None:
        stored = self._t.work_orders[order.id or 0]
        for provider_id, declined in order.offers.items():
            if declined is not None and stored.offers.get(provider_id) is None:
                stored.offers[provider_id] = declined

    async def save_transition(self, order: WorkOrder, from_status: WorkStatus) -> bool:
        stored = self._t.work_orders.get(order.id or 0)
        if stored is None or stored.status is not from_status:
            return False
        self._t.work_orders[stored.id] = _stored_order(order)  # type: ignore[index]
        return True

    async def list_for_user(
        self, user_id: int, role: Role, status: WorkStatus | None, limit: int, before_id: int | None
    ) -> list[WorkOrder]:
        mine = (
            o
            for o in self._t.work_orders.values()
            if (o.seeker_id if role is Role.SEEKER else o.provider_id) == user_id
            and (status is None or o.status is status)
            and (before_id is None or (o.id or 0) < before_id)
        )
        return [_copy(o) for o in sorted(mine, key=lambda o: o.id or 0, reverse=True)[:limit]]

    async def anonymise_for_user(self, user_id: int) -> None:
        for order in self._t.work_orders.values():
            if order.seeker_id == user_id:
                order.message, order.location = "", ERASED_PLACE

    async def delete_closed_before(self, cutoff: datetime, limit: int) -> int:
        old = sorted(
            o.id or 0
            for o in self._t.work_orders.values()
            if o.status in CLOSED_STATUSES and o.closed_at is not None and o.closed_at < cutoff
        )[:limit]
        for order_id in old:
            del self._t.work_orders[order_id]
            for n in [n for n in self._t.notifications.values() if n.work_id == order_id]:
                _forget_notification(self._t, n.id or 0)
        return len(old)

    async def read_for_assignment(
        self, seeker_id: int, provider_id: int, now: datetime, pending_cap: int
    ) -> AssignmentReads:
        people, devices = await MemoryProfileRepository(self._t).get_many_with_devices({seeker_id, provider_id})
        pending = await self.count_pending_for_seeker(seeker_id, now, pending_cap) if pending_cap else 0
        return AssignmentReads(people, devices, pending, self._t.next_id("work_orders"))

    def reserved_order_id(self) -> int | None:
        return self._t.next_id("work_orders")  # ids cost nothing here: always one at hand

    async def add_assignment_if_current(
        self, order: WorkOrder, notification: Notification, seeker: Profile, provider: Profile, pending_cap: int
    ) -> list[DeviceToken] | None:
        assert order.id is not None and not order.is_broadcast
        stored = self._t.profiles
        if not all(p.id in stored and reads_the_same(p, stored[p.id]) for p in (seeker, provider)):
            return None
        pending = await self.count_pending_for_seeker(order.seeker_id, order.created_at, pending_cap)
        if pending_cap and pending >= pending_cap:
            return None
        self._t.work_orders[order.id] = _stored_order(order)
        await MemoryNotificationRepository(self._t).add_many([notification])
        devices = await MemoryDeviceTokenRepository(self._t).active_for_users([notification.recipient_id])
        return devices.get(notification.recipient_id, [])

    async def count_pending_for_seeker(self, seeker_id: int, now: datetime, up_to: int) -> int:
        pending = [
            o
            for o in self._t.work_orders.values()
            if o.seeker_id == seeker_id and o.status is WorkStatus.PENDING and o.expires_at > now
        ]
        return min(len(pending), up_to)

    async def overdue(self, now: datetime, limit: int) -> list[WorkOrder]:
        due = [o for o in self._t.work_orders.values() if o.status is WorkStatus.PENDING and o.expires_at <= now]
        return [_copy(o) for o in sorted(due, key=lambda o: (o.expires_at, o.id or 0))[:limit]]


def _stored_order(order: WorkOrder) -> WorkOrder:
    stored = _copy(order)
    stored.events = []  # events belong to the use case that raised them, not to the store
    return stored


class MemoryNotificationRepository(NotificationRepository):
    def __init__(self, tables: MemoryTables) -> None:
        self._t = tables

    async def add_many(self, notifications: Sequence[Notification]) -> None:
        for n in notifications:
            n.id = self._t.next_id("notifications")
            self._t.notifications[n.id] = _copy(n)

    async def get(self, notification_id: int) -> Notification | None:
        found = self._t.notifications.get(notification_id)
        return _copy(found) if found else None

    async def get_many(self, notification_ids: Collection[int]) -> list[Notification]:
        return [_copy(self._t.notifications[i]) for i in sorted(set(notification_ids)) if i in self._t.notifications]

    async def save_delivery(self, notification: Notification) -> None:
        stored = self._t.notifications[notification.id]  # type: ignore[index]
        new = _copy(notification)
        # Never move back (see the port): sent channels and acknowledgements stick.
        if stored.push_state is PushState.SENT:
            new.push_state, new.push_message_id, new.push_error = PushState.SENT, stored.push_message_id, None
        if stored.socket_state is SocketState.SENT:
            new.socket_state, new.socket_error = SocketState.SENT, None
        new.delivered_at = stored.delivered_at or new.delivered_at
        new.opened_at = stored.opened_at or new.opened_at
        if new.delivered_at is not None:
            new.next_attempt_at = None  # acknowledged: nothing is sent again
        self._t.notifications[new.id] = new  # type: ignore[index]

    async def save_deliveries(self, notifications: Sequence[Notification]) -> None:
        for n in notifications:
            await self.save_delivery(n)

    async def claim_due(self, now: datetime, limit: int) -> list[Notification]:
        due = [
            n
            for n in self._t.notifications.values()
            if n.next_attempt_at is not None and n.next_attempt_at <= now and n.delivered_at is None
        ]
        due.sort(key=lambda n: (n.next_attempt_at, n.id or 0))
        return [_copy(n) for n in due[:limit]]

    async def replay_for_user(
        self, user_id: int, since: datetime, now: datetime, limit: int
    ) -> list[tuple[Notification, WorkStatus]]:
        found = []
        for n in self._t.notifications.values():
            if n.recipient_id != user_id or n.delivered_at is not None or n.created_at < since:
                continue
            order = self._t.work_orders[n.work_id]
            if n.kind is NotificationKind.WORK_ASSIGNED and not (
                order.status is WorkStatus.PENDING and order.expires_at > now
            ):
                continue  # an offer that can no longer be taken is not shown as one
            found.append((_copy(n), order.status))
        return sorted(found, key=lambda pair: -(pair[0].id or 0))[:limit]

    async def anonymise_for_user(self, user_id: int) -> None:
        orders = {o.id for o in self._t.work_orders.values() if user_id in (o.seeker_id, o.provider_id)}
        for n in self._t.notifications.values():
            if n.work_id in orders:
                n.payload = {k: v for k, v in n.payload.items() if k not in PERSONAL_PAYLOAD_KEYS}

    async def retry_sockets_now(self, user_ids: Collection[int], since: datetime, now: datetime) -> int:
        users = set(user_ids)
        changed = 0
        for n in self._t.notifications.values():
            if n.delivered_at is not None:
                continue
            order = self._t.work_orders[n.work_id]
            actionable = n.kind is not NotificationKind.WORK_ASSIGNED or order.status is WorkStatus.PENDING
            missed = (
                n.recipient_id in users
                and n.socket_state is SocketState.NOT_CONNECTED
                and n.created_at >= since
                and actionable
            )
            if missed:
                n.socket_retry("missed_during_broker_outage")
                n.next_attempt_at = now
                changed += 1
            elif (
                n.socket_state is SocketState.PENDING
                and n.socket_error == "broker_unavailable"
                and n.next_attempt_at is not None
                and n.next_attempt_at > now
            ):
                n.next_attempt_at = now
                changed += 1
        return changed

    async def acknowledge_offers(self, work_id: int, recipient_id: int | None, now: datetime) -> None:
        for n in self._t.notifications.values():
            mine = recipient_id is None or n.recipient_id == recipient_id
            if n.work_id == work_id and mine and n.kind is NotificationKind.WORK_ASSIGNED:
                n.acknowledge(now)

    async def delivery_stats(self, since: datetime, top_errors: int) -> DeliveryStats:
        recent = [n for n in self._t.notifications.values() if n.created_at >= since]
        errors = Counter(n.push_error for n in recent if n.push_error)
        by_kind: dict[str, dict[str, int]] = {}
        for n in recent:
            funnel = by_kind.setdefault(
                n.kind.value, {"created": 0, "sent": 0, "pushed": 0, "on_socket": 0, "delivered": 0, "opened": 0}
            )
            funnel["created"] += 1
            funnel["sent"] += n.delivery_status.value in ("sent", "delivered")
            funnel["pushed"] += n.push_state is PushState.SENT
            funnel["on_socket"] += n.socket_state is SocketState.SENT
            funnel["delivered"] += n.delivered_at is not None
            funnel["opened"] += n.opened_at is not None
        by_platform: dict[str, dict[str, int]] = {}
        recent_ids = {n.id: n for n in recent}
        pushed_to = {
            (a.notification_id, self._t.devices[a.device_id].platform)
            for a in self._t.attempts.values()
            if a.channel == "push"
            and a.outcome == "sent"
            and a.notification_id in recent_ids
            and a.device_id in self._t.devices
        }
        for notification_id, platform in pushed_to:
            n = recent_ids[notification_id]
            funnel = by_platform.setdefault(platform, {"pushed": 0, "delivered": 0, "opened": 0})
            funnel["pushed"] += 1
            funnel["delivered"] += n.delivered_at is not None
            funnel["opened"] += n.opened_at is not None
        return DeliveryStats(
            by_kind=by_kind,
            by_platform=by_platform,
            opened=sum(n.opened_at is not None for n in recent),
            total=len(recent),
            by_delivery_status=dict(Counter(n.delivery_status.value for n in recent)),
            by_push_state=dict(Counter(n.push_state.value for n in recent)),
            by_socket_state=dict(Counter(n.socket_state.value for n in recent)),
            push_errors=dict(errors.most_common(top_errors)),
        )

    async def response_times(self, since: datetime, limit: int) -> tuple[list[float], list[float]]:
        acked = sorted(
            (n for n in self._t.notifications.values() if n.created_at >= since and n.delivered_at is not None),
            key=lambda n: -(n.id or 0),
        )[:limit]
        to_ack = [max(0.0, (n.delivered_at - n.created_at).total_seconds()) for n in acked]  # type: ignore[operator]
        to_open = [max(0.0, (n.opened_at - n.created_at).total_seconds()) for n in acked if n.opened_at is not None]
        return to_ack, to_open

    async def list_for_user(self, user_id: int, limit: int, before_id: int | None) -> list[Notification]:
        found = [
            n
            for n in self._t.notifications.values()
            if n.recipient_id == user_id and (before_id is None or (n.id or 0) < before_id)
        ]
        return [_copy(n) for n in sorted(found, key=lambda n: n.id or 0, reverse=True)[:limit]]

    async def delete_before(self, cutoff: datetime, limit: int) -> int:
        old = sorted(i for i, n in self._t.notifications.items() if n.created_at < cutoff)[:limit]
        for notification_id in old:
            _forget_notification(self._t, notification_id)
        return len(old)

    async def list_for_work(self, work_id: int, limit: int) -> list[Notification]:
        found = sorted((n for n in self._t.notifications.values() if n.work_id == work_id), key=lambda n: n.id or 0)
        return [_copy(n) for n in found[:limit]]

    async def due_backlog(self, now: datetime) -> tuple[int, datetime | None]:
        due = [
            n.next_attempt_at
            for n in self._t.notifications.values()
            if n.next_attempt_at is not None and n.next_attempt_at <= now
        ]
        return len(due), min(due, default=None)


def _forget_notification(tables: MemoryTables, notification_id: int) -> None:
    """A notification and its attempts (the SQL stores cascade)."""
    tables.notifications.pop(notification_id, None)
    for attempt_id in [i for i, a in tables.attempts.items() if a.notification_id == notification_id]:
        del tables.attempts[attempt_id]


class MemoryDeliveryAttemptRepository(DeliveryAttemptRepository):
    def __init__(self, tables: MemoryTables) -> None:
        self._t = tables

    async def add_many(self, attempts: Sequence[DeliveryAttempt]) -> None:
        for attempt in attempts:
            new_id = self._t.next_id("attempts")
            detail = attempt.detail[:DETAIL_MAX] if attempt.detail else None
            self._t.attempts[new_id] = replace(attempt, id=new_id, detail=detail, instance=attempt.instance[:64])

    async def for_notifications(self, notification_ids: Collection[int]) -> list[DeliveryAttempt]:
        wanted = set(notification_ids)
        found = [a for a in self._t.attempts.values() if a.notification_id in wanted]
        return sorted(found, key=lambda a: (a.at, a.id or 0))

    async def delete_before(self, cutoff: datetime, limit: int) -> int:
        old = sorted((a for a in self._t.attempts.values() if a.at < cutoff), key=lambda a: a.at)[:limit]
        for attempt in old:
            del self._t.attempts[attempt.id]  # type: ignore[arg-type]
        return len(old)


class MemoryOperatorQueries(OperatorQueries):
    def __init__(self, tables: MemoryTables) -> None:
        self._t = tables

    async def orders_by_status(self) -> dict[str, int]:
        return dict(Counter(o.status.value for o in self._t.work_orders.values()))

    async def recent_orders(self, limit: int, party_id: int | None = None) -> list[WorkOrder]:
        found = [o for o in self._t.work_orders.values() if party_id is None or o.is_party(party_id)]
        return [_stored_order(o) for o in sorted(found, key=lambda o: o.id or 0, reverse=True)[:limit]]

    async def devices_of(self, user_id: int) -> list[DeviceToken]:
        found = [d for d in self._t.devices.values() if d.user_id == user_id]
        return [_copy(d) for d in sorted(found, key=lambda d: d.id or 0, reverse=True)]

    async def activity_per_minute(self, since: datetime) -> list[MinuteActivity]:
        minutes: dict[datetime, list[int]] = {}
        for n in self._t.notifications.values():
            if n.created_at < since:
                continue
            counts = minutes.setdefault(n.created_at.replace(second=0, microsecond=0), [0, 0, 0])
            counts[0] += 1
            counts[1] += n.delivered_at is not None
            counts[2] += n.delivery_status is DeliveryStatus.FAILED
        return [MinuteActivity(minute, *counts) for minute, counts in sorted(minutes.items())]


class MemoryIdempotencyRepository(IdempotencyRepository):
    def __init__(self, tables: MemoryTables) -> None:
        self._t = tables

    async def claim(self, user_id: int, key: str, fingerprint: str, now: datetime) -> StoredAnswer | None:
        found = self._t.answers.get((user_id, key))
        if found is None:
            self._t.answers[(user_id, key)] = StoredAnswer(fingerprint, now, None, None, False)
        return found

    async def save_answer(self, user_id: int, key: str, status_code: int, body: str, final: bool) -> None:
        stored = self._t.answers[(user_id, key)]
        self._t.answers[(user_id, key)] = replace(stored, status_code=status_code, body=body, final=final)

    async def delete_before(self, cutoff: datetime, limit: int) -> int:
        old = [k for k, a in self._t.answers.items() if a.created_at < cutoff][:limit]
        for k in old:
            del self._t.answers[k]
        return len(old)


class MemoryUnitOfWork(UnitOfWork):
    """Works on a private copy of the tables; commit publishes the copy, anything else drops it."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        self._tables: MemoryTables | None = None

    async def __aenter__(self) -> Self:
        await self._store.lock.acquire()
        self._tables = self._store.tables.copy()
        self.profiles = MemoryProfileRepository(self._tables)
        self.devices = MemoryDeviceTokenRepository(self._tables)
        self.work_orders = MemoryWorkOrderRepository(self._tables)
        self.notifications = MemoryNotificationRepository(self._tables)
        self.attempts = MemoryDeliveryAttemptRepository(self._tables)
        self.operator = MemoryOperatorQueries(self._tables)
        self.idempotency = MemoryIdempotencyRepository(self._tables)
        self.nearby = MemoryNearbyProviders(self._tables)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            await self.rollback()
        finally:
            self._store.lock.release()

    async def commit(self) -> None:
        assert self._tables is not None, "commit outside 'async with'"
        self._store.tables = self._tables
        self._store.commits += 1
        self._tables = self._tables.copy()
        self._rebind()

    async def rollback(self) -> None:
        if self._tables is not None:
            self._tables = self._store.tables.copy()
            self._rebind()

    def _rebind(self) -> None:
        assert self._tables is not None
        for repo in (
            self.profiles,
            self.devices,
            self.work_orders,
            self.notifications,
            self.attempts,
            self.operator,
            self.idempotency,
            self.nearby,
        ):
            repo._t = self._tables  # type: ignore[attr-defined]
