"""What each party is told: notification payloads for sockets and the matching push content."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from application.ports import PushMessage
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
from domain.notifications import Notification, NotificationKind
from domain.profiles import Profile
from domain.work_orders import WorkOrder

DEFAULT_PUSH_TTL = timedelta(hours=24)
# FCM data values must be strings; these payload keys are the ones the app needs to act on a push.
PUSH_DATA_KEYS = ("work_id", "service_type", "status")


def iso_utc(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with a Z suffix, to the second, as the seed shows (2025-01-30T10:30:00Z)."""
    if moment is None:
        return None
    return moment.astimezone(UTC).replace(microsecond=0, tzinfo=None).isoformat() + "Z"


def parse_iso_utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def notifications_for(
    event: Event, order: WorkOrder, seeker: Profile, provider: Profile | None, now: datetime
) -> list[Notification]:
    """The notifications a domain event causes: who must hear about it and what they see.

    ``provider`` is the event's provider: for a broadcast, the one offered, told it was taken, or None
    when the event is the seeker's alone."""
    order_fields = {"work_id": order.id, "service_type": order.service_type, "status": order.status.value}
    match event:
        case WorkAssigned() | WorkOffered():
            assert provider is not None
            broadcast = {"offered_to": len(order.offers)} if isinstance(event, WorkOffered) else {}
            payload = {
                **order_fields,
                "seeker_id": seeker.id,
                "seeker_name": seeker.name,
                "seeker_mobile": seeker.mobile,
                "message": order.message,
                "distance": order.distance,
                "latitude": order.location.latitude,
                "longitude": order.location.longitude,
                "created_at": iso_utc(order.created_at),
                "expires_at": iso_utc(order.expires_at),
                **broadcast,
            }
            return [_new(provider, NotificationKind.WORK_ASSIGNED, order, payload, now)]
        case WorkTaken():
            assert provider is not None
            payload = {**order_fields, "taken_at": iso_utc(order.responded_at or now)}
            return [_new(provider, NotificationKind.WORK_TAKEN, order, payload, now)]
        case WorkAnswered(accepted=accepted):
            assert provider is not None
            payload = {
                **order_fields,
                "accepted": accepted,
                "provider_id": provider.id,
                "provider_name": provider.name,
                "provider_mobile": provider.mobile,
                "responded_at": iso_utc(order.responded_at),
            }
            kind = NotificationKind.WORK_ACCEPTED if accepted else NotificationKind.WORK_REJECTED
            return [_new(seeker, kind, order, payload, now)]
        case WorkCancelled():
            assert provider is not None
            payload = {**order_fields, "seeker_id": seeker.id, "seeker_name": seeker.name, "cancelled_at": iso_utc(now)}
            return [_new(provider, NotificationKind.WORK_CANCELLED, order, payload, now)]
        case WorkCompleted():
            assert provider is not None
            payload = {
                **order_fields,
                "provider_id": provider.id,
                "provider_name": provider.name,
                "completed_at": iso_utc(order.closed_at or now),
            }
            return [_new(seeker, NotificationKind.WORK_COMPLETED, order, payload, now)]
        case WorkExpired(tell_seeker=tell_seeker):
            # Both hear of it: the seeker to look for someone else, the provider to drop the stale offer.
            payload = {
                **order_fields,
                "provider_id": provider.id if provider else None,
                "provider_name": provider.name if provider else None,
                "expired_at": iso_utc(now),
            }
            told = [seeker] if tell_seeker else []
            told += [provider] if provider else []
            return [_new(person, NotificationKind.WORK_EXPIRED, order, payload, now) for person in told]
    return []


def _new(recipient: Profile, kind: NotificationKind, order: WorkOrder, payload: dict, now: datetime) -> Notification:
    assert recipient.id is not None and order.id is not None
    return Notification(recipient_id=recipient.id, kind=kind, work_id=order.id, payload=payload, created_at=now)


def push_for(notification: Notification, now: datetime) -> PushMessage | None:
    """The push matching a notification, or None when it would arrive too late to matter (offer expired)."""
    p = notification.payload
    service = p.get("service_type", "work")
    ttl = DEFAULT_PUSH_TTL
    match notification.kind:
        case NotificationKind.WORK_ASSIGNED:
            # loc args: service, seeker name, message, distance (the last two may be empty)
            who = p.get("seeker_name", "A seeker")
            args = (service, who, p.get("message") or "", p.get("distance") or "")
            title = f"New {service} job"
            body = p.get("message") or f"{who} needs a {service}"
            if p.get("distance"):
                body = f"{body} ({p['distance']} away)"
            ttl = parse_iso_utc(p["expires_at"]) - now
            if ttl <= timedelta(0):
                return None
        case NotificationKind.WORK_ACCEPTED:
            who = p.get("provider_name", "The provider")
            title, body, args = "Job accepted", f"{who} accepted your {service} job", (service, who)
        case NotificationKind.WORK_REJECTED:
            who = p.get("provider_name", "The provider")
            title, body, args = "Job declined", f"{who} declined your {service} job", (service, who)
        case NotificationKind.WORK_CANCELLED:
            who = p.get("seeker_name", "The seeker")
            title, body, args = "Job cancelled", f"{who} cancelled the {service} job", (service, who)
        case NotificationKind.WORK_EXPIRED:
            title, body, args = "Job expired", f"Nobody answered the {service} job in time", (service,)
        case NotificationKind.WORK_COMPLETED:
            who = p.get("provider_name", "The provider")
            title, body, args = "Job done", f"{who} completed your {service} job", (service, who)
        case NotificationKind.WORK_TAKEN:
            title, body, args = "Job taken", f"Another provider took the {service} job", (service,)
    data = {"type": notification.kind.value, "notification_id": str(notification.id)}
    data.update({key: str(p[key]) for key in PUSH_DATA_KEYS if p.get(key) is not None})
    kind = notification.kind.value
    return PushMessage(
        title=title,
        body=body[:240],
        data=data,
        time_to_live=ttl,
        title_loc_key=f"{kind}_title",
        body_loc_key=f"{kind}_body",
        loc_args=tuple(str(a)[:240] for a in args),
        silent=notification.push_silent,
    )
