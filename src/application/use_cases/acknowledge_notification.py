from __future__ import annotations

from application.ports import Clock, DeliveryMetrics, NoDeliveryMetrics, UnitOfWorkFactory
from application.use_cases._caller import caller_profile
from domain.errors import NotificationNotFound
from domain.notifications import Notification


class AcknowledgeNotification:
    """The app confirms it showed a notification: it counts as delivered and is not replayed again."""

    def __init__(self, uow_factory: UnitOfWorkFactory, clock: Clock, metrics: DeliveryMetrics | None = None) -> None:
        self._uow_factory = uow_factory
        self._clock = clock
        self._metrics = metrics or NoDeliveryMetrics()

    async def execute(self, user_id: int, notification_id: int, over_socket: bool = False) -> Notification:
        """``over_socket``: the ack came on a socket, so a socket has the message (recorded sent, whatever a
        slower attempt reports)."""
        async with self._uow_factory() as uow:
            await caller_profile(uow, user_id)
            notification = await uow.notifications.get(notification_id)
            if notification is None or notification.recipient_id != user_id:
                # Someone else's notification reads as missing: ids must not reveal what exists.
                raise NotificationNotFound(f"there is no notification {notification_id}")
            if notification.delivered_at is None or over_socket:
                now = self._clock.now()
                first = notification.delivered_at is None
                notification.acknowledge(now)
                if over_socket:
                    notification.mark_seen_on_socket()
                await uow.notifications.save_delivery(notification)
                await uow.commit()
                if first:
                    age = max(0.0, (now - notification.created_at).total_seconds())
                    self._metrics.acknowledged("socket" if over_socket else "http", age)
        return notification
