from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from application.idempotency import KEY_LIFETIME
from application.ports import Clock, UnitOfWorkFactory

SWEEP_BATCH = 5_000


@dataclass(frozen=True)
class Retention:
    attempts: timedelta = timedelta(days=30)  # AUDIT_RETENTION_DAYS
    notifications: timedelta = timedelta(days=30)  # NOTIFICATION_RETENTION_DAYS
    work_orders: timedelta = timedelta(days=365)  # WORK_ORDER_RETENTION_DAYS (closed orders only)


class SweepOldRecords:
    """Forget what is past its retention: delivery attempts, notifications, closed work orders (with their
    notifications), idempotency keys older than a day. A bounded batch per transaction: no long lock, no
    table rewrite, and a large backlog is worked off over several sweeps."""

    def __init__(self, uow_factory: UnitOfWorkFactory, clock: Clock, retention: Retention) -> None:
        self._uow_factory = uow_factory
        self._clock = clock
        self._retention = retention

    async def execute(self, max_batches: int = 20) -> tuple[int, bool]:
        """Returns how many rows were deleted, and whether a kind stopped at ``max_batches`` with more to delete
        (the caller sweeps again soon)."""
        now = self._clock.now()
        keep = self._retention
        deleted, backlog = 0, False
        for forget in (
            lambda uow: uow.attempts.delete_before(now - keep.attempts, SWEEP_BATCH),
            lambda uow: uow.notifications.delete_before(now - keep.notifications, SWEEP_BATCH),
            lambda uow: uow.work_orders.delete_closed_before(now - keep.work_orders, SWEEP_BATCH),
            lambda uow: uow.idempotency.delete_before(now - KEY_LIFETIME, SWEEP_BATCH),
        ):
            for _ in range(max_batches):
                async with self._uow_factory() as uow:
                    count = await forget(uow)
                    await uow.commit()
                deleted += count
                if count < SWEEP_BATCH:
                    break
            else:
                backlog = True
        return deleted, backlog
