"""Token buckets in Redis: one limit across every instance, one atomic round trip per check.

Hand-written because it is one short Lua script: litestar's rate-limit middleware counts per process
(litestar #4700) and fixed windows allow twice the rate at a window's edge. The script reads Redis's
own clock (TIME), so instances with skewed clocks share one notion of "now"; it touches one key, so it
runs on Redis Cluster too. Buckets expire once they would be full again: idle users cost nothing.
"""

from __future__ import annotations

import asyncio

import redis.asyncio as redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from application.errors import LimiterUnavailable
from application.ports import LimitDecision, RateLimiter
from domain.limits import Rate

# The arithmetic of domain.limits.TokenBucket.take; returns the wait in seconds as text (Lua numbers
# would come back truncated to integers).
TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local burst, rate, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'updated')
local tokens = tonumber(state[1]) or burst
local updated = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - updated) * rate)
local wait = 0
if tokens >= cost then tokens = tokens - cost else wait = (cost - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'updated', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate * 1000) + 1000)
return tostring(wait)
"""


class RedisRateLimiter(RateLimiter):
    def __init__(self, url: str, prefix: str, timeout: float = 0.5, cluster: bool = False) -> None:
        # A short timeout: a slow Redis must not hold requests up (the caller lets them through). It bounds
        # the whole call here rather than each socket operation: redis-py's per-operation write timeout is
        # an asyncio.wait_for, which on Python 3.11 costs a task per command on every request.
        # One key per script call, so a Redis Cluster routes each to the shard that owns it.
        connect = RedisCluster.from_url if cluster else redis.from_url
        self._client = connect(url, socket_timeout=None, socket_connect_timeout=timeout)
        self._timeout = timeout
        self._take = self._client.register_script(TAKE)
        self._prefix = f"{prefix}:limit:"

    async def take(self, key: str, rate: Rate, cost: int = 1) -> LimitDecision:
        try:
            async with asyncio.timeout(self._timeout):
                wait = float(await self._take(keys=[self._prefix + key], args=[rate.burst, rate.per_second, cost]))
        except (RedisError, OSError) as error:  # OSError: TimeoutError too
            raise LimiterUnavailable(f"{type(error).__name__}: {error}") from error
        return LimitDecision(wait == 0.0, wait)

    async def close(self) -> None:
        await self._client.aclose()
