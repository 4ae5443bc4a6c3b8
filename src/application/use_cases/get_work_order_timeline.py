from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from application.ports import UnitOfWorkFactory
from domain.audit import DeliveryAttempt
from domain.errors import WorkOrderNotFound
from domain.notifications import Notification
from domain.work_orders import WorkOrder, WorkStatus

MAX_NOTIFICATIONS = 200  # an order causes a handful; the cap only bounds a pathological one


@dataclass(frozen=True)
class TimelineEvent:
    at: datetime
    event: str  # order_created, notification_created, attempt, acknowledged, answered, closed, expires
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Timeline:
    order: WorkOrder
    notifications: list[Notification]
    attempts: list[DeliveryAttempt]
    events: list[TimelineEvent]


class GetWorkOrderTimeline:
    """For operators: an order's whole life in time order, with every delivery attempt of its notifications."""

    def __init__(self, uow_factory: UnitOfWorkFactory) -> None:
        self._uow_factory = uow_factory

    async def execute(self, work_id: int) -> Timeline:
        async with self._uow_factory() as uow:
            order = await uow.work_orders.get(work_id)
            if order is None:
                raise WorkOrderNotFound(f"there is no work order {work_id}")
            notifications = await uow.notifications.list_for_work(work_id, MAX_NOTIFICATIONS)
            attempts = await uow.attempts.for_notifications([n.id for n in notifications if n.id is not None])
        return Timeline(order, notifications, attempts, _events(order, notifications, attempts))


def _events(
    order: WorkOrder, notifications: list[Notification], attempts: list[DeliveryAttempt]
) -> list[TimelineEvent]:
    events = [
        TimelineEvent(
            order.created_at,
            "order_created",
            {"seeker_id": order.seeker_id, "provider_id": order.provider_id, "service_type": order.service_type},
        )
    ]
    for n in notifications:
        who = {"notification_id": n.id, "kind": n.kind.value, "recipient_id": n.recipient_id}
        events.append(TimelineEvent(n.created_at, "notification_created", who))
        if n.delivered_at is not None:
            events.append(TimelineEvent(n.delivered_at, "acknowledged", who))
    for a in attempts:
        events.append(
            TimelineEvent(
                a.at,
                "attempt",
                {
                    "notification_id": a.notification_id,
                    "channel": a.channel,
                    "device_id": a.device_id,
                    "outcome": a.outcome.value,
                    "detail": a.detail,
                    "duration_ms": a.duration_ms,
                    "instance": a.instance,
                },
            )
        )
    if order.responded_at is not None:
        answer = WorkStatus.ACCEPTED if order.status is not WorkStatus.REJECTED else WorkStatus.REJECTED
        events.append(TimelineEvent(order.responded_at, "answered", {"status": answer.value}))
    if order.closed_at is not None and order.status is not WorkStatus.REJECTED:  # a rejection is its answer
        events.append(TimelineEvent(order.closed_at, "closed", {"status": order.status.value}))
    if order.status is WorkStatus.PENDING:
        events.append(TimelineEvent(order.expires_at, "expires", {}))
    # Stable: at equal times, the order above (created before its attempts, attempts before the answer).
    return sorted(events, key=lambda e: e.at)
