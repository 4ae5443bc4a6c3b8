"""Two instances on a 3-master Redis Cluster (sharded pub/sub, hash-tagged keys) through a master restart,
dropped subscriber connections, a slot migration and a failover to a replica: every offer still reaches its
provider's socket, and the sockets keep receiving live afterwards."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from redis.crc import key_slot

from entrypoints.container import close
from entrypoints.settings import Settings
from tests.e2e.conftest import (
    BASE_ENV,
    Admin,
    Server,
    broker_reconnects,
    open_socket,
    seed_assignment,
    server_process,
)
from tests.fixtures.servers import free_port, redis_cluster
from tests.fixtures.waiting import eventually

PROVIDERS = 6  # their channels land on different shards
NOWHERE = {"latitude": -61.5, "longitude": -61.5}  # the Southern Ocean: no other test's providers


@pytest.fixture(scope="module")
def cluster():
    with redis_cluster() as running:
        yield running


@pytest.fixture
def cluster_env(postgres_url, cluster) -> dict[str, str]:
    return {
        "DATABASE_URL": postgres_url,
        "REDIS_CLUSTER_URL": cluster.url,
        "REDIS_KEY_PREFIX": f"cl{free_port()}",
        "JWT_SECRET": "c" * 40,
        "AUTO_MIGRATE": "false",
        "DELIVERY_FIRST_RETRY_SECONDS": "0.5",
    }


async def offers_reach_every_provider(http, seeker, providers, apps, live: bool = False) -> None:
    for provider, app in zip(providers, apps, strict=True):
        r = await http.post("/api/1/profiles/assign-work/", json=seed_assignment(provider.id), headers=seeker.headers)
        assert r.status_code == 201, r.text
        if live:  # reached the socket through the shard at once, not by a later retry
            assert r.json()["data"]["websocket_sent"] is True, provider
        work_id = r.json()["data"]["work_order_id"]
        while True:  # a retry or the catch-up after a reconnect may bring older ones first
            message = await app.receive(within=60)
            if message["type"] == "work_assigned" and message["work_id"] == work_id:
                break


def slot_of(user) -> int:
    """The cluster slot of a user's channel and keys (their hash tag is the user id)."""
    return key_slot(f"{{{user.id}}}".encode())


async def reconnected_since(server: Server, before: float) -> bool:
    return await broker_reconnects(server) > before


async def test_two_instances_on_a_redis_cluster_survive_a_master_restart(cluster, cluster_env, tmp_path):
    ports = free_port(), free_port()
    admin = Admin(Settings.from_env({**BASE_ENV, **cluster_env}))
    try:
        with (
            server_process(cluster_env, ports[0], tmp_path / "a.log"),
            server_process(cluster_env, ports[1], tmp_path / "b.log"),
        ):
            a, b = (Server(f"http://127.0.0.1:{p}", f"ws://127.0.0.1:{p}", None) for p in ports)  # type: ignore[arg-type]
            seeker = await admin.seeker()
            providers = [await admin.provider(f"Shard {i}") for i in range(PROVIDERS)]
            async with httpx.AsyncClient(base_url=b.base_url, timeout=30) as http:
                sockets = [open_socket(a, "/ws/work/provider/", p.token) for p in providers]
                apps = [await s.__aenter__() for s in sockets]
                try:
                    for app in apps:
                        app.skip_replay()
                    # Presence is hash-tagged per user: instance B sees who is connected on A.
                    listed = await http.get(
                        "/api/1/profiles/active-providers/", headers=seeker.headers, params={"limit": 500}
                    )
                    online = {p["id"] for p in listed.json()["data"]["providers"] if p.get("online")}
                    assert {p.id for p in providers} <= online
                    # Published on B, received on A's sockets through the owning shards.
                    first = await http.post(
                        "/api/1/profiles/assign-work/", json=seed_assignment(providers[0].id), headers=seeker.headers
                    )
                    assert first.json()["data"]["websocket_sent"] is True
                    assert (await apps[0].receive())["type"] == "work_assigned"
                    await offers_reach_every_provider(http, seeker, providers, apps)

                    await asyncio.to_thread(cluster.restart, 1)
                    # Right after the restart: nothing lost (retries and the listener's catch-up), and later
                    # offers arrive live again.
                    await offers_reach_every_provider(http, seeker, providers, apps)
                    await offers_reach_every_provider(http, seeker, providers, apps)

                    # Every shard drops its subscriber connections (a proxy, a network blip): the instance
                    # hears of it, subscribes again a slot at a time (one SSUBSCRIBE across slots is refused
                    # with CROSSSLOT) and later offers arrive live on every shard.
                    before = await broker_reconnects(a)
                    await asyncio.to_thread(cluster.drop_subscriber_connections)
                    await eventually(lambda: reconnected_since(a, before), within=60)
                    await offers_reach_every_provider(http, seeker, providers, apps)
                    await offers_reach_every_provider(http, seeker, providers, apps, live=True)

                    # A slot migrates (resharding): its shard unsubscribes the channel on its own. The instance
                    # subscribes again where the slot now lives, and the offers stay live.
                    before = await broker_reconnects(a)
                    await asyncio.to_thread(cluster.migrate_slot, slot_of(providers[0]))
                    await eventually(lambda: reconnected_since(a, before), within=60)
                    await offers_reach_every_provider(http, seeker, providers, apps)
                    await offers_reach_every_provider(http, seeker, providers, apps, live=True)

                    # A master holding providers' channels dies and its replica takes over: a new slot map.
                    failing = cluster.nodes[2]  # not the node of REDIS_CLUSTER_URL
                    assert any(cluster.master_of(slot_of(p)) is failing for p in providers)
                    await asyncio.to_thread(cluster.add_replica, 2)
                    before = await broker_reconnects(a)
                    await asyncio.to_thread(cluster.fail_over, 2)
                    await eventually(lambda: reconnected_since(a, before), within=60)
                    await offers_reach_every_provider(http, seeker, providers, apps)
                    await offers_reach_every_provider(http, seeker, providers, apps, live=True)
                finally:
                    for s in sockets:
                        await s.__aexit__(None, None, None)
    finally:
        await close(admin.container)
