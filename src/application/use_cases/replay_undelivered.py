from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from application.policy import DeliveryPolicy
from application.ports import Clock, UnitOfWorkFactory
from application.remembered_profiles import RememberedProfiles
from application.use_cases._caller import caller_profile
from domain.audit import AttemptOutcome, DeliveryAttempt
from domain.notifications import NotificationKind
from domain.profiles import Profile

REPLAYED = "replayed on connect"


@dataclass(frozen=True)
class Replay:
    """What a connecting socket is shown first, in this order, and whether older ones were left out."""

    messages: list[dict[str, Any]]
    truncated: bool  # more than the limit were waiting: the app should read GET /notifications/

    def complete(self) -> dict[str, Any]:
        """The message that closes the replay: how many came, and whether the app must fetch the rest."""
        return {"type": "replay_complete", "count": len(self.messages), "truncated": self.truncated}


class ReplayUndelivered:
    """What a socket must show right after it connects: the user's unacknowledged notifications.

    This is how a provider who was offline sees the job when they come back, and how messages
    published while the broker was down still arrive (late, never lost). What is still actionable
    comes first: offers that can still be taken, newest first (after a flood of spam offers the
    newest, real one is not buried). Then the rest, oldest first. Each carries its order's current
    status, not the one it was sent with; an offer that can no longer be taken is not replayed. At
    most ``replay_limit`` are sent; ``truncated`` tells the app that older ones were left out.
    """

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        clock: Clock,
        policy: DeliveryPolicy,
        instance: str = "local",
        remembered: RememberedProfiles | None = None,
    ) -> None:
        self._uow_factory = uow_factory
        self._clock = clock
        self._policy = policy
        self._instance = instance
        self._remembered = remembered

    async def on_connect(self, user_id: int) -> tuple[Profile, Replay]:
        """Who connected, and what they must see first: one transaction for a socket's whole start."""
        now = self._clock.now()
        limit = self._policy.replay_limit
        async with self._uow_factory() as uow:
            profile = await caller_profile(uow, user_id)
            rows = await uow.notifications.replay_for_user(user_id, now - self._policy.replay_window, now, limit + 1)
        if self._remembered is not None:  # who just came online is whom the next order goes to: no read for it
            self._remembered.remember([profile])
        truncated = len(rows) > limit
        offers, others = [], []
        for n, status in rows[:limit]:  # newest first
            message = n.message() | {"status": status.value}
            (offers if n.kind is NotificationKind.WORK_ASSIGNED else others).append(message)
        return profile, Replay(offers + others[::-1], truncated)

    async def record_shown(self, user_id: int, notification_ids: Collection[int]) -> None:
        """The replayed messages reached a live socket: their socket channel counts as sent."""
        if not notification_ids:
            return
        async with self._uow_factory() as uow:
            shown = [n for n in await uow.notifications.get_many(notification_ids) if n.recipient_id == user_id]
            for n in shown:
                n.mark_seen_on_socket()
            await uow.notifications.save_deliveries(shown)
            now = self._clock.now()
            await uow.attempts.add_many(
                [
                    DeliveryAttempt(n.id or 0, "socket", now, AttemptOutcome.SENT, 0, self._instance, None, REPLAYED)
                    for n in shown
                ]
            )
            await uow.commit()
