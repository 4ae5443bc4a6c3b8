"""The open sockets of each user across instances: a sorted set per user in Redis, by connect time.

One Lua script adds a socket and takes out the oldest beyond the cap, atomically, so two instances
accepting the same user's sockets at once agree on which ones go. A crashed instance's entries are
the oldest, so they are the first taken out: the set heals itself (and expires when a user is gone).
"""

from __future__ import annotations

import redis.asyncio as redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from application.errors import BrokerUnavailable
from application.ports import SocketRegistry

REGISTER = """
local t = redis.call('TIME')
redis.call('ZADD', KEYS[1], tonumber(t[1]) + tonumber(t[2]) / 1000000, ARGV[1])
redis.call('EXPIRE', KEYS[1], 86400)
local excess = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[2])
if excess <= 0 then return {} end
local oldest = redis.call('ZRANGE', KEYS[1], 0, excess - 1)
redis.call('ZREM', KEYS[1], unpack(oldest))
return oldest
"""


class RedisSocketRegistry(SocketRegistry):
    def __init__(self, url: str, prefix: str, timeout: float = 1.0, cluster: bool = False) -> None:
        connect = RedisCluster.from_url if cluster else redis.from_url  # one key per call: any shard will do
        self._client = connect(url, socket_timeout=timeout, socket_connect_timeout=timeout, decode_responses=True)
        self._register = self._client.register_script(REGISTER)
        self._prefix = f"{prefix}:sockets:"

    async def register(self, user_id: int, socket_id: str, cap: int) -> list[str]:
        try:
            return list(await self._register(keys=[f"{self._prefix}{user_id}"], args=[socket_id, cap]))
        except (RedisError, OSError) as error:
            raise BrokerUnavailable(f"redis: {type(error).__name__}") from error

    async def unregister(self, user_id: int, socket_id: str) -> None:
        try:
            await self._client.zrem(f"{self._prefix}{user_id}", socket_id)
        except (RedisError, OSError) as error:
            raise BrokerUnavailable(f"redis: {type(error).__name__}") from error

    async def close(self) -> None:
        await self._client.aclose()
