"""Token buckets in this process's memory: the embedded default has one process, so this is exact there."""

from __future__ import annotations

import time

from application.ports import LimitDecision, RateLimiter
from domain.limits import Rate, TokenBucket

SWEEP_EVERY = 10_000  # checks between sweeps of buckets that refilled (memory stays bounded by active keys)


class InProcessRateLimiter(RateLimiter):
    def __init__(self) -> None:
        self._buckets: dict[str, tuple[TokenBucket, Rate]] = {}
        self._checks = 0

    async def take(self, key: str, rate: Rate, cost: int = 1) -> LimitDecision:
        now = time.monotonic()
        found = self._buckets.get(key)
        if found is None:
            found = self._buckets[key] = (TokenBucket.full(rate, now), rate)
        wait = found[0].take(rate, now, cost)
        self._checks += 1
        if self._checks % SWEEP_EVERY == 0:
            self._buckets = {k: (b, r) for k, (b, r) in self._buckets.items() if not b.idle_full(r, now)}
        return LimitDecision(wait == 0.0, wait)

    async def close(self) -> None:
        return None
