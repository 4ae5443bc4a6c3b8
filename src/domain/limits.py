"""Token buckets: a burst, refilled at a steady rate. The in-process limiter runs this; the Redis one
runs the same arithmetic in a Lua script (adapters/limits/redis.py), so both answer alike."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Rate:
    burst: int  # requests allowed at once from a full bucket
    per_second: float  # tokens added back each second

    @classmethod
    def parse(cls, text: str) -> Rate | None:
        """``"10/1"`` (burst 10, 1 a second) or ``"off"`` (None: no limit). ``ValueError`` otherwise."""
        if text.strip().lower() == "off":
            return None
        burst, _, per_second = text.partition("/")
        rate = cls(int(burst), float(per_second))
        if rate.burst < 1 or not (math.isfinite(rate.per_second) and rate.per_second > 0):
            raise ValueError("a rate is BURST/PER_SECOND with BURST >= 1 and PER_SECOND > 0, or 'off'")
        return rate


@dataclass
class TokenBucket:
    tokens: float
    updated: float  # seconds, on any steady clock

    @classmethod
    def full(cls, rate: Rate, now: float) -> TokenBucket:
        return cls(float(rate.burst), now)

    def take(self, rate: Rate, now: float, cost: int = 1) -> float:
        """Take ``cost`` tokens if there are enough: returns 0.0, or else the seconds until there will be."""
        self.tokens = min(float(rate.burst), self.tokens + max(0.0, now - self.updated) * rate.per_second)
        self.updated = now
        if self.tokens >= cost:
            self.tokens -= cost
            return 0.0
        return (cost - self.tokens) / rate.per_second

    def idle_full(self, rate: Rate, now: float) -> bool:
        """Refilled to the brim by now: forgetting it changes nothing."""
        return self.tokens + (now - self.updated) * rate.per_second >= rate.burst
