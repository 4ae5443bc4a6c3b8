from __future__ import annotations

from datetime import timedelta

from application.ports import Clock, UnitOfWorkFactory

SWEEP_BATCH = 5_000


class SweepAuditTrail:
    """Forget delivery attempts older than the retention period, a bounded batch per transaction."""

    def __init__(self, uow_factory: UnitOfWorkFactory, clock: Clock, retention: timedelta) -> None:
        self._uow_factory = uow_factory
        self._clock = clock
        self._retention = retention

    async def execute(self, max_batches: int = 20) -> int:
        """Returns how many were deleted; stops after ``max_batches`` (the next sweep goes on)."""
        cutoff = self._clock.now() - self._retention
        deleted = 0
        for _ in range(max_batches):
            async with self._uow_factory() as uow:
                count = await uow.attempts.delete_before(cutoff, SWEEP_BATCH)
                await uow.commit()
            deleted += count
            if count < SWEEP_BATCH:
                break
        return deleted
