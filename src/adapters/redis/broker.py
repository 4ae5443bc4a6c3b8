"""``RedisBroker``: the RealtimeBroker port across many app instances.

Why not litestar's channels plugin: its Redis pub/sub backend ignores ``key_prefix`` and, like any
plain pub/sub, cannot tell the publisher whether a socket really received the message, which
``websocket_sent`` must state truthfully. So, by hand, with one subscriber connection per instance:

- every instance subscribes to ``{prefix}:user:{id}`` while it holds at least one socket of that user,
  and to its own ``{prefix}:ack:{instance}`` channel;
- a publish first writes the text to this instance's own sockets of the user, then sends
  ``<message id>|<reply channel>|<text>`` to Redis; PUBLISH returns how many instances listen;
- each other instance writes the text to its local sockets (encoded once, sent to all) and publishes
  back ``<message id>|<sockets reached>`` on the reply channel (the publisher skips its own message);
- the publisher returns at once if a local socket took it, else as soon as a remote socket was
  reached, when every instance answered, or after ``ack_timeout``: the count is of sockets that
  really got the message.

Presence: each instance keeps a field per local user in ``{prefix}:online:{id}`` (a hash of instance
-> expiry time), refreshed every ``presence_ttl / 3``; a crashed instance's fields simply expire.

Redis Cluster (``cluster=True``, REDIS_CLUSTER_URL): the same protocol over *sharded* pub/sub (SPUBLISH,
SSUBSCRIBE: a message travels only within the shard that owns its channel, so pub/sub scales with the
shards instead of being broadcast to every node), and every name of a user carries the user id as a hash
tag (``{prefix}:user:{42}``, ``{prefix}:online:{42}``) so that one user's channel and keys live on one
shard. ``ShardSubscribers`` holds a subscriber connection per shard, each with its own reader. The channels
of a shard that fails (a master restarted, a failover, a dropped connection) or whose slot moved (a reshard)
are routed again on their own, and only their users are caught up; the other shards never stop. What
cannot be routed again within 30 s makes the listener drop them all and subscribe again from a fresh slot
map, then catch up as after a Redis restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Collection, Iterator, Mapping
from datetime import timedelta
from typing import Any, TypeVar

import msgspec
import redis.asyncio as redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from adapters.redis.shards import NO_SILENT_RECONNECT, ShardSubscribers
from application.errors import BrokerUnavailable
from application.local_sockets import LocalSockets
from application.ports import BrokerReconnected, RealtimeBroker, SocketSink

log = logging.getLogger(__name__)
T = TypeVar("T")
# A lost subscription is retried after 0.1 s, doubling up to this: after a Redis restart, this is
# how long at most an instance stays deaf (then it catches up what it missed).
MAX_RECONNECT_DELAY = 2.0
STABLE_AFTER = 10.0  # seconds a subscription must hold before a failure starts the backoff over
COMMAND_TIMEOUT = 2.0  # seconds a command (or a pipeline) may take before Redis counts as unavailable
_encode = msgspec.json.Encoder().encode


class RedisBroker(RealtimeBroker):
    def __init__(
        self,
        url: str,
        prefix: str = "workcast",
        ack_timeout: float = 1.0,
        presence_ttl: float = 30.0,
        send_timeout: float = 5.0,
        cluster: bool = False,
    ) -> None:
        self._url = url
        self._cluster = cluster
        self._prefix = prefix
        self._ack_timeout = ack_timeout
        self._presence_ttl = presence_ttl
        self.instance = uuid.uuid4().hex[:12]
        self.sockets = LocalSockets(send_timeout)
        self._reply_channel = f"{prefix}:ack:{{{self.instance}}}" if cluster else f"{prefix}:ack:{self.instance}"
        self._ids = itertools.count(1)
        self._waiting: dict[str, _Delivery] = {}
        self._client: redis.Redis | None = None
        self._scripts: dict[str, Any] = {}  # presence scripts by their text (one Redis only)
        self._pubsub: Any = None
        self._tasks: list[asyncio.Task] = []
        self._in_flight: set[asyncio.Task] = set()
        self._listening = asyncio.Event()
        self._subscribe_lock: asyncio.Lock | None = None
        self._reconnected: list[BrokerReconnected] = []

    # --- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        # Commands: fail fast. The subscriber connection: no read timeout, it waits for messages.
        self._client = self._command_client()
        if not self._cluster:  # loaded into Redis on first use, and again after a Redis restart (redis-py)
            self._scripts = {script: self._client.register_script(script) for script in (MARK_PRESENT, FORGET_PRESENCE)}
        self._subscribe_lock = asyncio.Lock()
        if self._cluster:
            self._pubsub = None  # made by the listener, once the cluster's slots are known
        else:
            subscriber = redis.from_url(
                self._url,
                socket_timeout=None,
                socket_connect_timeout=2.0,
                retry=NO_SILENT_RECONNECT,  # the listener reconnects, and catches up what the outage kept
                decode_responses=True,
            )
            self._pubsub = subscriber.pubsub(ignore_subscribe_messages=True)
        self._tasks = [
            asyncio.create_task(self._listen(), name="redis-broker-listener"),
            asyncio.create_task(self._keep_presence(), name="redis-broker-presence"),
        ]

    def _command_client(self) -> Any:
        options = {"socket_connect_timeout": COMMAND_TIMEOUT, "decode_responses": True}
        if self._cluster:
            # Per-operation timeouts: the cluster client retries a command on another node after one times out.
            return RedisCluster.from_url(self._url, socket_timeout=COMMAND_TIMEOUT, **options)
        # One Redis: each call is bounded as a whole (_bounded). redis-py's per-operation write timeout is an
        # asyncio.wait_for, a task of its own for every command: ~4 % of an assign-work request's CPU (bench.ab).
        return redis.from_url(self._url, socket_timeout=None, **options)

    async def _bounded(self, awaitable: Awaitable[T]) -> T:
        """A command client call within COMMAND_TIMEOUT (TimeoutError is an OSError, as a socket timeout is)."""
        if self._cluster:
            return await awaitable  # bounded per operation by the client
        async with asyncio.timeout(COMMAND_TIMEOUT):
            return await awaitable

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception):
            await self._forget_presence(self.sockets.users())
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.aclose()

    # --- the port ------------------------------------------------------------------------------------

    async def publish(self, user_id: int, message: Mapping[str, Any]) -> int:
        assert self._client is not None, "start() the broker first"
        text = _encode(message).decode()
        message_id = f"{self.instance}-{next(self._ids)}"
        # Sockets of this instance get it straight away; the others through Redis. This instance
        # ignores its own message when it comes back from Redis.
        here = self.sockets.count(user_id) > 0
        reached_here = await self.sockets.send(user_id, text) if here else 0
        delivery = _Delivery()
        self._waiting[message_id] = delivery
        try:
            listeners = await self._publish(self._user_channel(user_id), f"{message_id}|{self._reply_channel}|{text}")
            elsewhere = listeners - (1 if here else 0)
            if reached_here or elsewhere <= 0:
                return reached_here
            delivery.expect(elsewhere)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(delivery.settled.wait(), self._ack_timeout)
            return delivery.delivered
        except (RedisError, OSError) as error:
            if reached_here:
                return reached_here  # a local socket has it; other instances' sockets get it by replay
            raise BrokerUnavailable(f"redis: {type(error).__name__}") from error
        finally:
            self._waiting.pop(message_id, None)

    async def subscribe(self, user_id: int, sink: SocketSink) -> None:
        if self.sockets.add(user_id, sink):
            try:
                await self._subscribe(self._user_channel(user_id))
            except (RedisError, OSError) as error:
                # The socket stays open: the listener subscribes it again when Redis is back.
                log.warning("redis subscribe failed; will retry on reconnect", extra={"error": repr(error)})
        with contextlib.suppress(RedisError, OSError):
            await self._mark_present([user_id])

    async def unsubscribe(self, user_id: int, sink: SocketSink) -> None:
        if self.sockets.remove(user_id, sink):
            with contextlib.suppress(RedisError, OSError, AttributeError):  # AttributeError: no pubsub right now
                if self._cluster:
                    await self._pubsub.sunsubscribe(self._user_channel(user_id))
                else:
                    await self._pubsub.unsubscribe(self._user_channel(user_id))
            with contextlib.suppress(RedisError, OSError):
                await self._forget_presence([user_id])

    async def is_healthy(self) -> bool:
        try:
            return bool(await self._bounded(self._client.ping())) and self._listening.is_set()
        except (RedisError, OSError):
            return False

    def on_reconnect(self, callback: BrokerReconnected) -> None:
        self._reconnected.append(callback)

    async def online(self, user_ids: Collection[int]) -> set[int]:
        ids = list(user_ids)
        if not ids:
            return set()
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for user_id in ids:
                    pipe.hvals(self._presence_key(user_id))
                expiries = await self._bounded(pipe.execute())
        except (RedisError, OSError) as error:
            raise BrokerUnavailable(f"redis: {type(error).__name__}") from error
        now = time.time()
        return {uid for uid, values in zip(ids, expiries, strict=True) if any(float(v) > now for v in values)}

    # --- internals -------------------------------------------------------------------------------------

    def _user_channel(self, user_id: int) -> str:
        return f"{self._prefix}:user:{{{user_id}}}" if self._cluster else f"{self._prefix}:user:{user_id}"

    def _presence_key(self, user_id: int) -> str:
        return f"{self._prefix}:online:{{{user_id}}}" if self._cluster else f"{self._prefix}:online:{user_id}"

    async def _publish(self, channel: str, data: str) -> int:
        if self._cluster:
            return await self._client.spublish(channel, data)
        return await self._bounded(self._client.publish(channel, data))

    async def _subscribe(self, *channels: str) -> None:
        async with self._subscribe_lock:
            if self._cluster:
                if self._pubsub is None:
                    raise RedisConnectionError("the cluster subscriber is reconnecting")
                await self._pubsub.ssubscribe(*channels)
            else:
                await self._pubsub.subscribe(*channels)

    async def _fresh_cluster_pubsub(self) -> None:
        """Drop every shard connection of the old subscriber; a new one, from a fresh slot map."""
        old, self._pubsub = self._pubsub, None
        if old is not None:
            await old.aclose()
        await self._client.initialize()  # discovers the cluster; it does so only once
        # RedisCluster.initialize() does nothing the second time, so the slot map is asked for here: without it,
        # the subscribers went back to a failed master until some command of this instance hit it and
        # refreshed the map (the presence refresh, up to 10 s later; never, for a shard with no user key).
        await self._client.nodes_manager.initialize()
        self._pubsub = ShardSubscribers(self._client, on_rerouted=self._rerouted)

    def _rerouted(self, channels: list[str], away_for: float) -> None:
        """Channels of one shard's trouble (it failed, or their slot moved) are subscribed again where they now
        live: only their users are caught up, the other shards' subscriptions never stopped."""
        users = [_user_of(channel) for channel in channels if channel != self._reply_channel]
        log.warning(
            "redis shard channels were away; subscribed again",
            extra={"channels": len(channels), "away_seconds": round(away_for, 3)},
        )
        if users:
            self._caught_up(away_for, users)

    async def _messages(self):
        """The subscriber's messages: ``(channel, data)``."""
        if self._cluster:
            async for item in self._pubsub.messages():
                yield item
            return
        async for message in self._pubsub.listen():
            if message.get("type") == "message":
                yield message["channel"], message["data"]

    async def _listen(self) -> None:
        """The one subscriber connection of this instance. Reconnects with backoff and resubscribes."""
        backoff = 0.1
        lost_at: float | None = None
        listening_since: float | None = None
        while True:
            try:
                if self._cluster:
                    await self._fresh_cluster_pubsub()
                wanted = [self._reply_channel] + [self._user_channel(u) for u in self.sockets.users()]
                await self._subscribe(*wanted)
                if lost_at is not None:
                    log.info("redis subscriber reconnected", extra={"channels": len(wanted)})
                    await self._mark_present(self.sockets.users())
                    self._caught_up(time.monotonic() - lost_at)
                    lost_at = None
                self._listening.set()
                listening_since = time.monotonic()
                async for channel, data in self._messages():
                    await self._on_message(channel, data)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self._listening.clear()
                lost_at = lost_at if lost_at is not None else time.monotonic()
                if self._cluster and self._pubsub is not None:  # channels a shard lost before this failure
                    lost_at = min(lost_at, self._pubsub.adrift_since() or lost_at)
                # The backoff starts over only after a subscription that held: one that fails again at
                # once (a shard refusing it) must not be retried ten times a second.
                if listening_since is not None and time.monotonic() - listening_since > STABLE_AFTER:
                    backoff = 0.1
                listening_since = None
                if isinstance(error, RedisError | OSError):
                    log.warning(
                        "redis subscription lost; subscribing again",
                        extra={"error": repr(error), "in_seconds": backoff},
                    )
                else:
                    log.exception("redis listener failed; restarting", extra={"in_seconds": backoff})
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_RECONNECT_DELAY)

    def _caught_up(self, down_for: float, users: list[int] | None = None) -> None:
        """Tell whoever asked (on_reconnect) that messages to our users (or to ``users``) may have been missed
        for ``down_for`` s."""
        users = self.sockets.users() if users is None else users
        for callback in self._reconnected:
            task = asyncio.create_task(callback(users, timedelta(seconds=down_for)))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

    async def _on_message(self, channel: str, data: str) -> None:
        if channel == self._reply_channel:
            message_id, _, count = data.partition("|")
            delivery = self._waiting.get(message_id)
            if delivery is not None:
                delivery.answer(int(count or 0))
            return
        message_id, reply_channel, text = data.split("|", 2)
        if reply_channel == self._reply_channel:
            return  # our own message: its local sockets were served when it was published
        user_id = _user_of(channel)
        # Write to local sockets without holding up the listener; report how many got it.
        task = asyncio.create_task(self._deliver_locally(user_id, text, message_id, reply_channel))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def _deliver_locally(self, user_id: int, text: str, message_id: str, reply_channel: str) -> None:
        reached = await self.sockets.send(user_id, text)
        with contextlib.suppress(RedisError, OSError):
            await self._publish(reply_channel, f"{message_id}|{reached}")

    async def _keep_presence(self) -> None:
        while True:
            await asyncio.sleep(self._presence_ttl / 3)
            with contextlib.suppress(RedisError, OSError):
                await self._mark_present(self.sockets.users())

    async def _mark_present(self, user_ids: list[int]) -> None:
        until, ttl = str(time.time() + self._presence_ttl), int(self._presence_ttl) + 1

        def mark(pipe: Any, key: str) -> None:
            pipe.hset(key, self.instance, until)
            pipe.expire(key, ttl)

        await self._for_presence_keys(user_ids, MARK_PRESENT, [self.instance, until, ttl], mark)

    async def _forget_presence(self, user_ids: list[int]) -> None:
        await self._for_presence_keys(
            user_ids, FORGET_PRESENCE, [self.instance], lambda pipe, key: pipe.hdel(key, self.instance)
        )

    async def _for_presence_keys(
        self, user_ids: list[int], script: str, args: list[Any], per_key: Callable[[Any, str], Any]
    ) -> None:
        """These users' presence keys, changed in chunks: by ``script`` on one Redis, by ``per_key``'s commands in
        pipelines on Redis Cluster (where a script may touch one slot only)."""
        if not self._cluster:
            for chunk in _chunks(user_ids, SCRIPT_CHUNK):
                keys = [self._presence_key(user_id) for user_id in chunk]
                await self._bounded(self._scripts[script](keys=keys, args=args))
            return
        for chunk in _chunks(user_ids, PIPELINE_CHUNK):
            async with self._client.pipeline(transaction=False) as pipe:
                for user_id in chunk:
                    per_key(pipe, self._presence_key(user_id))
                await self._bounded(pipe.execute())


# Presence on one Redis: one script call per chunk of users. As a pipeline, redis-py packs and parses every
# HSET and EXPIRE in Python: ~430 ms of CPU per refresh of 10,000 users (every 10 s), against 20-35 ms as
# scripts of 500 keys; Redis runs such a script in about a millisecond. Redis Cluster keeps the pipeline: a
# script may only touch keys of one slot, and each user's keys have their own.
MARK_PRESENT = """
for _, key in ipairs(KEYS) do
  redis.call('HSET', key, ARGV[1], ARGV[2])
  redis.call('EXPIRE', key, ARGV[3])
end
return #KEYS
"""
FORGET_PRESENCE = """
for _, key in ipairs(KEYS) do redis.call('HDEL', key, ARGV[1]) end
return #KEYS
"""
SCRIPT_CHUNK = 500
# Users per presence pipeline (Redis Cluster). Building and parsing a pipeline is Python work on the event
# loop: refreshing 10,000 users in one pipeline held it for ~0.25 s, the whole p99 of assign-work at 10,000
# sockets (bench/). In chunks, requests are served between them.
PIPELINE_CHUNK = 100


def _user_of(channel: str) -> int:
    """The user id at the end of ``{prefix}:user:42`` or ``{prefix}:user:{42}``."""
    return int(channel.rsplit(":", 1)[1].strip("{}"))


def _chunks(user_ids: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(user_ids), size):
        yield user_ids[start : start + size]


class _Delivery:
    """What the publisher hears back from the instances that received one message."""

    def __init__(self) -> None:
        self.expected: int | None = None
        self.answers = 0
        self.delivered = 0
        self.settled = asyncio.Event()

    def expect(self, listeners: int) -> None:
        self.expected = listeners
        if self.answers >= listeners:  # every answer came in before PUBLISH itself returned
            self.settled.set()

    def answer(self, reached: int) -> None:
        self.answers += 1
        self.delivered += reached
        if reached > 0 or (self.expected is not None and self.answers >= self.expected):
            self.settled.set()
