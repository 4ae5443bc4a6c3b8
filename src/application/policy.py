"""Tunable rules of delivery and of work orders. The composition root fills them from settings."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import timedelta


@dataclass(frozen=True)
class DeliveryPolicy:
    max_attempts: int = 8
    first_retry_delay: timedelta = timedelta(seconds=5)
    max_retry_delay: timedelta = timedelta(minutes=10)
    # How long a claimed notification belongs to the process that claimed it. If that process dies,
    # the notification is due again when the lease ends. Must exceed push_timeout.
    lease: timedelta = timedelta(seconds=30)
    # How long a request waits for delivery before answering "not yet sent" (delivery goes on behind it).
    request_budget: timedelta = timedelta(seconds=1)
    # Hard limit of one attempt on one channel; past it the attempt counts as a passing failure.
    push_timeout: timedelta = timedelta(seconds=20)
    socket_timeout: timedelta = timedelta(seconds=5)
    replay_window: timedelta = timedelta(hours=24)
    replay_limit: int = 100
    claim_batch: int = 100
    # PUSH_POLICY=fallback: when a socket took a notification, its push waits this long for the app's ack
    # and is sent only without one. None (PUSH_POLICY=always): push and socket go out together.
    push_fallback: timedelta | None = None
    rng: random.Random = field(default_factory=random.Random, compare=False)

    def retry_delay(self, attempts: int, retry_after: timedelta | None = None) -> timedelta:
        """Exponential backoff with jitter (half fixed, half random), never sooner than ``retry_after``."""
        exponential = self.first_retry_delay * (2 ** max(0, attempts - 1))
        capped = min(exponential, self.max_retry_delay)
        delay = capped / 2 + capped / 2 * self.rng.random()
        if retry_after is not None and retry_after > delay:
            delay = retry_after
        return delay


@dataclass(frozen=True)
class WorkPolicy:
    time_to_answer: timedelta = timedelta(minutes=10)
    max_pending_per_seeker: int = 0  # 0: no cap
    expiry_batch: int = 100
