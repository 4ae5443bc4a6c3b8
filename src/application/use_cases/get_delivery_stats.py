from __future__ import annotations

import math
from dataclasses import replace
from datetime import timedelta

from application.ports import Clock, DeliveryStats, UnitOfWorkFactory
from application.use_cases._caller import caller_profile
from domain.errors import InvalidInput, NotAnOperator
from domain.profiles import Role

MAX_WINDOW = timedelta(days=31)
TOP_ERRORS = 20
RESPONSE_SAMPLES = 10_000  # the most recent acknowledged notifications the percentiles are taken over


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
            since = self._clock.now() - window
            stats = await uow.notifications.delivery_stats(since, TOP_ERRORS)
            to_ack, to_open = await uow.notifications.response_times(since, RESPONSE_SAMPLES)
        return replace(stats, time_to_ack=percentiles(to_ack), time_to_open=percentiles(to_open))


def percentiles(samples: list[float]) -> dict[str, float | None]:
    """p50, p90 and p99 (nearest rank) of the samples, and how many there were."""
    ordered = sorted(samples)

    def rank(q: float) -> float | None:
        return round(ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)], 3) if ordered else None

    return {"p50": rank(0.5), "p90": rank(0.9), "p99": rank(0.99), "samples": len(ordered)}
