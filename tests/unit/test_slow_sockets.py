"""A socket that stops draining cannot hold up the user's other sockets, or anyone else."""

from __future__ import annotations

import asyncio

from application.local_sockets import LocalSockets
from entrypoints.http.sockets import CLOSE_TOO_SLOW, SocketClosed, SocketServices, WorkSocket
from tests.fixtures.waiting import eventually


class FrozenSink:
    """A socket whose writes never finish (the app stopped reading)."""

    def __init__(self) -> None:
        self.started = 0

    async def __call__(self, text: str) -> None:
        self.started += 1
        await asyncio.Event().wait()


async def test_a_message_counts_as_sent_as_soon_as_one_socket_took_it():
    sockets = LocalSockets(send_timeout=3600)  # the frozen write would wait an hour
    frozen, got = FrozenSink(), []

    async def healthy(text: str) -> None:
        got.append(text)

    sockets.add(7, frozen)
    sockets.add(7, healthy)
    async with asyncio.timeout(30):  # returns at once in fact: it does not wait for the frozen one
        assert await sockets.send(7, "hello") == 1
    assert got == ["hello"] and frozen.started == 1


class FakeAsgiSocket:
    def __init__(self) -> None:
        self.closed: list[tuple[int, str]] = []

    async def send_text(self, text: str) -> None:
        await asyncio.Event().wait()  # never drains

    async def close(self, code: int, reason: str) -> None:
        self.closed.append((code, reason))


class FakeBroker:
    def __init__(self) -> None:
        self.unsubscribed: list[int] = []

    async def unsubscribe(self, user_id, sink) -> None:
        self.unsubscribed.append(user_id)


async def test_a_socket_that_does_not_drain_is_closed_4408_and_counted_out():
    asgi, broker = FakeAsgiSocket(), FakeBroker()
    services = SocketServices(None, broker, *[None] * 8, send_queue=2, send_timeout=0.05)  # type: ignore[arg-type]
    session = WorkSocket(asgi, 9, services)  # type: ignore[arg-type]
    session._replaying = False
    writes = [asyncio.create_task(session.deliver(f"m{i}")) for i in range(2)]
    results = await asyncio.gather(*writes, return_exceptions=True)
    assert all(isinstance(r, SocketClosed) for r in results)  # each gave up after its timeout
    await eventually(lambda: asgi.closed)
    assert asgi.closed == [(CLOSE_TOO_SLOW, "not reading: reconnect")] and broker.unsubscribed == [9]
    try:
        await session.deliver("later")
    except SocketClosed:
        pass
    else:
        raise AssertionError("a stuck socket takes no more writes")
