"""The broker on a Redis Cluster whose slot map changes under it (a reshard, a failover): it must follow the
new map by itself."""

from __future__ import annotations

import asyncio

import pytest
from redis.crc import key_slot

from adapters.redis.broker import RedisBroker
from tests.fixtures.servers import redis_cluster
from tests.fixtures.waiting import eventually
from tests.integration.test_redis_broker import started, subscribed

# No presence refresh during a test: before, that refresh was what happened to bring a fresh slot map.
QUIET_PRESENCE = 3600.0


@pytest.fixture(scope="module")
def cluster():
    with redis_cluster() as running:
        yield running


@pytest.fixture
async def brokers(cluster):
    """A listening instance and a publishing one."""
    prefix = f"b{id(object())}"
    made = [RedisBroker(cluster.url, prefix, cluster=True, presence_ttl=QUIET_PRESENCE) for _ in "ab"]
    async with started(*made):
        yield made


def slot_of(user_id: int) -> int:
    return key_slot(f"{{{user_id}}}".encode())


async def reaches(publisher: RedisBroker, user_id: int) -> bool:
    return await publisher.publish(user_id, {"type": "after"}) == 1


async def test_dropped_shard_connections_are_routed_again_without_a_rebuild(cluster, brokers):
    listener, publisher = brokers
    users = [201, 202, 203, 204, 205, 206]  # on several shards
    phones = [await subscribed(listener, user) for user in users]
    shards = listener._pubsub
    for _ in range(3):  # again and again: each time only the shards' own channels are routed again
        await asyncio.to_thread(cluster.drop_subscriber_connections)
        for user in users:
            await eventually(lambda u=user: reaches(publisher, u), within=30, every=0.1)
    assert listener._pubsub is shards
    assert all("after" in phone.types() for phone in phones)


async def test_a_moved_slot_is_followed_without_rebuilding_the_other_subscriptions(cluster, brokers):
    listener, publisher = brokers
    told: list[list[int]] = []

    async def on_reconnect(users, gap) -> None:
        told.append(sorted(users))

    listener.on_reconnect(on_reconnect)
    moving, staying = 101, 102
    assert cluster.master_of(slot_of(moving)) is not None and slot_of(moving) != slot_of(staying)
    phone, other_phone = await subscribed(listener, moving), await subscribed(listener, staying)
    assert await publisher.publish(moving, {"type": "before"}) == 1
    shards = listener._pubsub  # the per-shard subscribers: a full rebuild would replace them

    await asyncio.to_thread(cluster.migrate_slot, slot_of(moving))

    await eventually(lambda: reaches(publisher, moving), within=30, every=0.2)
    assert "after" in phone.types()
    assert listener._pubsub is shards  # only the moved channel was routed again
    await eventually(lambda: told)
    assert all(users == [moving] for users in told)  # and only its user is caught up
    assert await publisher.publish(staying, {"type": "still"}) == 1
    assert "still" in other_phone.types()


async def test_after_a_failover_only_the_failed_shards_channels_move_to_the_new_master(cluster, brokers):
    listener, publisher = brokers
    failing = cluster.nodes[2]  # not the node of the URL
    user = next(i for i in range(1, 10_000) if cluster.master_of(slot_of(i)) is failing)
    elsewhere = next(i for i in range(1, 10_000) if cluster.master_of(slot_of(i)) is not failing)
    phone, other_phone = await subscribed(listener, user), await subscribed(listener, elsewhere)
    assert await publisher.publish(user, {"type": "before"}) == 1
    shards = listener._pubsub

    await asyncio.to_thread(cluster.add_replica, 2)
    await asyncio.to_thread(cluster.fail_over, 2)

    await eventually(lambda: reaches(publisher, user), within=30, every=0.2)
    assert "after" in phone.types()
    assert listener._pubsub is shards  # the failed shard's channels were routed again, the others left alone
    assert await publisher.publish(elsewhere, {"type": "still"}) == 1
    assert "still" in other_phone.types()
