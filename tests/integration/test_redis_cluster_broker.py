"""The broker on a Redis Cluster whose slot map changes under it: it must follow the new map by itself."""

from __future__ import annotations

import asyncio

from redis.crc import key_slot

from adapters.redis.broker import RedisBroker
from tests.fixtures.servers import redis_cluster
from tests.fixtures.waiting import eventually
from tests.integration.test_redis_broker import subscribed, until_healthy

# No presence refresh during the test: before, that refresh was what happened to bring a fresh slot map.
QUIET_PRESENCE = 3600.0


async def test_after_a_failover_the_subscriber_follows_the_new_slot_map():
    with redis_cluster() as cluster:  # starting it blocks this test's loop a few seconds; nothing else runs on it
        brokers = [RedisBroker(cluster.url, "fo", cluster=True, presence_ttl=QUIET_PRESENCE) for _ in range(2)]
        listener, publisher = brokers
        for broker in brokers:
            await broker.start()
        try:
            await until_healthy(*brokers)
            failing = cluster.nodes[2]  # not the node of the URL
            user = next(i for i in range(1, 10_000) if cluster.master_of(key_slot(f"{{{i}}}".encode())) is failing)
            phone = await subscribed(listener, user)
            assert await publisher.publish(user, {"type": "before"}) == 1

            await asyncio.to_thread(cluster.add_replica, 2)
            await asyncio.to_thread(cluster.fail_over, 2)

            async def reaches_the_phone() -> bool:
                return await publisher.publish(user, {"type": "after"}) == 1

            await eventually(reaches_the_phone, within=30, every=0.2)
            assert "after" in phone.types()
        finally:
            for broker in brokers:
                await broker.close()
