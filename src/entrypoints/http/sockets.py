"""WebSockets at /ws/work/provider/ and /ws/work/seeker/: live notifications, answers and acknowledgements.

On connect: authenticate (close 4401 if the token is bad), check the role (close 4403 on the wrong
path), subscribe to the user's messages, replay what the user has not acknowledged (oldest first),
then serve messages from the app. Every message is handled in its own unit of work.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from litestar import WebSocket, websocket
from litestar.di import NamedDependency
from litestar.exceptions import WebSocketDisconnect

from application.errors import StorageUnavailable
from application.ports import RealtimeBroker
from application.use_cases.acknowledge_notification import AcknowledgeNotification
from application.use_cases.replay_undelivered import ReplayUndelivered
from application.use_cases.respond_to_work import RespondToWork
from domain.errors import DomainError, NotAProvider, ProfileNotFound
from domain.profiles import Profile, Role
from entrypoints.auth import InvalidToken, TokenService, bearer_token
from entrypoints.http.errors import CLOSE_FORBIDDEN, CLOSE_UNAUTHORIZED, CLOSE_UNAVAILABLE

log = logging.getLogger(__name__)
MAX_MESSAGE_BYTES = 16 * 1024


class _Incoming(msgspec.Struct):
    type: str


class _WorkResponse(msgspec.Struct):
    type: str
    work_id: int
    accepted: bool


class _Ack(msgspec.Struct):
    type: str
    notification_id: int


_encode = msgspec.json.Encoder().encode


class WorkSocket:
    """One connected app of one user."""

    def __init__(
        self,
        socket: WebSocket,
        user_id: int,
        replay: ReplayUndelivered,
        respond: RespondToWork,
        acknowledge: AcknowledgeNotification,
    ) -> None:
        self._socket = socket
        self._user_id = user_id
        self.profile: Profile | None = None
        self._replay = replay
        self._respond = respond
        self._acknowledge = acknowledge
        self._replaying = True
        self._held: list[str] = []

    async def deliver(self, text: str) -> None:
        """The broker's way in. Live messages wait while the replay runs, so the order stays oldest first."""
        if self._replaying:
            self._held.append(text)
            return
        await self._socket.send_text(text)

    async def replay(self, messages: list[dict[str, Any]]) -> None:
        for message in messages:
            await self._socket.send_text(_encode(message).decode())
        replayed = {m["notification_id"] for m in messages}
        await self._replay.record_shown(self._user_id, replayed)
        self._replaying = False
        held, self._held = self._held, []
        for text in held:
            if _notification_id(text) not in replayed:
                await self._socket.send_text(text)

    async def serve(self) -> None:
        while True:
            event = await self._socket.receive()
            if event["type"] == "websocket.disconnect":
                return
            raw = event.get("text")
            if raw is None:
                raw = (event.get("bytes") or b"").decode("utf-8", "replace")
            await self._send(await self._handle(raw))

    async def _handle(self, raw: str) -> dict[str, Any]:
        if len(raw) > MAX_MESSAGE_BYTES:
            return _error("message_too_large", f"messages are limited to {MAX_MESSAGE_BYTES} bytes")
        try:
            kind = msgspec.json.decode(raw, type=_Incoming).type
        except msgspec.DecodeError:
            return _error("malformed_json", "send a JSON object with a 'type'")
        try:
            if kind == "ping":
                return {"type": "pong"}
            if kind == "work_response":
                return await self._work_response(msgspec.json.decode(raw, type=_WorkResponse))
            if kind == "ack":
                ack = msgspec.json.decode(raw, type=_Ack)
                await self._acknowledge.execute(self._user_id, ack.notification_id)
                return {"type": "acked", "notification_id": ack.notification_id}
        except msgspec.ValidationError as error:
            return _error("validation_error", str(error), request_type=kind)
        except DomainError as error:
            return _error(error.code, error.message, field=error.field, request_type=kind)
        except StorageUnavailable:
            return _error("storage_unavailable", "the service is temporarily unavailable, try again", request_type=kind)
        return _error("unknown_type", f"unknown message type {kind!r}; known: ping, work_response, ack")

    async def _work_response(self, message: _WorkResponse) -> dict[str, Any]:
        if self.profile is None or self.profile.role is not Role.PROVIDER:
            raise NotAProvider("only providers answer work orders")
        result = await self._respond.execute(self._user_id, message.work_id, message.accepted)
        return {
            "type": "work_response_result",
            "work_id": message.work_id,
            "status": result.order.status.value,
            "accepted": message.accepted,
            "seeker_notified": result.seeker_notified_live,
        }

    async def _send(self, message: dict[str, Any]) -> None:
        await self._socket.send_text(_encode(message).decode())


def _error(code: str, message: str, field: str | None = None, request_type: str | None = None) -> dict[str, Any]:
    return {"type": "error", "code": code, "message": message, "field": field, "request_type": request_type}


def _notification_id(text: str) -> Any:
    try:
        return msgspec.json.decode(text).get("notification_id")
    except (msgspec.DecodeError, AttributeError):
        return None


async def _serve(
    socket: WebSocket,
    role: Role,
    tokens: NamedDependency[TokenService],
    broker: NamedDependency[RealtimeBroker],
    replay_undelivered: NamedDependency[ReplayUndelivered],
    respond_to_work: NamedDependency[RespondToWork],
    acknowledge_notification: NamedDependency[AcknowledgeNotification],
) -> None:
    # Accept first: a refusal at the handshake would reach the app as a bare HTTP 403, not a close code.
    await socket.accept()
    try:
        user_id = tokens.user_id(bearer_token(socket.headers.get("authorization"), socket.query_params.get("token")))
    except InvalidToken as error:
        await socket.close(code=CLOSE_UNAUTHORIZED, reason=str(error)[:120])
        return
    session = WorkSocket(socket, user_id, replay_undelivered, respond_to_work, acknowledge_notification)
    # Subscribe before reading what to replay: a message published in between is held, not missed.
    await broker.subscribe(user_id, session.deliver)
    try:
        try:
            session.profile, messages = await replay_undelivered.on_connect(user_id)
        except ProfileNotFound as error:
            await socket.close(code=CLOSE_UNAUTHORIZED, reason=str(error)[:120])
            return
        if session.profile.role is not role:
            await socket.close(code=CLOSE_FORBIDDEN, reason=f"this socket is for {role.value}s")
            return
        log.info("socket connected", extra={"user_id": user_id, "role": role.value})
        await session.replay(messages)
        await session.serve()
    except WebSocketDisconnect:
        pass
    except StorageUnavailable:
        await socket.close(code=CLOSE_UNAVAILABLE, reason="service temporarily unavailable")
    finally:
        await broker.unsubscribe(user_id, session.deliver)


def _work_socket(path: str, role: Role, description: str):
    """The WebSocket route of one role; both roles share everything but the path and the role check."""

    async def handler(
        socket: WebSocket,
        tokens: NamedDependency[TokenService],
        broker: NamedDependency[RealtimeBroker],
        replay_undelivered: NamedDependency[ReplayUndelivered],
        respond_to_work: NamedDependency[RespondToWork],
        acknowledge_notification: NamedDependency[AcknowledgeNotification],
    ) -> None:
        await _serve(socket, role, tokens, broker, replay_undelivered, respond_to_work, acknowledge_notification)

    handler.__name__ = handler.__qualname__ = f"{role.value}_socket"
    handler.__doc__ = description
    return websocket(path)(handler)


provider_socket = _work_socket(
    "/ws/work/provider/",
    Role.PROVIDER,
    "Providers: receive work_assigned (and work_cancelled, work_expired); send work_response, ack, ping.",
)
seeker_socket = _work_socket(
    "/ws/work/seeker/", Role.SEEKER, "Seekers: receive work_accepted, work_rejected, work_expired; send ack, ping."
)
