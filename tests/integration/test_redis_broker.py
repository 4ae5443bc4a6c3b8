"""The Redis broker against a real redis-server: fan-out across instances, truthful counts, outages."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import pytest

from adapters.redis.broker import COMMAND_TIMEOUT, SCRIPT_CHUNK, RedisBroker
from application.errors import BrokerUnavailable
from tests.unit.conftest import FakeSocket


@pytest.fixture
async def instances(redis_url):
    """Two app instances' brokers on one Redis, each with its own subscriber connection."""
    prefix = f"test{id(redis_url)}{asyncio.get_running_loop().time()}"
    async with started(*(RedisBroker(redis_url, prefix=prefix, presence_ttl=1.5) for _ in range(2))) as made:
        yield made


@contextlib.asynccontextmanager
async def started(*brokers: RedisBroker) -> AsyncIterator[list[RedisBroker]]:
    """The brokers started and listening; closed afterwards."""
    try:
        for broker in brokers:
            await broker.start()
        await until_healthy(*brokers)
        yield list(brokers)
    finally:
        for broker in brokers:
            await broker.close()


async def until_healthy(*brokers, within: float = 10) -> None:
    async with asyncio.timeout(within):
        while not all([await b.is_healthy() for b in brokers]):  # noqa: ASYNC110 (polls Redis, not a local event)
            await asyncio.sleep(0.05)


async def subscribed(broker: RedisBroker, user_id: int) -> FakeSocket:
    socket = FakeSocket()
    await broker.subscribe(user_id, socket)
    return socket


async def test_a_message_crosses_instances_and_the_count_is_of_sockets_reached(instances):
    a, b = instances
    phone = await subscribed(a, 7)
    assert await b.publish(7, {"type": "work_assigned", "work_id": 1}) == 1
    assert phone.frames == [{"type": "work_assigned", "work_id": 1}]
    assert await b.publish(8, {"type": "nobody"}) == 0


async def test_every_socket_of_the_user_on_every_instance_receives_it(instances):
    a, b = instances
    phone, tablet, web = await subscribed(a, 7), await subscribed(b, 7), await subscribed(b, 7)
    reached = await a.publish(7, {"type": "work_assigned", "work_id": 2})
    assert reached >= 1
    await asyncio.sleep(0.1)
    assert phone.types() == tablet.types() == web.types() == ["work_assigned"]


async def test_a_socket_that_cannot_be_written_does_not_count(instances):
    a, b = instances
    dead = await subscribed(a, 9)
    dead.broken = True
    assert await b.publish(9, {"type": "work_assigned"}) == 0


async def test_the_last_socket_leaving_unsubscribes_the_instance(instances):
    a, b = instances
    first, second = await subscribed(a, 11), await subscribed(a, 11)
    await a.unsubscribe(11, first)
    assert await b.publish(11, {"type": "x"}) == 1
    await a.unsubscribe(11, second)
    assert await b.publish(11, {"type": "x"}) == 0


async def test_presence_spans_instances_and_expires_with_a_dead_instance(instances, redis_url):
    a, b = instances
    socket = await subscribed(a, 21)
    assert await b.online([21, 22]) == {21}
    await a.unsubscribe(21, socket)
    assert await b.online([21]) == set()
    # An instance that dies without cleaning up: its presence runs out by itself.
    crashed = RedisBroker(redis_url, prefix=a._prefix, presence_ttl=1.0)
    await crashed.start()
    await subscribed(crashed, 23)
    assert await b.online([23]) == {23}
    for task in crashed._tasks:
        task.cancel()
    await asyncio.sleep(1.2)
    assert await b.online([23]) == set()


async def test_the_presence_of_many_users_outlives_its_ttl_and_leaves_with_its_instance(instances, redis_url):
    """Presence is refreshed before it runs out, in chunks (more users here than one script call takes), and an
    instance that closes takes all of its users' presence away at once."""
    _, b = instances
    users = list(range(1000, 1000 + 2 * SCRIPT_CHUNK + 7))
    async with started(RedisBroker(redis_url, prefix=b._prefix, presence_ttl=1.5)) as (leaving,):
        for user in users:
            await subscribed(leaving, user)
        await asyncio.sleep(2.5)  # past the TTL of the first ones: only the refresh (every 0.5 s) keeps them
        assert await b.online(users) == set(users)
    assert await b.online(users) == set()


async def test_an_idle_subscriber_outlives_redis_client_read_timeouts(instances):
    a, b = instances
    socket = await subscribed(a, 31)
    await asyncio.sleep(6)  # longer than redis-py's 5 s default socket timeout
    assert await b.publish(31, {"type": "still_here"}) == 1
    assert socket.types() == ["still_here"]


async def test_redis_restart_sockets_stay_and_messages_flow_again(instances, redis):
    a, b = instances
    socket = await subscribed(a, 41)
    redis.stop()
    with pytest.raises(BrokerUnavailable):
        await b.publish(41, {"type": "lost_in_transit"})
    with pytest.raises(BrokerUnavailable):
        await b.online([41])
    assert not await a.is_healthy()
    late = await subscribed(a, 42)  # a socket that connects during the outage
    redis.start()
    await until_healthy(a, b, within=15)
    assert await b.publish(41, {"type": "after_restart"}) == 1
    assert await b.publish(42, {"type": "after_restart"}) == 1
    assert socket.types() == ["after_restart"] and late.types() == ["after_restart"]
    assert await b.online([41, 42]) == {41, 42}


async def test_one_encoding_serves_all_local_sockets(instances):
    a, b = instances
    sockets = [await subscribed(a, 51) for _ in range(3)]
    texts = []
    for s in sockets:
        original = s.__call__

        async def capture(text, original=original):
            texts.append(text)
            await original(text)

        await a.unsubscribe(51, s)
        await a.subscribe(51, capture)
    await b.publish(51, {"type": "same", "n": 1})
    await asyncio.sleep(0.05)
    assert len(texts) == 3 and len({id(t) for t in texts}) == 1 and json.loads(texts[0]) == {"type": "same", "n": 1}


async def test_a_redis_that_accepts_but_never_answers_is_unavailable_not_a_hang():
    """A hung Redis (a stopped process, a black-holed route) keeps its connections open: each command is bounded."""

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # reads whatever comes, answers nothing, until the client leaves
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    broker = RedisBroker(f"redis://127.0.0.1:{port}", prefix="silent")
    await broker.start()
    try:
        async with asyncio.timeout(COMMAND_TIMEOUT + 10):
            with pytest.raises(BrokerUnavailable):
                await broker.publish(1, {"type": "work_assigned"})
            assert not await broker.is_healthy()
    finally:
        await broker.close()
        server.close()
