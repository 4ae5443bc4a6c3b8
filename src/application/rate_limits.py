"""Rate limits by group (assign, write, read, failed authentication, socket messages), on any limiter."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Protocol

from application.errors import LimiterUnavailable, RateLimited
from application.ports import RateLimiter
from domain.limits import Rate

log = logging.getLogger(__name__)
GROUPS = ("assign", "write", "read", "auth_failure", "socket_message", "socket_connect")


class LimitMetrics(Protocol):
    def rate_limited(self, group: str) -> None: ...

    def limiter_unavailable(self) -> None: ...


class RequestLimits:
    """Checks a subject (a user id, a client address) against its group's rate; no rate means no limit.

    When the shared limiter cannot answer, the request goes through: an outage of Redis must not turn
    into an outage of the API. It is logged (once a minute) and counted.
    """

    def __init__(self, limiter: RateLimiter, rates: Mapping[str, Rate | None], metrics: LimitMetrics) -> None:
        unknown = set(rates) - set(GROUPS)
        assert not unknown, f"unknown rate-limit groups: {unknown}"
        self._limiter = limiter
        self._rates = dict(rates)
        self._metrics = metrics
        self._last_warning = -60.0

    def rate(self, group: str) -> Rate | None:
        return self._rates.get(group)

    async def check(self, group: str, subject: str | int) -> None:
        rate = self._rates.get(group)
        if rate is None:
            return
        try:
            decision = await self._limiter.take(f"{group}:{subject}", rate)
        except LimiterUnavailable as error:
            self._metrics.limiter_unavailable()
            if time.monotonic() - self._last_warning >= 60.0:
                self._last_warning = time.monotonic()
                log.warning("rate limiter unavailable: requests are let through", extra={"error": str(error)})
            return
        if not decision.allowed:
            self._metrics.rate_limited(group)
            raise RateLimited(group, decision.retry_after)
