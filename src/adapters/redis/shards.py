"""Sharded pub/sub on a Redis Cluster: one subscriber connection per shard, each read by its own task.

Why not redis-py's ClusterPubSub alone: its ``get_sharded_message`` polls the shards one after the other,
waiting up to its timeout on each, so a message on the third shard waits for the first two to time out
(measured: the publisher's 1 s wait for an answer ran out, ``websocket_sent`` was false). Here every shard's
connection has a reader of its own and messages arrive as soon as they are read. Routing uses the cluster
client's slot map (``get_node_from_key``).

One shard's trouble stays with its own channels; the others' subscriptions never stop:
- a shard whose connection fails (a master restarted, a failover, a dropped connection) has its channels
  routed again, from a fresh slot map, until they subscribe (on the master that is back, or on the replica
  that took over);
- a slot that migrates takes its channels' subscriptions with it: the old owner sends an ``sunsubscribe``
  nobody asked for (redis-py's ``listen()`` hides it; the readers here read every message themselves), and
  an SSUBSCRIBE that reaches a shard too late answers MOVED. Those channels are routed again the same way.
Channels dropped within ``REROUTE_GATHER_SECONDS`` go together (a reshard moves thousands of slots one after
the other). The consumer hears which channels came back and for how long they were away (``on_rerouted``),
to catch their users up. Channels away longer than ``MAX_ADRIFT_SECONDS``, or moved more than
``MAX_REROUTES`` times, are reported as a failure: the consumer then rebuilds everything.

SSUBSCRIBE takes channels of one slot only (else CROSSSLOT), so channels are subscribed a slot at a time;
and redis-py's own reconnect-and-resubscribe is turned off (``NO_SILENT_RECONNECT``): it resubscribes every
channel of a connection in one command, which a shard refuses, and it would hide the outage from the
consumer, whose catch-up depends on hearing of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from typing import Any

import redis.asyncio as redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import MovedError, RedisError

# A subscriber connection that drops raises to its reader instead of reconnecting on its own: the
# consumer must know that messages may have been missed (it catches them up) and does the reconnecting.
NO_SILENT_RECONNECT = Retry(NoBackoff(), 0)
YIELD_EVERY = 100  # SSUBSCRIBE commands written between two turns of the event loop
REROUTE_GATHER_SECONDS = 0.05  # channels dropped within this long are routed again together
MAX_REROUTE_DELAY = 2.0  # a shard that does not answer is tried again after 0.1 s, doubling up to this
MAX_ADRIFT_SECONDS = 30.0  # longer without a subscription: the consumer rebuilds everything
MAX_REROUTES = 5  # a channel moved more often by one set of subscribers: the slot map does not settle

# What the consumer hears once channels are subscribed again: the channels, and how long (s) the first of
# them was without a subscription.
Rerouted = Callable[[list[str], float], None]


class ShardChannelsAdrift(RedisError):
    """Channels that could not be routed again (their shard stays away, or their slot keeps moving)."""


class ShardSubscribers:
    def __init__(
        self, cluster: RedisCluster, on_rerouted: Rerouted = lambda channels, away: None, connect_timeout: float = 2.0
    ) -> None:
        self._cluster = cluster
        self._on_rerouted = on_rerouted
        self._connect_timeout = connect_timeout
        self._pubsubs: dict[str, Any] = {}  # node name -> its PubSub
        self._readers: set[asyncio.Task] = set()
        self._channel_node: dict[str, str] = {}  # the channels wanted, and the node each was subscribed on
        self._unsubscribing: Counter[str] = Counter()  # our own SUNSUBSCRIBEs not yet confirmed
        self._adrift: dict[str, float] = {}  # channels without a subscription -> since when (monotonic)
        self._reroutes: Counter[str] = Counter()
        self._rerouter: asyncio.Task | None = None
        self._subscribing = asyncio.Lock()
        self._inbox: asyncio.Queue[tuple[str, str] | BaseException] = asyncio.Queue()

    async def ssubscribe(self, *channels: str) -> None:
        """Subscribe on the shards that own the channels. Raises if a shard cannot be reached; its channels
        are then routed again in the background."""
        # One at a time: the rerouter and new sockets both subscribe, and two first SSUBSCRIBEs to a new node
        # would each open a connection for it (PubSub.connect awaits between its check and its set).
        async with self._subscribing:
            await self._ssubscribe(channels)

    async def sunsubscribe(self, channel: str) -> None:
        name = self._channel_node.pop(channel, None)
        self._adrift.pop(channel, None)
        if name in self._pubsubs:
            self._unsubscribing[channel] += 1
            await self._pubsubs[name].sunsubscribe(channel)

    async def messages(self) -> AsyncIterator[tuple[str, str]]:
        """``(channel, data)`` from every shard; raises what the consumer must rebuild everything for."""
        while True:
            item = await self._inbox.get()
            if isinstance(item, BaseException):
                raise item
            yield item

    def adrift_since(self) -> float | None:
        """Since when (monotonic) the longest-waiting channel has had no subscription, if any is waiting."""
        return min(self._adrift.values(), default=None)

    async def aclose(self) -> None:
        for task in [*self._readers, self._rerouter]:
            if task is not None:
                task.cancel()
        for pubsub in self._pubsubs.values():
            await _close_quietly(pubsub)

    # --- internals ---------------------------------------------------------------------------------

    async def _ssubscribe(self, channels: Iterable[str]) -> None:
        by_node: dict[str, dict[int, list[str]]] = {}
        for channel in channels:
            node = self._cluster.get_node_from_key(channel)
            slot = self._cluster.keyslot(channel)
            by_node.setdefault(node.name, {}).setdefault(slot, []).append(channel)
            self._channel_node[channel] = node.name
        failure: BaseException | None = None
        for name, by_slot in by_node.items():
            new = name not in self._pubsubs
            pubsub = self._pubsub_of(name)
            try:
                for count, same_slot in enumerate(by_slot.values(), 1):
                    await pubsub.ssubscribe(*same_slot)
                    if count % YIELD_EVERY == 0:  # resubscribing 10,000 users: let requests run in between
                        await asyncio.sleep(0)
            except (RedisError, OSError) as error:
                failure = error
                await self._drop_shard(name, pubsub)  # its channels are routed again in the background
                continue
            if new:  # read once subscribed: a PubSub has no connection to read before its first command
                reader = _in_own_context(self._read(name, pubsub), f"redis-shard-{name}")
                self._readers.add(reader)
                reader.add_done_callback(self._readers.discard)
        if failure is not None:
            raise failure

    def _pubsub_of(self, node_name: str) -> Any:
        pubsub = self._pubsubs.get(node_name)
        if pubsub is None:
            node = self._cluster.get_node(node_name=node_name)
            client = redis.Redis(
                host=node.host,
                port=node.port,
                socket_timeout=None,
                socket_connect_timeout=self._connect_timeout,
                retry=NO_SILENT_RECONNECT,
                decode_responses=True,
                **self._credentials(),
            )
            pubsub = self._pubsubs[node_name] = client.pubsub()
        return pubsub

    def _credentials(self) -> dict[str, Any]:
        kwargs = self._cluster.get_connection_kwargs()
        return {key: kwargs[key] for key in ("username", "password") if kwargs.get(key)}

    async def _read(self, name: str, pubsub: Any) -> None:
        # get_message, not listen(): listen() also ends when a shard has no channel left (its last user
        # closed), which is no failure, and it drops the unsubscribe messages that tell a slot moved.
        try:
            while True:
                try:
                    message = await pubsub.get_message(timeout=None)
                except MovedError as moved:  # an SSUBSCRIBE reached a shard that no longer owns the slot
                    self._reroute(c for c in self._channel_node if self._cluster.keyslot(c) == moved.slot_id)
                    continue
                if message is None:
                    continue
                if message["type"] == "smessage":
                    self._inbox.put_nowait((message["channel"], message["data"]))
                elif message["type"] == "sunsubscribe":
                    self._on_unsubscribed(message["channel"])
        except asyncio.CancelledError:
            raise
        except (RedisError, OSError):  # the connection failed: this shard's channels go elsewhere or wait
            await self._drop_shard(name, pubsub)
        except Exception as error:  # not a shard's trouble: the consumer rebuilds everything
            self._inbox.put_nowait(error)

    async def _drop_shard(self, name: str, pubsub: Any) -> None:
        if self._pubsubs.get(name) is pubsub:  # (a late failure of a replaced connection moves nothing)
            del self._pubsubs[name]
            self._reroute(channel for channel, node in self._channel_node.items() if node == name)
        await _close_quietly(pubsub)

    def _on_unsubscribed(self, channel: str) -> None:
        if self._unsubscribing[channel] > 0:  # the confirmation of our own SUNSUBSCRIBE
            self._unsubscribing[channel] -= 1
            if not self._unsubscribing[channel]:
                del self._unsubscribing[channel]
        elif channel in self._channel_node:  # not asked for: the channel's slot moved to another shard
            self._reroute([channel])

    def _reroute(self, channels: Iterable[str]) -> None:
        now = time.monotonic()
        for channel in channels:
            self._adrift.setdefault(channel, now)
        if self._adrift and (self._rerouter is None or self._rerouter.done()):
            self._rerouter = _in_own_context(self._reroute_adrift(), "redis-shard-reroute")

    async def _reroute_adrift(self) -> None:
        delay = REROUTE_GATHER_SECONDS
        try:
            while self._adrift:
                await asyncio.sleep(delay)
                adrift = {c: since for c, since in self._adrift.items() if c in self._channel_node}
                self._adrift.clear()
                if not adrift:
                    continue
                oldest = min(adrift.values())
                if time.monotonic() - oldest > MAX_ADRIFT_SECONDS or any(
                    self._reroutes[c] >= MAX_REROUTES for c in adrift
                ):
                    self._adrift.update(adrift)  # for the consumer's catch-up (adrift_since)
                    raise ShardChannelsAdrift(f"{len(adrift)} shard channels could not be routed again")
                try:
                    await self._cluster.nodes_manager.initialize()  # where the slots live now
                    await self.ssubscribe(*adrift)
                except (RedisError, OSError):
                    for channel, since in adrift.items():  # try again later, still counting from the first loss
                        self._adrift[channel] = min(self._adrift.get(channel, since), since)
                    delay = min(max(delay, 0.05) * 2, MAX_REROUTE_DELAY)
                    continue
                delay = REROUTE_GATHER_SECONDS
                self._reroutes.update(adrift.keys())  # (a mapping would add its values as counts)
                self._on_rerouted(list(adrift), time.monotonic() - oldest)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # the consumer rebuilds everything
            self._inbox.put_nowait(error)


def _in_own_context(coroutine: Coroutine[Any, Any, None], name: str) -> asyncio.Task:
    # Started while serving a socket, they outlive it: its request id must not stick to what they log.
    return asyncio.create_task(coroutine, name=name, context=contextvars.Context())


async def _close_quietly(pubsub: Any) -> None:
    with contextlib.suppress(Exception):
        await pubsub.aclose()
        await pubsub.connection_pool.disconnect()
