"""MAX_PENDING_ORDERS_PER_SEEKER, as every way of creating an order checks it."""

from __future__ import annotations

from datetime import datetime

from application.policy import WorkPolicy
from application.ports import UnitOfWork
from domain.errors import TooManyPendingOrders


async def check_room_for_another_order(
    uow: UnitOfWork, policy: WorkPolicy, seeker_id: int, now: datetime, action: str
) -> None:
    """``TooManyPendingOrders`` if the seeker already holds the most unanswered orders allowed (0: no cap)."""
    cap = policy.max_pending_per_seeker
    if cap:
        refuse_when_full(policy, await uow.work_orders.count_pending_for_seeker(seeker_id, now, cap), action)


def refuse_when_full(policy: WorkPolicy, pending: int, action: str) -> None:
    """``TooManyPendingOrders`` if ``pending`` unanswered orders already reach the cap."""
    cap = policy.max_pending_per_seeker
    if cap and pending >= cap:
        raise TooManyPendingOrders(
            f"you have {cap} unanswered work orders: wait for answers or cancel some before {action} more"
        )
