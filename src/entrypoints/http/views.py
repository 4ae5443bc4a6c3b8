"""Domain objects to wire shapes."""

from __future__ import annotations

from application.messages import iso_utc
from application.use_cases.get_work_order_timeline import Timeline
from application.use_cases.list_active_providers import ActiveProvider
from domain.audit import DeliveryAttempt
from domain.devices import DeviceToken
from domain.notifications import Notification
from domain.profiles import Profile
from domain.work_orders import WorkOrder
from entrypoints.http.schemas import (
    ActiveProviderData,
    AttemptData,
    DeviceData,
    NotificationData,
    ProfileData,
    TimelineData,
    TimelineEventData,
    TimelineNotificationData,
    WorkOrderData,
)


def work_order(order: WorkOrder) -> WorkOrderData:
    assert order.id is not None
    return WorkOrderData(
        id=order.id,
        work_id=order.id,
        seeker_id=order.seeker_id,
        provider_id=order.provider_id,
        service_type=order.service_type,
        message=order.message,
        distance=order.distance,
        latitude=order.location.latitude,
        longitude=order.location.longitude,
        status=order.status.value,
        created_at=iso_utc(order.created_at) or "",
        expires_at=iso_utc(order.expires_at) or "",
        responded_at=iso_utc(order.responded_at),
        closed_at=iso_utc(order.closed_at),
    )


def active_provider(found: ActiveProvider) -> ActiveProviderData:
    p = found.profile
    assert p.id is not None
    return ActiveProviderData(
        id=p.id,
        name=p.name,
        mobile=p.mobile,
        latitude=p.location.latitude if p.location else None,
        longitude=p.location.longitude if p.location else None,
        distance_km=round(found.distance_km, 3) if found.distance_km is not None else None,
        online=found.online,
    )


def profile(p: Profile, devices: list[DeviceToken]) -> ProfileData:
    assert p.id is not None
    return ProfileData(
        id=p.id,
        external_id=p.external_id,
        role=p.role.value,
        name=p.name,
        mobile=p.mobile,
        is_active_for_work=p.is_active_for_work,
        latitude=p.location.latitude if p.location else None,
        longitude=p.location.longitude if p.location else None,
        devices=[DeviceData(d.id or 0, d.platform, d.kind.value, iso_utc(d.registered_at) or "") for d in devices],
    )


def notification(n: Notification) -> NotificationData:
    assert n.id is not None
    return NotificationData(
        id=n.id,
        type=n.kind.value,
        work_id=n.work_id,
        payload=n.payload,
        delivery_status=n.delivery_status.value,
        push_state=n.push_state.value,
        push_error=n.push_error,
        socket_state=n.socket_state.value,
        socket_error=n.socket_error,
        attempts=n.attempts,
        next_attempt_at=iso_utc(n.next_attempt_at),
        created_at=iso_utc(n.created_at) or "",
        delivered_at=iso_utc(n.delivered_at),
        opened_at=iso_utc(n.opened_at),
    )


def attempt(a: DeliveryAttempt) -> AttemptData:
    return AttemptData(
        a.notification_id, a.channel, a.device_id, iso_utc(a.at) or "", a.outcome.value, a.detail, a.duration_ms,
        a.instance,
    )  # fmt: skip


def timeline(t: Timeline) -> TimelineData:
    by_notification: dict[int, list[AttemptData]] = {}
    for a in t.attempts:
        by_notification.setdefault(a.notification_id, []).append(attempt(a))
    return TimelineData(
        order=work_order(t.order),
        notifications=[
            TimelineNotificationData(notification(n), n.recipient_id, by_notification.get(n.id or 0, []))
            for n in t.notifications
        ],
        events=[TimelineEventData(iso_utc(e.at) or "", e.event, e.details) for e in t.events],
    )
