"""Who is asking: the bearer token's user, checked by a guard before the request's body or parameters are read.

A guard runs ahead of Litestar's parameter parsing, so a request without a valid token gets 401 and
nothing else (not a 400 or 422 that would tell a stranger how the endpoint reads its input).
"""

from __future__ import annotations

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler

from entrypoints.auth import TokenService, bearer_token

CALLER_ID = "workcast.caller_id"


async def authenticated(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    """Guard: the bearer token's user id, kept in the request's state (``InvalidToken``, so 401, otherwise)."""
    tokens: TokenService = connection.app.state.tokens
    connection.scope["state"][CALLER_ID] = tokens.user_id(bearer_token(connection.headers.get("authorization")))


def caller_id(request: Request) -> int:
    """The authenticated user's id, as the ``authenticated`` guard found it."""
    return request.scope["state"][CALLER_ID]
