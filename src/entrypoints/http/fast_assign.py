"""``POST /api/1/profiles/assign-work/``, the hot path, served ahead of Litestar's routing.

A deliberate bypass, like the WebSockets (``sockets.py``): Litestar's routing, guard and handler plumbing (the
request object, the signature model, kwargs resolution, the response object) cost 0.16 ms of CPU per assignment,
9 % of the whole request (``python -m bench.ab``: 1.717 against 1.877 ms). Only a request this module fully
understands is served here: a POST to the exact path, no query string, ``Content-Type: application/json``, a
``Content-Length`` within the body limit, a bearer token, no ``Idempotency-Key`` and no ``Origin`` (CORS). It runs
the route's own steps with the route's own code: the bearer token (``guards.caller_of``), the strict body
decoding (``strict.decode_body``), the ``assign`` rate limit, the use case, the same envelope; a failure of the
use case is answered by the app's exception handlers, from the one error table.

Everything else goes to Litestar untouched (the body read so far is handed on): other requests, and requests
whose token, body or rate limit this path would refuse, so that every such answer (and its logging, its
auth-failure count) is Litestar's own. The first three steps take nothing from anyone when they refuse (a
bucket already empty is not charged), so a request refused here and answered by Litestar costs one token at
most, as before. The end-to-end tests run both paths (``tests/e2e/test_fast_assign.py``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from litestar import Litestar
from litestar.types import Message, Receive, Scope, Send

from application.rate_limits import RequestLimits
from application.use_cases.assign_work import AssignWork
from application.use_cases.identify_caller import IdentifyCaller
from entrypoints.http.guards import CALLER_ID, caller_of
from entrypoints.http.profiles import assigned_envelope, assignment_command
from entrypoints.http.schemas import AssignWorkRequest
from entrypoints.http.strict import decode_body

PATH = "/api/1/profiles/assign-work/"
ROUTE = PATH.rstrip("/")  # as Litestar's router names it (metrics, the access log)
JSON_TYPES = frozenset({b"application/json", b"application/json; charset=utf-8"})
TAKEN_HEADERS = frozenset({b"authorization", b"content-type", b"content-length"})
LEFT_TO_LITESTAR = frozenset({b"idempotency-key", b"origin", b"transfer-encoding"})
_encode = msgspec.json.Encoder().encode


class Refused(Exception):
    """This path will not answer the request: Litestar does."""


class FastAssignWork:
    def __init__(
        self,
        app: Litestar,
        assign_work: AssignWork,
        identify: IdentifyCaller,
        limits: RequestLimits,
        max_body: int,
    ) -> None:
        self._app = app
        self._assign_work = assign_work
        self._identify = identify
        self._limits = limits
        self._max_body = max_body
        self._route_handler: Any = None
        self.served = self.handed_on = 0  # requests answered here, and handed on to Litestar after a look

    def takes(self, scope: Scope) -> bool:
        return scope["path"] == PATH and scope["method"] == "POST" and not scope.get("query_string")

    async def serve(self, scope: Scope, receive: Receive, send: Send) -> Receive | None:
        """Answer the request, or return the ``receive`` Litestar must read it with (the body read so far first)."""
        authorization, length = _headers_this_path_takes(scope["headers"], self._max_body)
        if authorization is None or length is None:
            self.handed_on += 1
            return receive
        read: list[Message] = []
        try:
            body = await _body(receive, read, length)
            caller = await caller_of(self._identify, authorization)
            data = decode_body(body, AssignWorkRequest)
            await self._limits.check("assign", caller)
        except Exception:  # refused or failed here: Litestar answers, as it would have
            self.handed_on += 1
            return _replaying(read, receive)
        self.served += 1
        scope.setdefault("state", {})[CALLER_ID] = caller  # for the access log, as the guard does
        scope["path_template"], scope["route_handler"] = ROUTE, self._litestar_handler()  # the route's metrics
        try:
            result = await self._assign_work.execute(assignment_command(caller, data))
        except Exception as error:  # every error is answered as the route answers it
            await self._answer_error(scope, receive, send, error)
            return None
        body = _encode(assigned_envelope(result))
        await send(
            {
                "type": "http.response.start",
                "status": 201,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})
        return None

    async def _answer_error(self, scope: Scope, receive: Receive, send: Send, error: Exception) -> None:
        """Answered by the app's handler for the error's class (the nearest in its MRO; ``Exception`` has one)."""
        handlers = self._app.exception_handlers
        handler = next((handlers[kind] for kind in type(error).__mro__ if kind in handlers), None)
        if handler is None:
            raise error
        request = self._app.request_class(scope=scope, receive=receive, send=send)
        response = handler(request, error)
        await response.to_asgi_response(app=None, request=request)(scope, receive, send)

    def _litestar_handler(self) -> Any:
        if self._route_handler is None:
            self._route_handler = self._app.route_handler_method_map[ROUTE]["POST"]
        return self._route_handler


def _headers_this_path_takes(headers: list[tuple[bytes, bytes]], max_body: int) -> tuple[str | None, int | None]:
    """The Authorization header and the body's length, or None for both when Litestar should answer (a header
    this path does not serve, or one of these given twice)."""
    seen: dict[bytes, bytes] = {}
    for name, value in headers:
        if name in TAKEN_HEADERS:
            if name in seen:
                return None, None
            seen[name] = value
        elif name in LEFT_TO_LITESTAR:
            return None, None
    length = seen.get(b"content-length", b"")
    if (
        b"authorization" not in seen
        or seen.get(b"content-type", b"").lower() not in JSON_TYPES
        or not length.isdigit()
        or int(length) > max_body
    ):
        return None, None
    return seen[b"authorization"].decode("latin-1"), int(length)


async def _body(receive: Receive, read: list[Message], length: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        read.append(message)
        if message["type"] != "http.request":
            raise Refused("the client left")
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if size > length:
            raise Refused("more body than Content-Length")
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replaying(read: list[Message], receive: Receive) -> Callable[[], Awaitable[Message]]:
    """``receive`` for Litestar: the messages this path already took, then the rest."""
    pending = list(read)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay
