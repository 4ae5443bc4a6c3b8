from __future__ import annotations

from application.ports import Clock, UnitOfWorkFactory


class MeasureBacklog:
    """How far behind delivery is: notifications due now, and how long the oldest of them has waited (s)."""

    def __init__(self, uow_factory: UnitOfWorkFactory, clock: Clock) -> None:
        self._uow_factory = uow_factory
        self._clock = clock

    async def execute(self) -> tuple[int, float]:
        now = self._clock.now()
        async with self._uow_factory() as uow:
            count, oldest = await uow.notifications.due_backlog(now)
        return count, (now - oldest).total_seconds() if oldest is not None else 0.0
