"""Limits a public API needs: per user by route group, per address on failed authentication, per socket
message rate, pending orders per seeker; across instances through Redis, failing open without it."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from entrypoints.container import close
from entrypoints.settings import Settings
from tests.e2e.conftest import BASE_ENV, Admin, Server, open_socket, running_server, seed_assignment, server_process
from tests.fixtures.servers import free_port
from tests.fixtures.waiting import eventually

LIMITS = {
    "RATE_LIMIT_ASSIGN": "3/0.1",  # 3 at once, then one every 10 s
    "RATE_LIMIT_READ": "5/0.1",
    "RATE_LIMIT_AUTH_FAILURES": "3/0.01",
    "RATE_LIMIT_SOCKET_MESSAGES": "5/0.5",
    "RATE_LIMIT_SOCKET_CONNECTS": "3/0.01",
    "MAX_PENDING_ORDERS_PER_SEEKER": "4",
}


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    with running_server({"WORKCAST_DATA_DIR": str(tmp_path_factory.mktemp("limits")), **LIMITS}) as server:
        yield server


@pytest.fixture
async def admin(limited):
    admin = Admin(limited.settings)
    yield admin
    await close(admin.container)


def assert_limited(r: httpx.Response) -> None:
    assert r.status_code == 429, r.text
    body = r.json()
    assert body["status"] == "error" and body["code"] == "rate_limited" and body["data"] is None
    assert int(r.headers["Retry-After"]) >= 1


async def test_each_user_has_their_own_assign_budget_and_429_says_when_to_come_back(limited, admin):
    seeker, other, provider = await admin.seeker(), await admin.seeker("Other"), await admin.provider()
    async with httpx.AsyncClient(base_url=limited.base_url, timeout=20) as http:
        answers = [
            await http.post("/api/1/profiles/assign-work/", json=seed_assignment(provider.id), headers=seeker.headers)
            for _ in range(5)
        ]
        assert [r.status_code for r in answers[:3]] == [201, 201, 201]
        for r in answers[3:]:
            assert_limited(r)
        assert 5 <= int(answers[3].headers["Retry-After"]) <= 10
        # Someone else is not slowed down by this seeker, and reads have their own budget.
        r = await http.post("/api/1/profiles/assign-work/", json=seed_assignment(provider.id), headers=other.headers)
        assert r.status_code == 201
        assert (await http.get("/api/1/profiles/work-orders/", headers=seeker.headers)).status_code == 200
        reads = [(await http.get("/api/1/profiles/me/", headers=other.headers)).status_code for _ in range(6)]
        assert reads[:4] == [200] * 4 and reads[-1] == 429  # the other seeker's one read above counted too


async def test_a_seeker_has_a_bounded_number_of_unanswered_orders(tmp_path):
    env = {"WORKCAST_DATA_DIR": str(tmp_path), "MAX_PENDING_ORDERS_PER_SEEKER": "2"}
    with running_server(env) as server:
        local = Admin(server.settings)
        try:
            seeker, provider = await local.seeker(), await local.provider()
        finally:
            await close(local.container)
        async with httpx.AsyncClient(base_url=server.base_url, timeout=20) as http:
            made = [
                await http.post(
                    "/api/1/profiles/assign-work/", json=seed_assignment(provider.id), headers=seeker.headers
                )
                for _ in range(3)
            ]
            assert [r.status_code for r in made] == [201, 201, 409]
            assert made[2].json()["code"] == "too_many_pending_orders"
            first = made[0].json()["data"]["work_order_id"]
            assert (await http.post(f"/api/1/profiles/work-orders/{first}/cancel/", headers=seeker.headers)).is_success
            again = seed_assignment(provider.id)
            r = await http.post("/api/1/profiles/assign-work/", json=again, headers=seeker.headers)
            assert r.status_code == 201


async def test_failed_authentication_is_limited_per_address_http_and_socket(tmp_path):
    env = {"WORKCAST_DATA_DIR": str(tmp_path), "RATE_LIMIT_AUTH_FAILURES": "3/0.01"}
    with running_server(env) as server:
        local = Admin(server.settings)
        try:
            seeker = await local.seeker()
        finally:
            await close(local.container)
        async with httpx.AsyncClient(base_url=server.base_url, timeout=20) as http:
            bad = {"Authorization": "Bearer not.a.token"}
            statuses = [(await http.get("/api/1/profiles/me/", headers=bad)).status_code for _ in range(3)]
            assert statuses == [401, 401, 401]
            assert_limited(await http.get("/api/1/profiles/me/", headers=bad))
            # A good token from the same address still works: only failures are counted.
            assert (await http.get("/api/1/profiles/me/", headers=seeker.headers)).status_code == 200
        async with open_socket(server, "/ws/work/seeker/", "not.a.token") as app:
            with pytest.raises(ConnectionClosed) as closed:
                await app.receive()
            assert closed.value.rcvd.code == 4429


async def test_a_user_reconnecting_in_a_loop_is_refused_4429(limited, admin):
    provider = await admin.provider("Loop")
    for _ in range(3):
        async with open_socket(limited, "/ws/work/provider/", provider.token) as app:
            await app.send({"type": "ping"})
            assert (await app.receive())["type"] == "pong"
    async with open_socket(limited, "/ws/work/provider/", provider.token) as app:
        with pytest.raises(ConnectionClosed) as closed:
            await app.receive()
        assert closed.value.rcvd.code == 4429 and "too many connections" in closed.value.rcvd.reason


async def test_a_flooding_socket_is_told_then_closed_and_others_keep_their_pace(limited, admin):
    flooder, bystander = await admin.provider("Flood"), await admin.provider("Calm")
    async with (
        open_socket(limited, "/ws/work/provider/", flooder.token) as flood,
        open_socket(limited, "/ws/work/provider/", bystander.token) as calm,
    ):
        for _ in range(5):
            await flood.send({"type": "ping"})
            assert (await flood.receive())["type"] == "pong"
        await flood.send({"type": "ping"})
        refused = await flood.receive()
        assert refused["type"] == "error" and refused["code"] == "rate_limited"
        with pytest.raises(ConnectionClosed) as closed:
            for _ in range(20):
                await flood.send({"type": "ping"})
                await flood.receive()
        assert closed.value.rcvd.code == 1008
        await calm.send({"type": "ping"})
        assert (await calm.receive())["type"] == "pong"


@pytest.mark.postgres
async def test_the_limit_holds_across_instances_and_fails_open_without_redis(postgres_url, redis, tmp_path):
    env = {
        "DATABASE_URL": postgres_url,
        "REDIS_URL": redis.url,
        "REDIS_KEY_PREFIX": f"limits{free_port()}",
        "JWT_SECRET": "l" * 40,
        "AUTO_MIGRATE": "false",
        **{k: v for k, v in BASE_ENV.items() if not k.startswith(("RATE_LIMIT", "MAX_PENDING"))},
        "RATE_LIMIT_ASSIGN": "4/0.01",
        "MAX_PENDING_ORDERS_PER_SEEKER": "0",
    }
    if redis.process is None:
        redis.start()
    admin = Admin(Settings.from_env(env))
    try:
        seeker, provider = await admin.seeker(), await admin.provider()
    finally:
        await close(admin.container)
    ports = free_port(), free_port()
    with (
        server_process(env, ports[0], tmp_path / "a.log"),
        server_process(env, ports[1], tmp_path / "b.log"),
    ):
        servers = [Server(f"http://127.0.0.1:{p}", f"ws://127.0.0.1:{p}", None) for p in ports]  # type: ignore[arg-type]
        async with httpx.AsyncClient(timeout=20) as http:

            async def assign(server: Server) -> int:
                r = await http.post(
                    f"{server.base_url}/api/1/profiles/assign-work/",
                    json=seed_assignment(provider.id),
                    headers=seeker.headers,
                )
                return r.status_code

            statuses = [await assign(servers[i % 2]) for i in range(8)]
            assert statuses.count(201) == 4 and statuses.count(429) == 4  # one budget, two instances

            redis.stop()
            try:
                # Redis is down: the limiter lets requests through (and says so), it never answers 500.
                during = await asyncio.gather(*(assign(servers[i % 2]) for i in range(4)))
                assert set(during) == {201}

                async def counted() -> bool:
                    text = (await http.get(f"{servers[0].base_url}/metrics")).text
                    return "workcast_rate_limiter_unavailable_total 0.0" not in text

                await eventually(counted)
            finally:
                redis.start()


async def test_a_users_oldest_socket_gives_way_past_the_cap(tmp_path):
    env = {"WORKCAST_DATA_DIR": str(tmp_path), "MAX_SOCKETS_PER_USER": "2"}
    with running_server(env) as server:
        local = Admin(server.settings)
        try:
            provider = await local.provider()
        finally:
            await close(local.container)
        async with (
            open_socket(server, "/ws/work/provider/", provider.token) as oldest,
            open_socket(server, "/ws/work/provider/", provider.token) as middle,
            open_socket(server, "/ws/work/provider/", provider.token) as newest,
        ):
            with pytest.raises(ConnectionClosed) as closed:
                await oldest.receive()
            assert closed.value.rcvd.code == 4409 and "newer connection" in closed.value.rcvd.reason
            for app in (middle, newest):
                await app.send({"type": "ping"})
                assert (await app.receive())["type"] == "pong"


@pytest.mark.postgres
async def test_the_socket_cap_holds_across_instances(postgres_url, redis_url, tmp_path):
    env = {
        **BASE_ENV,
        "DATABASE_URL": postgres_url,
        "REDIS_URL": redis_url,
        "REDIS_KEY_PREFIX": f"cap{free_port()}",
        "JWT_SECRET": "c" * 40,
        "AUTO_MIGRATE": "false",
        "MAX_SOCKETS_PER_USER": "2",
    }
    admin = Admin(Settings.from_env(env))
    try:
        provider = await admin.provider()
    finally:
        await close(admin.container)
    ports = free_port(), free_port()
    with server_process(env, ports[0], tmp_path / "a.log"), server_process(env, ports[1], tmp_path / "b.log"):
        a, b = (Server(f"http://127.0.0.1:{p}", f"ws://127.0.0.1:{p}", None) for p in ports)  # type: ignore[arg-type]
        async with (
            open_socket(a, "/ws/work/provider/", provider.token) as first,
            open_socket(a, "/ws/work/provider/", provider.token) as second,
            open_socket(b, "/ws/work/provider/", provider.token) as third,
        ):
            with pytest.raises(ConnectionClosed) as closed:
                await first.receive()
            assert closed.value.rcvd.code == 4409
            for app in (second, third):
                await app.send({"type": "ping"})
                assert (await app.receive())["type"] == "pong"
