"""Connections that hold a server slot without using it (slowloris, silent TCP, dead WebSocket peers) are closed."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
from typing import Any

import httpx

from entrypoints.container import close
from tests.e2e.conftest import Admin, running_server

BOUNDS = {
    "HTTP_HEADER_TIMEOUT_SECONDS": "1",
    "HTTP_KEEPALIVE_TIMEOUT_SECONDS": "1",
    "WS_PING_INTERVAL_SECONDS": "0.5",
    "WS_PING_TIMEOUT_SECONDS": "1",
}
DEADLINE = 30.0  # generous: each bound above is 1 s


async def closed_by_server(reader: asyncio.StreamReader) -> bool:
    """True once the server has closed the connection (whatever it sent before)."""
    async with asyncio.timeout(DEADLINE):
        while await reader.read(4096):
            pass
    return True


async def a_provider_of(server) -> tuple[Any, int]:
    """A provider made on this server, and the server's port."""
    admin = Admin(server.settings)
    try:
        provider = await admin.provider()
    finally:
        await close(admin.container)
    return provider, int(server.base_url.rsplit(":", 1)[1])


async def open_raw_socket(port: int, token: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A provider's WebSocket by hand (the tests below read and write its frames themselves), once upgraded."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET /ws/work/provider/?token={token} HTTP/1.1\r\nHost: workcast\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    async with asyncio.timeout(DEADLINE):
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
    return reader, writer


async def trickle(writer: asyncio.StreamWriter) -> None:
    """A slowloris client: a header line every 0.2 s, never the blank line that ends the headers."""
    with contextlib.suppress(OSError):
        writer.write(b"GET /health HTTP/1.1\r\nHost: workcast\r\n")
        while not writer.is_closing():
            await asyncio.sleep(0.2)
            writer.write(b"X-Slow: yes\r\n")
            await writer.drain()


async def test_slow_silent_and_idle_connections_are_closed(tmp_path):
    with running_server({"WORKCAST_DATA_DIR": str(tmp_path), **BOUNDS}) as server:
        port = int(server.base_url.rsplit(":", 1)[1])
        silent = [await asyncio.open_connection("127.0.0.1", port) for _ in range(20)]
        slow = [await asyncio.open_connection("127.0.0.1", port) for _ in range(20)]
        tricklers = [asyncio.create_task(trickle(writer)) for _, writer in slow]
        try:
            # Meanwhile the server serves everybody else.
            async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
                assert (await http.get("/health")).status_code == 200
            results = await asyncio.gather(*(closed_by_server(reader) for reader, _ in silent + slow))
            assert all(results)

            # A keep-alive connection that goes quiet after a request is closed too.
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /health HTTP/1.1\r\nHost: workcast\r\n\r\n")
            assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
            assert await closed_by_server(reader)
        finally:
            for task in tricklers:
                task.cancel()
            for _, writer in silent + slow:
                writer.close()


async def test_a_websocket_peer_that_never_answers_pings_is_closed(tmp_path):
    with running_server({"WORKCAST_DATA_DIR": str(tmp_path), **BOUNDS}) as server:
        provider, port = await a_provider_of(server)
        reader, writer = await open_raw_socket(port, provider.token)
        # Authenticated and open: the server pings every 0.5 s; a peer that never answers is dropped.
        assert await closed_by_server(reader)
        writer.close()


async def test_a_websocket_peer_that_answers_pings_keeps_being_pinged_and_stays_open(tmp_path):
    """The keepalive pings (one timer per event loop, entrypoints/keepalive.py) keep coming, one per interval,
    and a peer that answers each one is never closed."""
    with running_server({"WORKCAST_DATA_DIR": str(tmp_path), **BOUNDS}) as server:
        provider, port = await a_provider_of(server)
        reader, writer = await open_raw_socket(port, provider.token)
        pings = 0
        async with asyncio.timeout(DEADLINE):
            while pings < 5:  # 0.5 s apart: ~2.5 s, more than twice the pong timeout
                header = await reader.readexactly(2)
                payload = await reader.readexactly(header[1] & 0x7F)  # the server's frames here are short, unmasked
                if header[0] == 0x89:  # a ping: answer with a masked pong of the same payload
                    mask = os.urandom(4)
                    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
                    writer.write(bytes([0x8A, 0x80 | len(payload)]) + mask + masked)
                    pings += 1
                else:
                    assert header[0] == 0x81, header  # text: the replay's end
        assert not reader.at_eof()
        writer.close()


async def test_sockets_that_connect_together_get_their_first_pings_spread_over_the_interval(tmp_path):
    """Each socket's first ping comes at a random point of its first interval, so a burst of connects (a deploy's
    reconnect storm) does not come back as a burst of pings at every interval. Pings are never early: without
    the spread, no first ping could come sooner than the interval after its socket opened."""
    interval = 2.0
    settings = {"WORKCAST_DATA_DIR": str(tmp_path), "WS_PING_INTERVAL_SECONDS": str(interval)}
    with running_server(settings | {"MAX_SOCKETS_PER_USER": "20"}) as server:
        provider, port = await a_provider_of(server)

        async def first_ping_after_open() -> float:
            reader, writer = await open_raw_socket(port, provider.token)
            opened = asyncio.get_running_loop().time()
            try:
                async with asyncio.timeout(DEADLINE):
                    while True:
                        header = await reader.readexactly(2)
                        await reader.readexactly(header[1] & 0x7F)
                        if header[0] == 0x89:
                            return asyncio.get_running_loop().time() - opened
            finally:
                writer.close()

        delays = await asyncio.gather(*(first_ping_after_open() for _ in range(20)))
    # 20 delays spread evenly over (0, 2 s]: all 20 over 1.4 s has odds of 0.3**20. Load only makes pings later.
    assert min(delays) < 0.7 * interval, sorted(delays)
