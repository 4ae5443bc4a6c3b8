from __future__ import annotations

from datetime import timedelta

from application.ports import Clock, DeliveryStats, UnitOfWorkFactory
from application.use_cases._caller import caller_profile
from domain.errors import InvalidInput, NotAnOperator
from domain.profiles import Role

MAX_WINDOW = timedelta(days=31)
TOP_ERRORS = 20


class GetDeliveryStats:
    """Operators only: how notifications of the last ``window`` fared, by status, by channel, by push error."""

    def __init__(self, uow_factory: UnitOfWorkFactory, clock: Clock) -> None:
        self._uow_factory = uow_factory
        self._clock = clock

    async def execute(self, user_id: int, window: timedelta) -> DeliveryStats:
        if not timedelta(0) < window <= MAX_WINDOW:
            raise InvalidInput(f"the window must be above 0 and at most {MAX_WINDOW.days} days", field="hours")
        async with self._uow_factory() as uow:
            caller = await caller_profile(uow, user_id)
            if caller.role is not Role.OPERATOR:
                raise NotAnOperator("delivery statistics are for operators")
            return await uow.notifications.delivery_stats(self._clock.now() - window, TOP_ERRORS)
