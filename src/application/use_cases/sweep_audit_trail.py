from __future__ import annotations

from datetime import timedelta

from application.idempotency import KEY_LIFETIME
from application.ports import Clock, UnitOfWorkFactory

SWEEP_BATCH = 5_000


class SweepAuditTrail:
    """Forget delivery attempts older than the retention period, and idempotency keys older than a day,
    a bounded batch per transaction."""

    def __init__(self, uow_factory: UnitOfWorkFactory, clock: Clock, retention: timedelta) -> None:
        self._uow_factory = uow_factory
        self._clock = clock
        self._retention = retention

    async def execute(self, max_batches: int = 20) -> int:
        """Returns how many were deleted; stops after ``max_batches`` (the next sweep goes on)."""
        now = self._clock.now()
        deleted = 0
        for forget in (
            lambda uow: uow.attempts.delete_before(now - self._retention, SWEEP_BATCH),
            lambda uow: uow.idempotency.delete_before(now - KEY_LIFETIME, SWEEP_BATCH),
        ):
            for _ in range(max_batches):
                async with self._uow_factory() as uow:
                    count = await forget(uow)
                    await uow.commit()
                deleted += count
                if count < SWEEP_BATCH:
                    break
        return deleted
