"""Sharded pub/sub on a Redis Cluster: one subscriber connection per shard, each read by its own task.

Why not redis-py's ClusterPubSub alone: its ``get_sharded_message`` polls the shards one after the other,
waiting up to its timeout on each, so a message on the third shard waits for the first two to time out
(measured: the publisher's 1 s wait for an answer ran out, ``websocket_sent`` was false). Here every shard's
connection has a reader of its own and messages arrive as soon as they are read. Routing uses the cluster
client's slot map (``get_node_from_key``); any failure of any shard is reported to the consumer, which
rebuilds everything from a fresh slot map (a restarted master, a failover, a dropped connection).

A slot that migrates to another shard takes its channels' subscriptions with it: the old owner sends an
``sunsubscribe`` nobody asked for (redis-py's ``listen()`` hides it; the readers here read every message
themselves), and an SSUBSCRIBE that reaches a shard too late answers MOVED. Only those channels are routed
again, from a fresh slot map, and the consumer hears which ones and for how long they were away
(``on_rerouted``), to catch their users up. A reshard moves thousands of slots one after the other: a full
rebuild for each would resubscribe every user thousands of times.

SSUBSCRIBE takes channels of one slot only (else CROSSSLOT), so channels are subscribed a slot at a time;
and redis-py's own reconnect-and-resubscribe is turned off (``NO_SILENT_RECONNECT``): it resubscribes every
channel of a connection in one command, which a shard refuses, and it would hide the outage from the
consumer, whose catch-up depends on hearing of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
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
# A reshard moves slots one after the other: channels dropped within this long are routed again together.
REROUTE_GATHER_SECONDS = 0.05
# A channel routed again more often than this by one set of subscribers: the slot map does not settle, and
# the consumer rebuilds everything instead.
MAX_REROUTES = 5

# What the consumer hears once channels a shard gave away are subscribed where their slots now live:
# the channels, and how long (s) the first of them was without a subscription.
Rerouted = Callable[[list[str], float], None]


class ShardChannelsAdrift(RedisError):
    """Channels whose slots keep moving (or whose new owner cannot be reached): rebuild everything."""


class ShardSubscribers:
    def __init__(
        self, cluster: RedisCluster, on_rerouted: Rerouted = lambda channels, away: None, connect_timeout: float = 2.0
    ) -> None:
        self._cluster = cluster
        self._on_rerouted = on_rerouted
        self._connect_timeout = connect_timeout
        self._moved: dict[str, float] = {}  # channels a shard gave away -> since when (monotonic)
        self._reroutes: Counter[str] = Counter()
        self._rerouter: asyncio.Task | None = None
        self._subscribing = asyncio.Lock()
        self._pubsubs: dict[str, Any] = {}  # node name -> its PubSub
        self._readers: list[asyncio.Task] = []
        self._channel_node: dict[str, str] = {}  # the channels wanted, and the node each was subscribed on
        self._unsubscribing: Counter[str] = Counter()  # our own SUNSUBSCRIBEs not yet confirmed
        self._inbox: asyncio.Queue[tuple[str, str] | BaseException] = asyncio.Queue()

    async def ssubscribe(self, *channels: str) -> None:
        # One at a time: the rerouter and new sockets both subscribe, and two first SSUBSCRIBEs to a new node
        # would each open a connection for it (PubSub.connect awaits between its check and its set).
        async with self._subscribing:
            await self._ssubscribe(*channels)

    async def _ssubscribe(self, *channels: str) -> None:
        by_node: dict[str, dict[int, list[str]]] = {}
        for channel in channels:
            node = self._cluster.get_node_from_key(channel)
            slot = self._cluster.keyslot(channel)
            by_node.setdefault(node.name, {}).setdefault(slot, []).append(channel)
            self._channel_node[channel] = node.name
        for name, by_slot in by_node.items():
            new = name not in self._pubsubs
            pubsub = self._pubsub_of(name)
            try:
                for count, same_slot in enumerate(by_slot.values(), 1):
                    await pubsub.ssubscribe(*same_slot)
                    if count % YIELD_EVERY == 0:  # resubscribing 10,000 users: let requests run in between
                        await asyncio.sleep(0)
            except Exception as error:
                # A subscription that did not take must not be forgotten: the consumer rebuilds everything
                # (and subscribes these channels again) once the shard answers.
                self._inbox.put_nowait(error)
                raise
            if new:  # read once subscribed: a PubSub has no connection to read before its first command
                self._readers.append(asyncio.create_task(self._read(pubsub), name=f"redis-shard-{name}"))

    async def sunsubscribe(self, channel: str) -> None:
        name = self._channel_node.pop(channel, None)
        if name in self._pubsubs:
            self._unsubscribing[channel] += 1
            await self._pubsubs[name].sunsubscribe(channel)

    async def messages(self) -> AsyncIterator[tuple[str, str]]:
        """``(channel, data)`` from every shard; raises the first failure of any of them."""
        while True:
            item = await self._inbox.get()
            if isinstance(item, BaseException):
                raise item
            yield item

    async def aclose(self) -> None:
        for reader in [*self._readers, self._rerouter]:
            if reader is not None:
                reader.cancel()
        for pubsub in self._pubsubs.values():
            with contextlib.suppress(Exception):
                await pubsub.aclose()
                await pubsub.connection_pool.disconnect()  # type: ignore[union-attr]

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

    async def _read(self, pubsub: Any) -> None:
        # get_message, not listen(): listen() also ends when a shard has no channel left (its last user
        # closed), which is no failure, and it drops the unsubscribe messages that tell a slot moved.
        try:
            while True:
                try:
                    message = await pubsub.get_message(timeout=None)
                except MovedError as moved:  # an SSUBSCRIBE reached a shard that no longer owns the slot
                    self._reroute([c for c in self._channel_node if self._cluster.keyslot(c) == moved.slot_id])
                    continue
                if message is None:
                    continue
                if message["type"] == "smessage":
                    self._inbox.put_nowait((message["channel"], message["data"]))
                elif message["type"] == "sunsubscribe":
                    self._on_unsubscribed(message["channel"])
        except asyncio.CancelledError:
            raise
        except Exception as error:  # reported to the consumer, which rebuilds the subscribers
            self._inbox.put_nowait(error)

    def _on_unsubscribed(self, channel: str) -> None:
        if self._unsubscribing[channel] > 0:  # the confirmation of our own SUNSUBSCRIBE
            self._unsubscribing[channel] -= 1
            if not self._unsubscribing[channel]:
                del self._unsubscribing[channel]
        elif channel in self._channel_node:  # not asked for: the channel's slot moved to another shard
            self._reroute([channel])

    def _reroute(self, channels: list[str]) -> None:
        now = time.monotonic()
        for channel in channels:
            self._moved.setdefault(channel, now)
        if self._moved and (self._rerouter is None or self._rerouter.done()):
            self._rerouter = asyncio.create_task(self._reroute_moved(), name="redis-shard-reroute")

    async def _reroute_moved(self) -> None:
        try:
            while self._moved:
                await asyncio.sleep(REROUTE_GATHER_SECONDS)
                moved, self._moved = self._moved, {}
                wanted = [channel for channel in moved if channel in self._channel_node]
                self._reroutes.update(wanted)
                if any(self._reroutes[channel] > MAX_REROUTES for channel in wanted):
                    raise ShardChannelsAdrift(f"{len(wanted)} shard channels keep moving")
                if not wanted:
                    continue
                await self._cluster.nodes_manager.initialize()  # where the slots live now
                await self.ssubscribe(*wanted)  # a new owner that answers MOVED brings them back here
                self._on_rerouted(wanted, time.monotonic() - min(moved[channel] for channel in wanted))
        except asyncio.CancelledError:
            raise
        except Exception as error:  # the consumer rebuilds everything
            self._inbox.put_nowait(error)
