"""The uvicorn server as ``workcast serve`` runs it (and the end-to-end tests too): one configuration.

uvicorn bounds an idle keep-alive connection (``timeout_keep_alive``) and a silent WebSocket (server
pings, ``ws_ping_interval``/``ws_ping_timeout``), but nothing bounds the time a client takes to send a
request's headers: a connection that never sends a request, or trickles its headers a byte at a time
(slowloris), is held for ever (measured: 0 of 100 such connections closed in 60 s). Its protocol
classes take no such setting, so ``HeaderDeadline`` adds one, in the manner of nginx's
``client_header_timeout``: from the first byte of a request (or from the connection's start) to the
end of its headers, at most ``HTTP_HEADER_TIMEOUT_SECONDS``; then the connection is closed.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import logging
import random
from collections import deque
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.websockets.wsproto_impl import WSProtocol

from entrypoints.keepalive import cancel_ping, schedule_ping
from entrypoints.settings import Settings
from entrypoints.socket_inbox import Gate, Inbox, RarelyUsedQueue

log = logging.getLogger(__name__)
MAX_SOCKET_MESSAGE_BYTES = 64 * 1024


class HeaderDeadline:
    """Mixin for uvicorn's HTTP protocols: close a connection whose request headers do not arrive in time."""

    header_timeout: float | None = None  # None: HTTP_HEADER_TIMEOUT_SECONDS (a worker process reads its settings)
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._arm_header_deadline()

    def data_received(self, data: bytes) -> None:
        if self._header_timer is None and self._between_requests():
            self._arm_header_deadline()
        super().data_received(data)  # type: ignore[misc]
        upgraded = self.transport.get_protocol() is not self  # type: ignore[attr-defined]
        if self._header_timer is not None and (upgraded or not self._between_requests()):
            self._header_timer.cancel()
            self._header_timer = None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        super().connection_lost(exc)  # type: ignore[misc]

    def _between_requests(self) -> bool:
        cycle = self.cycle  # type: ignore[attr-defined]
        return cycle is None or cycle.response_complete

    def _arm_header_deadline(self) -> None:
        timeout = self.header_timeout if self.header_timeout is not None else _header_timeout_from_env()
        self._header_timer = asyncio.get_running_loop().call_later(timeout, self._header_deadline_passed)

    def _header_deadline_passed(self) -> None:
        self._header_timer = None
        transport = self.transport  # type: ignore[attr-defined]
        if self._between_requests() and transport.get_protocol() is self and not transport.is_closing():
            log.info("closed a connection that sent no complete request in time", extra={"client": self.client})  # type: ignore[attr-defined]
            transport.close()


@functools.cache
def _header_timeout_from_env() -> float:
    return Settings.from_env().http_header_timeout


class BoundedH11Protocol(HeaderDeadline, H11Protocol):
    pass


# Module-level classes: with --workers, uvicorn pickles its configuration into each worker process.
BoundedHttpToolsProtocol: type[asyncio.Protocol] | None = None
if importlib.util.find_spec("httptools") is not None:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class BoundedHttpToolsProtocol(HeaderDeadline, HttpToolsProtocol):  # type: ignore[no-redef]
        pass


class ClosingWSProtocol(WSProtocol):
    """uvicorn's wsproto protocol, with a short goodbye and without the upgrade request's leftovers.

    Once the server has sent its close frame, uvicorn goes on parsing whatever the peer sends for up to
    10 s while it waits for the echo. A flooding client that ignores the close kept the server parsing
    ~100,000 frames a second for those 10 s (measured: another user's ping p50 went from 0.6 to 117 ms).
    Here, after our close, at most 4 KiB more are read and the connection is dropped after 1 s at most.
    """

    AFTER_CLOSE_BYTES = 4096  # room for a polite peer's close echo, not for a flood

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.close_timeout = 1.0
        self._read_after_close = 0
        # ~4 KB a socket less than asyncio's Queue and Event, which allocate their deques up front.
        self.queue = Inbox()  # type: ignore[assignment]
        self.writable = Gate(open=True)  # type: ignore[assignment]

    async def send(self, message: Any) -> None:
        await super().send(message)
        if message["type"] == "websocket.accept":
            self._forget_handshake()

    def _forget_handshake(self) -> None:
        """Once the socket is open, wsproto keeps the HTTP/1.1 parser of the upgrade request (h11's connection,
        its buffers, the request with its headers, an event queue) for the socket's whole life, unused: drop them
        (~2.5 KB a socket, bench.socket_memory). The open connection's own event queue, which only ever holds a
        lost connection's closure, becomes a list (0.7 KB). Private parts of wsproto 1.2; where they are not,
        nothing is changed."""
        handshake = getattr(self.conn, "handshake", None)
        connection = getattr(self.conn, "connection", None)
        if connection is not None and hasattr(handshake, "_h11_connection"):
            handshake._h11_connection = None
            handshake._initiating_request = None
            if not handshake._events:  # read only from now on (an empty deque is ~760 bytes; a tuple reads alike)
                handshake._events = ()
        if isinstance(getattr(connection, "_events", None), deque) and not connection._events:
            connection._events = RarelyUsedQueue()

    def start_keepalive(self) -> None:
        """The first ping at a random point of the first interval, not a whole interval after the accept. Sockets
        that connect together (every app reconnecting after a deploy, a load generator's burst) would otherwise be
        pinged together at every interval for as long as they stay (5,000 sockets opened within 2.5 s would come back
        as 2,000 pings and pongs a second for 2.5 s of every 20, where 5,000 sockets spread make 250)."""
        if self.ping_interval is not None and self.ping_interval > 0:
            schedule_ping(self.loop, self, self.ping_interval, random.uniform(0.0, self.ping_interval))

    def schedule_ping(self) -> None:
        """The next keepalive ping on the loop's wheel (entrypoints/keepalive.py), not on a timer of its own."""
        assert self.ping_interval is not None
        schedule_ping(self.loop, self, self.ping_interval, max(0.0, self.ping_interval - self.last_ping_rtt))

    def stop_keepalive(self) -> None:
        cancel_ping(self.loop, self)
        super().stop_keepalive()

    def data_received(self, data: bytes) -> None:
        if self.close_sent:
            self._read_after_close += len(data)
            if self._read_after_close > self.AFTER_CLOSE_BYTES:
                self.transport.close()
                return
        super().data_received(data)


def http_protocol(header_timeout: float | None = None) -> type[asyncio.Protocol]:
    """uvicorn's fastest available HTTP protocol (httptools if installed, as uvicorn's "auto"), with the deadline."""
    base = BoundedHttpToolsProtocol or BoundedH11Protocol
    if header_timeout is None:
        return base
    return type(base.__name__, (base,), {"header_timeout": header_timeout})


def uvicorn_config(
    app: Any, settings: Settings, host: str, port: int, ws: str = "wsproto", loop: str | None = None
) -> uvicorn.Config:
    return uvicorn.Config(app, **uvicorn_options(settings, host, port, ws, loop=loop))


def event_loop() -> str:
    """uvloop where it is installed (a dependency on Linux and macOS), else asyncio's own loop."""
    return "uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio"


def uvicorn_options(
    settings: Settings, host: str, port: int, ws: str = "wsproto", workers: int = 1, loop: str | None = None
) -> dict[str, Any]:
    return dict(
        host=host,
        port=port,
        loop=loop or event_loop(),
        # A worker process takes the module's class, which reads HTTP_HEADER_TIMEOUT_SECONDS itself.
        http=http_protocol(None if workers > 1 else settings.http_header_timeout),
        ws=ClosingWSProtocol if ws == "wsproto" else ws,
        ws_max_size=MAX_SOCKET_MESSAGE_BYTES,
        # Our messages are a few hundred bytes; per-message deflate would keep two zlib contexts per
        # socket (measured: ~300 KB per idle socket for a client that negotiates it, ~25 KB without).
        ws_per_message_deflate=False,
        ws_ping_interval=settings.ws_ping_interval,
        ws_ping_timeout=settings.ws_ping_timeout,
        timeout_keep_alive=settings.http_keepalive_timeout,
        log_config=None,
        lifespan="on",
        # On SIGTERM: stop accepting, close sockets with 1012 (apps reconnect to another instance), let
        # requests in flight finish for this long; then the lifespan drains deliveries (entrypoints.container).
        timeout_graceful_shutdown=settings.shutdown_grace,
    )
