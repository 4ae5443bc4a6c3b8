"""A real workcast under uvicorn on a loopback port, and real HTTP and WebSocket clients."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import uvicorn
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from domain.profiles import Role
from entrypoints.container import build_container, close
from entrypoints.http.app import create_app
from entrypoints.http.socket_protocol import SERVER_MESSAGE
from entrypoints.server import uvicorn_config
from entrypoints.settings import Settings
from tests.fixtures.servers import free_port

BASE_ENV = {
    "LOG_LEVEL": "WARNING",
    "LOG_FORMAT": "text",
    "DISPATCH_INTERVAL_SECONDS": "0.2",
    "DELIVERY_FIRST_RETRY_SECONDS": "0.2",
    "WORK_TIME_TO_ANSWER_SECONDS": "600",
    "SOCKET_USER_RECHECK_SECONDS": "0.3",
    # Tests drive one user hard; the limits have their own tests (test_rate_limits.py).
    "RATE_LIMIT_ASSIGN": "100000/100000",
    "RATE_LIMIT_WRITE": "100000/100000",
    "RATE_LIMIT_READ": "100000/100000",
    "RATE_LIMIT_AUTH_FAILURES": "100000/100000",
    "RATE_LIMIT_SOCKET_MESSAGES": "100000/100000",
    "RATE_LIMIT_SOCKET_CONNECTS": "100000/100000",
    "MAX_PENDING_ORDERS_PER_SEEKER": "0",
}


@dataclass
class Server:
    base_url: str
    ws_url: str
    settings: Settings
    app: Any = None  # the app object, when the server runs in this process


@contextlib.contextmanager
def running_server(env: Mapping[str, str]) -> Iterator[Server]:
    """uvicorn in a thread with its own event loop; stopped (lifespan shutdown included) on exit."""
    settings = Settings.from_env({**BASE_ENV, **env})
    port = free_port()
    server = uvicorn.Server(uvicorn_config(create_app(settings), settings, "127.0.0.1", port))
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.02)
    try:
        app = server.config.app
        yield Server(f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}", app.state.settings, app)
    finally:
        server.should_exit = True
        thread.join(15)


@contextlib.contextmanager
def server_process(env: Mapping[str, str], port: int, log_path) -> Iterator[subprocess.Popen]:
    """``workcast serve`` as its own process (so a test can SIGKILL it), ready when /health answers."""
    full_env = {**os.environ, **BASE_ENV, **env}
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "entrypoints.cli", "serve", "--port", str(port)],
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=0.5).status_code == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"workcast serve did not start: {Path(log_path).read_text()[-2000:]}")
            time.sleep(0.05)
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("workcast-data")
    with running_server({"WORKCAST_DATA_DIR": str(data_dir)}) as running:
        yield running


@dataclass
class User:
    id: int
    role: Role
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class Admin:
    """What an operator does with the CLI (create users, issue tokens), against the server's database."""

    def __init__(self, settings: Settings) -> None:
        self.container = build_container(settings)

    async def user(self, role: Role, name: str = "Someone", mobile: str = "9876543210", active: bool = False) -> User:
        profile = await self.container.create_profile().execute(role, name, mobile, active)
        return User(profile.id, role, self.container.tokens().issue(profile.id))

    async def seeker(self, name: str = "Sam Seeker") -> User:
        return await self.user(Role.SEEKER, name, "9000000001")

    async def provider(self, name: str = "John Doe", active: bool = True) -> User:
        return await self.user(Role.PROVIDER, name, "9876543210", active)


@pytest.fixture
async def admin(server) -> Admin:
    admin = Admin(server.settings)
    yield admin
    await close(admin.container)


@pytest.fixture
async def http(server) -> httpx.AsyncClient:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
        yield client


def checked(raw: str | bytes) -> dict:
    """A message from the server, after checking it against the protocol's types (the AsyncAPI document's
    source): every message any end-to-end test receives must fit them, unknown fields included."""
    msgspec.json.decode(raw, type=SERVER_MESSAGE)
    return json.loads(raw)


class Socket:
    """A connected app: reads JSON messages with a timeout.

    ``open_socket`` reads the replay up to its ``replay_complete`` first (kept in ``replayed`` and
    ``replay_complete``); ``receive`` hands the replayed messages out again before live ones, so a test
    reads a socket in the order the server wrote it, without minding the end-of-replay marker.
    """

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.replayed: list[dict] = []
        self.replay_complete: dict | None = None
        self._buffered: list[dict] = []
        self._closed: ConnectionClosed | None = None

    async def read_replay(self, within: float = 20.0) -> None:
        try:
            while True:
                message = checked(await asyncio.wait_for(self.connection.recv(), within))
                if message.get("type") == "replay_complete":
                    self.replay_complete = message
                    break
                self.replayed.append(message)
        except ConnectionClosed as closed:  # refused at connect (4401, 4403): receive() raises it
            self._closed = closed
        self._buffered = list(self.replayed)

    def skip_replay(self) -> None:
        """From now on ``receive`` reads live messages only (the replay was checked through ``replayed``)."""
        self._buffered.clear()

    async def receive(self, within: float = 20.0) -> dict:
        if self._buffered:
            return self._buffered.pop(0)
        if self._closed is not None:
            raise self._closed
        return checked(await asyncio.wait_for(self.connection.recv(), within))

    async def send(self, message: dict | str) -> None:
        await self.connection.send(message if isinstance(message, str) else json.dumps(message))

    async def nothing_within(self, seconds: float) -> bool:
        if self._buffered:
            return False
        try:
            await asyncio.wait_for(self.connection.recv(), seconds)
        except TimeoutError:
            return True
        return False


@contextlib.asynccontextmanager
async def open_socket(server: Server, path: str, token: str | None = None, headers: dict | None = None):
    url = f"{server.ws_url}{path}" + (f"?token={token}" if token else "")
    async with connect(url, additional_headers=headers or {}, open_timeout=20) as connection:
        socket = Socket(connection)
        await socket.read_replay()
        yield socket


def seed_assignment(provider_id: int) -> dict:
    """The seed's assign-work request body."""
    return {
        "provider_id": provider_id,
        "service_type": "worker",
        "message": "Need help with painting work",
        "distance": "2.5km",
        "latitude": 12.345,
        "longitude": 67.890,
    }


async def notifications_when(http: httpx.AsyncClient, user: User, ready, within: float = 30.0) -> list[dict]:
    """The user's notifications once ``ready(notifications)`` holds: outcomes are written just behind a response."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        found = (await http.get("/api/1/profiles/notifications/", headers=user.headers)).json()["data"]["notifications"]
        if ready(found) or asyncio.get_running_loop().time() > deadline:
            return found
        await asyncio.sleep(0.05)


async def broker_reconnects(server: Server) -> float:
    """How many times the server's Redis subscription was lost and came back (``/metrics``)."""
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
        text = (await http.get("/metrics")).text
    for line in text.splitlines():
        if line.startswith("workcast_broker_reconnects_total "):
            return float(line.split()[1])
    raise AssertionError("workcast_broker_reconnects_total is not exposed")
