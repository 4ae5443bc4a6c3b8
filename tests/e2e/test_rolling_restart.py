"""A rolling restart under load: two instances on PostgreSQL + Redis, each stopped (SIGTERM) and started
again in turn while a seeker assigns work at a steady rate and the provider's app fails over. Nothing is
lost or doubled, no 5xx other than 503 reaches a client, and each instance exits 0."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import subprocess
import sys
import time
import uuid

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from entrypoints.container import close
from entrypoints.settings import Settings
from tests.e2e.conftest import BASE_ENV, Admin, checked, seed_assignment
from tests.fixtures.servers import free_port
from tests.fixtures.waiting import eventually

pytestmark = pytest.mark.postgres


class Instance:
    """``workcast serve`` on a fixed port, which the test stops and starts again."""

    def __init__(self, env: dict[str, str], log_path) -> None:
        self.port = free_port()
        self.env, self.log_path = env, log_path
        self.process: subprocess.Popen | None = None
        self.exit_codes: list[int] = []

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "entrypoints.cli", "serve", "--port", str(self.port)],
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.base_url}/health", timeout=0.5).status_code == 200:
                    return
            assert self.process.poll() is None and time.monotonic() < deadline, self.log_path.read_text()[-3000:]
            time.sleep(0.05)

    def stop(self) -> None:
        assert self.process is not None
        self.process.terminate()  # SIGTERM: what an orchestrator sends
        self.exit_codes.append(self.process.wait(60))
        self.process = None


async def test_restarting_each_instance_in_turn_loses_nothing(postgres_url, redis_url, tmp_path):
    env = {
        **BASE_ENV,
        "DATABASE_URL": postgres_url,
        "REDIS_URL": redis_url,
        "REDIS_KEY_PREFIX": f"roll{free_port()}",
        "JWT_SECRET": "r" * 40,
        "AUTO_MIGRATE": "false",
        "SHUTDOWN_GRACE_SECONDS": "5",
    }
    admin = Admin(Settings.from_env(env))
    try:
        seeker, provider = await admin.seeker(), await admin.provider()
    finally:
        await close(admin.container)
    instances = [Instance(env, tmp_path / "a.log"), Instance(env, tmp_path / "b.log")]
    for instance in instances:
        await asyncio.to_thread(instance.start)

    seen: set[int] = set()  # work ids the provider's app was shown (live or by replay)
    created: dict[str, int] = {}  # idempotency key -> work id
    bad_answers: list[int] = []
    stop = asyncio.Event()

    async def provider_app() -> None:
        """The app: connected to one instance, failing over to the other when its socket closes (until cancelled)."""
        for instance in itertools.cycle(instances):
            url = f"ws://127.0.0.1:{instance.port}/ws/work/provider/?token={provider.token}"
            with contextlib.suppress(OSError, ConnectionClosed, InvalidHandshake, TimeoutError):
                async with connect(url, open_timeout=5) as socket:
                    while True:
                        message = checked(await socket.recv())
                        if message["type"] == "work_assigned":
                            seen.add(message["work_id"])
                            await socket.send(f'{{"type": "ack", "notification_id": {message["notification_id"]}}}')
            await asyncio.sleep(0.1)

    async def seeker_app(http: httpx.AsyncClient) -> None:
        """Assigns at a steady pace; a request that fails is retried on the other instance with the same key."""
        while not stop.is_set():
            key = uuid.uuid4().hex
            for attempt in range(40):
                instance = instances[attempt % 2]
                try:
                    r = await http.post(
                        f"{instance.base_url}/api/1/profiles/assign-work/",
                        json=seed_assignment(provider.id),
                        headers=seeker.headers | {"Idempotency-Key": key},
                    )
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
                    continue
                if r.status_code == 201:
                    created[key] = r.json()["data"]["work_order_id"]
                    break
                if r.status_code not in (409, 503):  # request_in_progress, draining: retry
                    bad_answers.append(r.status_code)
                await asyncio.sleep(0.05)
            else:
                raise AssertionError(f"no instance took the order with key {key}")
            await asyncio.sleep(0.05)

    async with httpx.AsyncClient(timeout=20) as http:
        app = asyncio.create_task(provider_app())
        load = asyncio.create_task(seeker_app(http))
        try:
            await asyncio.sleep(1.0)
            for instance in instances:
                await asyncio.to_thread(instance.stop)
                await asyncio.sleep(0.5)
                await asyncio.to_thread(instance.start)
                await asyncio.sleep(1.0)
            stop.set()
            await asyncio.wait_for(load, 60)

            async def everything_shown() -> bool:
                return seen >= set(created.values())

            await eventually(everything_shown, within=60)
            orders, cursor = [], None
            while True:
                page = await http.get(
                    f"{instances[0].base_url}/api/1/profiles/work-orders/",
                    params={"limit": 100} | ({"cursor": cursor} if cursor else {}),
                    headers=seeker.headers,
                )
                orders += page.json()["data"]["work_orders"]
                cursor = page.json()["data"]["next_cursor"]
                if cursor is None:
                    break
        finally:
            stop.set()
            app.cancel()
            load.cancel()
            for instance in instances:
                if instance.process is not None:
                    await asyncio.to_thread(instance.stop)

    assert len(created) >= 10, created
    assert bad_answers == []
    assert [instance.exit_codes for instance in instances] == [[0, 0], [0, 0]]
    assert len(orders) == len(created) == len(set(created.values()))  # one order per key: none doubled
