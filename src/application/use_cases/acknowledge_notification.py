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

    async def execute(
        self, user_id: int, notification_id: int, over_socket: bool = False, opened: bool = False
    ) -> Notification:
        """``over_socket``: the ack came on a socket, so a socket has the message (recorded sent, whatever a
        slower attempt reports). ``opened``: the user opened it (tapped the push or the item), which
        implies delivered."""
        async with self._uow_factory() as uow:
            await caller_profile(uow, user_id)
            notification = await uow.notifications.get(notification_id)
            if notification is None or notification.recipient_id != user_id:
                # Someone else's notification reads as missing: ids must not reveal what exists.
                raise NotificationNotFound(f"there is no notification {notification_id}")
            first_open = opened and notification.opened_at is None
            if notification.delivered_at is None or over_socket or first_open:
                now = self._clock.now()
                first = notification.delivered_at is None
                if opened:
                    notification.mark_opened(now)
                else:
                    notification.acknowledge(now)
                if over_socket:
                    notification.mark_seen_on_socket()
                await uow.notifications.save_delivery(notification)
                await uow.commit()
                age = max(0.0, (now - notification.created_at).total_seconds())
                if first:
                    self._metrics.acknowledged("socket" if over_socket else "http", notification.kind.value, age)
                if first_open:
                    self._metrics.opened("socket" if over_socket else "http", notification.kind.value, age)
        return notification
