"""Sharded pub/sub on a Redis Cluster: one subscriber connection per shard, each read by its own task.

Why not redis-py's ClusterPubSub alone: its ``get_sharded_message`` polls the shards one after the other,
waiting up to its timeout on each, so a message on the third shard waits for the first two to time out
(measured: the publisher's 1 s wait for an answer ran out, ``websocket_sent`` was false). Here every shard's
connection has a reader of its own and messages arrive as soon as they are read. Routing uses the cluster
client's slot map (``get_node_from_key``); any failure of any shard is reported to the consumer, which
rebuilds everything from a fresh slot map (a restarted master, a failover, a moved slot).

A slot that migrates to another shard takes its channels' subscriptions with it: the old owner sends an
``sunsubscribe`` nobody asked for. That is reported as a failure too, so the consumer subscribes again where
the slot now lives. (redis-py's ``listen()`` hides it; the readers here read every message themselves.)

SSUBSCRIBE takes channels of one slot only (else CROSSSLOT), so channels are subscribed a slot at a time;
and redis-py's own reconnect-and-resubscribe is turned off (``NO_SILENT_RECONNECT``): it resubscribes every
channel of a connection in one command, which a shard refuses, and it would hide the outage from the
consumer, whose catch-up depends on hearing of it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

# A subscriber connection that drops raises to its reader instead of reconnecting on its own: the
# consumer must know that messages may have been missed (it catches them up) and does the reconnecting.
NO_SILENT_RECONNECT = Retry(NoBackoff(), 0)
YIELD_EVERY = 100  # SSUBSCRIBE commands written between two turns of the event loop


class ShardChannelDropped(RedisError):
    """A shard unsubscribed a channel we still want: its slot moved to another shard."""


class ShardSubscribers:
    def __init__(self, cluster: RedisCluster, connect_timeout: float = 2.0) -> None:
        self._cluster = cluster
        self._connect_timeout = connect_timeout
        self._pubsubs: dict[str, Any] = {}  # node name -> its PubSub
        self._readers: list[asyncio.Task] = []
        self._channel_node: dict[str, str] = {}  # the channels wanted, and the node each was subscribed on
        self._unsubscribing: Counter[str] = Counter()  # our own SUNSUBSCRIBEs not yet confirmed
        self._inbox: asyncio.Queue[tuple[str, str] | BaseException] = asyncio.Queue()

    async def ssubscribe(self, *channels: str) -> None:
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
            if new:  # read once subscribed: listen() on a connection with no subscription returns at once
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
        for reader in self._readers:
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
                message = await pubsub.get_message(timeout=None)
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
        elif channel in self._channel_node:
            self._inbox.put_nowait(ShardChannelDropped(f"a shard dropped {channel}: its slot moved"))
