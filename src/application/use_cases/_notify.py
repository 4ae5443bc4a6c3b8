"""The step every state change shares: turn the orders' events into saved, claimed notifications."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from application.delivery import NotificationDelivery
from application.messages import notifications_for
from application.ports import UnitOfWork
from domain.notifications import Notification, NotificationKind
from domain.preferences import PushMode
from domain.profiles import Profile
from domain.work_orders import WorkOrder


async def save_notifications_for(
    uow: UnitOfWork,
    delivery: NotificationDelivery,
    orders: Sequence[WorkOrder],
    people: Mapping[int, Profile],
    now: datetime,
) -> list[Notification]:
    """Inside the caller's unit of work: create and save the notifications of the orders' events,
    already claimed for a first attempt. (The caller read the parties' devices with their profiles,
    so delivery needs no further read.)"""
    notifications = claimed_notifications_for(delivery, orders, people, now)
    if notifications:
        await uow.notifications.add_many(notifications)
        delivery.created(notifications)
    return notifications


def claimed_notifications_for(
    delivery: NotificationDelivery, orders: Sequence[WorkOrder], people: Mapping[int, Profile], now: datetime
) -> list[Notification]:
    """The notifications of the orders' events (the events are consumed), with the recipients' push preferences
    applied and claimed for a first attempt; not saved yet."""
    notifications: list[Notification] = []
    for order in orders:
        seeker = people[order.seeker_id]
        for event in order.events:
            provider = people[event.provider_id] if event.provider_id is not None else None
            notifications += notifications_for(event, order, seeker, provider, now)
        order.events.clear()
    if not notifications:
        return []
    lease_until = delivery.lease_until()
    for n in notifications:
        _apply_preferences(n, people[n.recipient_id], now)
        n.start_attempt(now, lease_until)
    return notifications


def _apply_preferences(n: Notification, recipient: Profile, now: datetime) -> None:
    """The recipient's push preferences, read when the notification is created (a retry keeps the decision).
    A job offer to a provider who is active for work is critical: always pushed, loud."""
    critical = n.kind is NotificationKind.WORK_ASSIGNED and recipient.is_provider and recipient.is_active_for_work
    match recipient.preferences.push_mode(n.kind, critical, now):
        case PushMode.OFF:
            n.push_turned_off()
        case PushMode.SILENT:
            n.push_silent = True
