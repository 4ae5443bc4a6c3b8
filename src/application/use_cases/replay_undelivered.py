from __future__ import annotations

from collections.abc import Collection
from typing import Any

from application.policy import DeliveryPolicy
from application.ports import Clock, UnitOfWorkFactory
from application.use_cases._caller import caller_profile
from domain.profiles import Profile


class ReplayUndelivered:
    """What a socket must show right after it connects: the user's unacknowledged notifications, oldest first.

    This is how a provider who was offline sees the job when they come back, and how messages
    published while the broker was down still arrive (late, never lost).
    """

    def __init__(self, uow_factory: UnitOfWorkFactory, clock: Clock, policy: DeliveryPolicy) -> None:
        self._uow_factory = uow_factory
        self._clock = clock
        self._policy = policy

    async def on_connect(self, user_id: int) -> tuple[Profile, list[dict[str, Any]]]:
        """Who connected, and what they must see first: one transaction for a socket's whole start."""
        since = self._clock.now() - self._policy.replay_window
        async with self._uow_factory() as uow:
            profile = await caller_profile(uow, user_id)
            rows = await uow.notifications.undelivered_for_user(user_id, since, self._policy.replay_limit)
        return profile, [n.message() for n in rows]

    async def record_shown(self, user_id: int, notification_ids: Collection[int]) -> None:
        """The replayed messages reached a live socket: their socket channel counts as sent."""
        if not notification_ids:
            return
        async with self._uow_factory() as uow:
            shown = [n for n in await uow.notifications.get_many(notification_ids) if n.recipient_id == user_id]
            for n in shown:
                n.mark_seen_on_socket()
            await uow.notifications.save_deliveries(shown)
            await uow.commit()
