"""WebSockets at /ws/work/provider/ and /ws/work/seeker/: live notifications, answers and acknowledgements.

On connect: authenticate (close 4401 if the token is bad), check the role (close 4403 on the wrong
path), subscribe to the user's messages, replay what the user has not acknowledged (actionable offers first),
then serve messages from the app. Every message is handled in its own unit of work.

The app hands these connections over before Litestar's routing (``WorkcastApp`` in app.py) and
they speak ASGI directly instead of through Litestar's ``WebSocket``: an idle socket then holds
only uvicorn's and our own few objects and coroutine frames. Measured over 1,000 idle sockets,
Litestar's connection objects and middleware frames were 5.8 of 25 KB per socket, and every
long-lived object also lengthens the garbage collector's passes (bench/).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import msgspec
from litestar import asgi
from litestar.handlers.asgi_handlers import ASGIRouteHandler
from litestar.types import Receive, Scope, Send
from msgspec import Struct

from adapters.prometheus.metrics import PrometheusMetrics
from application.errors import BrokerUnavailable, InvalidToken, KeysUnavailable, RateLimited, StorageUnavailable
from application.live_locations import LiveLocations
from application.ports import RealtimeBroker, SocketRegistry
from application.rate_limits import RequestLimits
from application.use_cases.acknowledge_notification import AcknowledgeNotification
from application.use_cases.find_unknown_users import FindUnknownUsers
from application.use_cases.identify_caller import IdentifyCaller
from application.use_cases.replay_undelivered import Replay, ReplayUndelivered
from application.use_cases.respond_to_work import RespondToWork
from domain.errors import DomainError, NotAProvider, ProfileNotFound
from domain.geo import GeoPoint
from domain.limits import TokenBucket
from domain.profiles import Role
from entrypoints.http import young_objects
from entrypoints.http.errors import (
    CLOSE_FORBIDDEN,
    CLOSE_POLICY_VIOLATION,
    CLOSE_RATE_LIMITED,
    CLOSE_REPLACED,
    CLOSE_UNAUTHORIZED,
    CLOSE_UNAVAILABLE,
    error_body,
    validation_problem,
)
from entrypoints.http.guards import caller_of
from entrypoints.http.socket_protocol import (
    Ack,
    Acked,
    Error,
    Location,
    Opened,
    OpenRecorded,
    Pong,
    ReplayComplete,
    WorkResponse,
    WorkResponseResult,
    encode,
)

log = logging.getLogger(__name__)
CLOSE_TOO_SLOW = 4408  # the app does not read what it is sent
_closing: set[asyncio.Task] = set()  # closes of stuck sockets in progress (asyncio keeps only weak references)
MAX_MESSAGE_BYTES = 16 * 1024


class _Incoming(msgspec.Struct):
    type: str


@dataclass(frozen=True)
class SocketServices:
    """What every socket session uses; one shared instance, so a session holds one reference."""

    identify: IdentifyCaller
    broker: RealtimeBroker
    replay: ReplayUndelivered
    respond: RespondToWork
    acknowledge: AcknowledgeNotification
    locations: LiveLocations
    sessions: LiveSessions
    metrics: PrometheusMetrics
    limits: RequestLimits
    socket_registry: SocketRegistry
    max_sockets_per_user: int = 5
    admission: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(64))  # connects in progress
    send_queue: int = 32  # writes that may wait for one socket to drain (SOCKET_SEND_QUEUE)
    send_timeout: float = 5.0  # seconds one write may wait (SOCKET_SEND_TIMEOUT_SECONDS)


class SocketClosed(Exception):
    """The client went away while we were sending."""


class UserGone(Exception):
    """The socket's user no longer has a profile: the socket is closed with 4401."""


class AsgiSocket:
    """The few WebSocket operations a session needs, on the ASGI interface itself."""

    __slots__ = ("_receive", "_scope", "_send", "close_code")

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._scope, self._receive, self._send = scope, receive, send
        self.close_code: int | None = None  # who closed first, with what: the server's or the client's code

    def header(self, name: bytes) -> str | None:
        for key, value in self._scope["headers"]:
            if key == name:
                return value.decode("latin-1")
        return None

    def query(self, name: str) -> str | None:
        values = parse_qs(self._scope.get("query_string", b"").decode("latin-1")).get(name)
        return values[0] if values else None

    def forget_credentials(self) -> None:
        """Once the caller is known, the upgrade request's headers and query string (where the token travels) are
        not read again, but uvicorn's scope would hold them, and the token, for the socket's whole life (~1 KB,
        bench.socket_memory). uvicorn's own log lines after this show the path without the query."""
        self._scope["headers"] = []
        self._scope["query_string"] = b""

    async def accept(self) -> bool:
        """Complete the handshake; False if the client left before it."""
        if (await self._receive())["type"] != "websocket.connect":
            return False
        await self._send({"type": "websocket.accept"})
        return True

    async def receive(self) -> dict[str, Any]:
        event = await self._receive()
        if event["type"] == "websocket.disconnect" and self.close_code is None:
            self.close_code = event.get("code", 1005)
        return event

    async def send_text(self, text: str) -> None:
        try:
            await self._send({"type": "websocket.send", "text": text})
        except OSError as error:  # uvicorn's ClientDisconnected is one
            raise SocketClosed from error

    async def close(self, code: int, reason: str) -> None:
        if self.close_code is None:
            self.close_code = code
        with contextlib.suppress(OSError):  # already gone
            await self._send({"type": "websocket.close", "code": code, "reason": reason})


class WorkSocket:
    """One connected app of one user."""

    __slots__ = ("_held", "_replaying", "_sending", "_services", "_socket", "_stuck", "_user_id", "role", "socket_id")

    def __init__(self, socket: AsgiSocket, user_id: int, services: SocketServices) -> None:
        self.socket_id = uuid.uuid4().hex
        self._socket = socket
        self._user_id = user_id
        self._services = services
        self.role: Role | None = None  # the role only: the whole profile would stay in memory per socket
        self._replaying = True
        self._held: list[str] = []
        self._sending = 0  # writes waiting for this socket to drain
        self._stuck = False

    async def deliver(self, text: str) -> None:
        """The broker's way in. Live messages wait while the replay runs, so they come after it.

        A socket whose app stopped reading (a frozen phone) must not hold up anyone: at most
        ``send_queue`` writes wait for it to drain, each at most ``send_timeout``; past that it is
        closed (4408) and counted out, and the app gets what it missed by replay when it reconnects.
        """
        if text.startswith(_EVICT_PREFIX):  # a note between instances, never for the app
            if self.socket_id in msgspec.json.decode(text)["sockets"]:
                await self._socket.close(CLOSE_REPLACED, "replaced by a newer connection of this user")
            return
        if self._replaying:
            self._held.append(text)
            return
        if self._stuck or self._sending >= self._services.send_queue:
            self._give_up()
            raise SocketClosed
        self._sending += 1
        try:
            async with asyncio.timeout(self._services.send_timeout):
                await self._socket.send_text(text)
        except TimeoutError:
            self._give_up()
            raise SocketClosed from None
        finally:
            self._sending -= 1

    @property
    def stuck(self) -> bool:
        """Given up for not draining (closed 4408)."""
        return self._stuck

    def _give_up(self) -> None:
        if self._stuck:
            return
        self._stuck = True
        log.warning("socket too slow to drain: closing it", extra={"user_id": self._user_id})
        task = asyncio.create_task(self._close_stuck())
        _closing.add(task)
        task.add_done_callback(_closing.discard)

    async def _close_stuck(self) -> None:
        await self._services.broker.unsubscribe(self._user_id, self.deliver)
        # Waits until the peer drains or uvicorn's ping timeout drops the connection.
        await self._socket.close(CLOSE_TOO_SLOW, "not reading: reconnect")

    async def replay(self, replay: Replay) -> None:
        for message in replay.messages:
            await self._socket.send_text(encode(message).decode())
        await self._socket.send_text(encode(ReplayComplete(len(replay.messages), replay.truncated)).decode())
        replayed = {m["notification_id"] for m in replay.messages}
        await self._services.replay.record_shown(self._user_id, replayed)
        self._replaying = False
        held, self._held = self._held, []
        for text in held:
            if _notification_id(text) not in replayed:
                await self._socket.send_text(text)

    async def serve(self) -> None:
        # Each socket's own bucket, in process: a flood is refused before it reaches the database or
        # delays anyone else, and a socket that goes on after being told is closed (1008).
        rate = self._services.limits.rate("socket_message")
        clock = asyncio.get_running_loop().time
        bucket = TokenBucket.full(rate, clock()) if rate else None
        refused_in_a_row = 0
        while True:
            event = await self._socket.receive()
            if event["type"] == "websocket.disconnect":
                return
            if bucket is not None and rate is not None and (wait := bucket.take(rate, clock())) > 0:
                self._services.metrics.rate_limited("socket_message")
                refused_in_a_row += 1
                if refused_in_a_row > rate.burst:
                    await self._socket.close(CLOSE_POLICY_VIOLATION, "message rate exceeded")
                    return
                await self._send(_error("rate_limited", f"too many messages: wait {wait:.1f} s before the next"))
                continue
            refused_in_a_row = 0
            raw = event.get("text")
            if raw is None:
                raw = (event.get("bytes") or b"").decode("utf-8", "replace")
            reply = await self._handle(raw)
            if reply is not None:  # a position is taken silently: no answer unless it is refused
                await self._send(reply)

    async def revoke(self) -> None:
        """Close this socket: its user was deleted."""
        await self._socket.close(CLOSE_UNAUTHORIZED, "unknown user")

    async def _handle(self, raw: str) -> Struct | None:
        if len(raw) > MAX_MESSAGE_BYTES:
            return _error("message_too_large", f"messages are limited to {MAX_MESSAGE_BYTES} bytes")
        try:
            kind = msgspec.json.decode(raw, type=_Incoming).type
        except msgspec.ValidationError as error:
            return _validation_error(error)
        except msgspec.DecodeError:
            return _error("malformed_json", "send a JSON object with a 'type'")
        except RecursionError:
            return _error("malformed_json", "the message is nested too deeply")
        try:
            if kind == "ping":
                return Pong()
            if kind == "location":
                return self._location(msgspec.json.decode(raw, type=Location))
            if kind == "work_response":
                return await self._work_response(msgspec.json.decode(raw, type=WorkResponse))
            if kind == "ack":
                ack = msgspec.json.decode(raw, type=Ack)
                await self._services.acknowledge.execute(self._user_id, ack.notification_id, over_socket=True)
                return Acked(ack.notification_id)
            if kind == "opened":
                opened = msgspec.json.decode(raw, type=Opened)
                await self._services.acknowledge.execute(
                    self._user_id, opened.notification_id, over_socket=True, opened=True
                )
                return OpenRecorded(opened.notification_id)
        except msgspec.ValidationError as error:
            return _validation_error(error, kind)
        except RecursionError:
            return _error("malformed_json", "the message is nested too deeply", request_type=kind)
        except ProfileNotFound:
            raise UserGone from None
        except DomainError as error:
            return _error(error.code, error.message, field=error.field, request_type=kind)
        except StorageUnavailable:
            return _error("storage_unavailable", "the service is temporarily unavailable, try again", request_type=kind)
        return _error(
            "unknown_type", f"unknown message type {kind!r}; known: ping, work_response, ack, opened, location"
        )

    async def _work_response(self, message: WorkResponse) -> WorkResponseResult:
        if self.role is not Role.PROVIDER:
            raise NotAProvider("only providers answer work orders")
        result = await self._services.respond.execute(self._user_id, message.work_id, message.accepted)
        return WorkResponseResult(
            message.work_id, result.order.status.value, message.accepted, result.seeker_notified_live
        )

    def _location(self, message: Location) -> None:
        if self.role is not Role.PROVIDER:
            raise NotAProvider("only providers share their location")
        self._services.locations.note(self._user_id, GeoPoint(message.latitude, message.longitude))

    async def _send(self, message: Struct) -> None:
        await self._socket.send_text(encode(message).decode())


def _error(code: str, message: str, field: str | None = None, request_type: str | None = None) -> Error:
    return Error(code, message, field, request_type)


def _validation_error(error: msgspec.ValidationError, request_type: str | None = None) -> Error:
    field, message = validation_problem(str(error))
    return _error("validation_error", message, field=field, request_type=request_type)


def _notification_id(text: str) -> Any:
    try:
        return msgspec.json.decode(text).get("notification_id")
    except (msgspec.DecodeError, AttributeError):
        return None


@dataclass
class SessionEnd:
    """What the access log says about a socket session once it is over."""

    user_id: int | None = None
    close_code: int | None = None


async def serve_socket(
    scope: Scope, receive: Receive, send: Send, role: Role, services: SocketServices, end: SessionEnd, client: str
) -> None:
    """One WebSocket connection, from the handshake to the close (the app calls this before routing)."""
    socket = AsgiSocket(scope, receive, send)
    try:
        async with _AdmissionSlot(services.admission) as slot:
            await _serve_socket(socket, role, services, end, client, slot)
    finally:
        end.close_code = socket.close_code or 1006  # no close frame either way: abnormal closure
        services.metrics.socket_disconnect(role.value, end.close_code)


class _AdmissionSlot:
    """Held from the handshake to the end of the replay, then given back: a burst of thousands of connects
    (an instance restarted, a network came back) is authenticated and replayed a bounded number at a time,
    so the sockets already open keep their pace. The wait happens before the handshake is accepted."""

    def __init__(self, admission: asyncio.Semaphore) -> None:
        self._admission = admission
        self._held = False

    async def __aenter__(self) -> _AdmissionSlot:
        await self._admission.acquire()
        self._held = True
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release()

    def release(self) -> None:
        if self._held:
            self._held = False
            self._admission.release()


async def _serve_socket(
    socket: AsgiSocket, role: Role, services: SocketServices, end: SessionEnd, client: str, slot: _AdmissionSlot
) -> None:
    # Accept first: a refusal at the handshake would reach the app as a bare HTTP 403, not a close code.
    if not await socket.accept():
        return
    try:
        user_id = await caller_of(services.identify, socket.header(b"authorization"), socket.query("token"))
        end.user_id = user_id
    except (InvalidToken, ProfileNotFound) as error:
        try:
            await services.limits.check("auth_failure", client)
        except RateLimited:
            await socket.close(CLOSE_RATE_LIMITED, "too many failed authentications from this address")
            return
        await socket.close(CLOSE_UNAUTHORIZED, str(error)[:120])
        return
    except (KeysUnavailable, StorageUnavailable):
        await socket.close(CLOSE_UNAVAILABLE, "service temporarily unavailable")
        return
    socket.forget_credentials()
    try:
        # Before any replay or subscription: a client reconnecting in a loop costs one Redis call each time.
        await services.limits.check("socket_connect", user_id)
    except RateLimited as limited:
        await socket.close(CLOSE_RATE_LIMITED, f"too many connections: wait {limited.retry_after:.0f} s")
        return
    session = WorkSocket(socket, user_id, services)
    broker = services.broker
    # Subscribe before reading what to replay: a message published in between is held, not missed.
    await broker.subscribe(user_id, session.deliver)
    try:
        try:
            profile, replay = await services.replay.on_connect(user_id)
        except ProfileNotFound as error:
            await socket.close(CLOSE_UNAUTHORIZED, str(error)[:120])
            return
        session.role = profile.role
        del profile  # this frame lives as long as the socket: keep only what serving needs
        if session.role is not role:
            await socket.close(CLOSE_FORBIDDEN, f"this socket is for {role.value}s")
            return
        log.info("socket connected", extra={"user_id": user_id, "role": role.value})
        services.metrics.sockets_open.labels(role.value).inc()
        services.sessions.add(user_id, session)
        await _make_room(services, user_id, session.socket_id)
        await session.replay(replay)
        del replay
        slot.release()
        young_objects.socket_admitted()
        await session.serve()
    except SocketClosed:
        pass
    except UserGone:
        await session.revoke()
    except StorageUnavailable:
        await socket.close(CLOSE_UNAVAILABLE, "service temporarily unavailable")
    finally:
        services.sessions.remove(user_id, session)
        await broker.unsubscribe(user_id, session.deliver)
        with contextlib.suppress(BrokerUnavailable):
            await services.socket_registry.unregister(user_id, session.socket_id)
        if session.role is role:  # it was logged (and counted) as connected
            log.info("socket disconnected", extra={"user_id": user_id, "role": role.value})
            services.metrics.sockets_open.labels(role.value).dec()


_EVICT = "_evict"
_EVICT_PREFIX = '{"type":"_evict"'


async def _make_room(services: SocketServices, user_id: int, socket_id: str) -> None:
    """At most MAX_SOCKETS_PER_USER sockets per user, on all instances together: the oldest ones go.

    Phones reconnect without closing their old socket, so refusing the newest would lock users out.
    The oldest are told through the user's own channel, which reaches them on whichever instance
    they are. If Redis cannot tell, nothing is closed (availability first).
    """
    try:
        evicted = await services.socket_registry.register(user_id, socket_id, services.max_sockets_per_user)
        if evicted:
            await services.broker.publish(user_id, {"type": _EVICT, "sockets": evicted})
    except BrokerUnavailable:
        log.warning("socket cap not enforced: the socket registry is unavailable", extra={"user_id": user_id})


class LiveSessions:
    """The sockets this process serves, by user, so that those of a deleted user can be closed."""

    def __init__(self) -> None:
        self._by_user: dict[int, list[WorkSocket]] = {}

    def add(self, user_id: int, session: WorkSocket) -> None:
        self._by_user.setdefault(user_id, []).append(session)

    def open_by_role(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for sessions in self._by_user.values():
            for session in sessions:
                if session.role is not None:
                    counts[session.role.value] = counts.get(session.role.value, 0) + 1
        return counts

    def remove(self, user_id: int, session: WorkSocket) -> None:
        sessions = self._by_user.get(user_id, [])
        if session in sessions:
            sessions.remove(session)
        if not sessions:
            self._by_user.pop(user_id, None)

    async def close_unknown_users(self, find_unknown: FindUnknownUsers) -> int:
        """Close the sockets of users who no longer have a profile; returns how many were closed."""
        gone = await find_unknown.execute(list(self._by_user))
        closed = 0
        for user_id in gone:
            for session in list(self._by_user.get(user_id, ())):
                # Not awaited here: a socket that does not drain would hold up every other close.
                task = asyncio.create_task(session.revoke())
                _closing.add(task)
                task.add_done_callback(_closing.discard)
                closed += 1
        if closed:
            log.info("closed the sockets of deleted users", extra={"users": len(gone), "sockets": closed})
        return closed

    async def recheck_forever(self, find_unknown: FindUnknownUsers, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.close_unknown_users(find_unknown)
            except StorageUnavailable:
                pass  # the database is down: the dispatcher and requests already say so; try again next time
            except Exception:
                log.exception("checking the users of open sockets failed, will try again")


async def _not_a_websocket(send: Send) -> None:
    body = msgspec.json.encode(error_body("this path only speaks WebSocket", "websocket_only"))
    await send(
        {
            "type": "http.response.start",
            "status": 426,
            "headers": [(b"content-type", b"application/json"), (b"upgrade", b"websocket")],
        }
    )
    await send({"type": "http.response.body", "body": body})


# The socket paths and the role each one is for; both accept the path without its trailing slash.
SOCKET_ROLES = {"/ws/work/provider/": Role.PROVIDER, "/ws/work/seeker/": Role.SEEKER}


def socket_role(path: str) -> Role | None:
    return SOCKET_ROLES.get(path if path.endswith("/") else f"{path}/")


def socket_paths_over_http() -> list[ASGIRouteHandler]:
    """Plain HTTP requests to the socket paths: 426 in the error envelope (WebSockets never get here)."""

    @asgi(list(SOCKET_ROLES), copy_scope=False)
    async def websocket_only(scope: Scope, receive: Receive, send: Send) -> None:
        await _not_a_websocket(send)

    return [websocket_only]
