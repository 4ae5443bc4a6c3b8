"""Rate limits at the HTTP edge, per user by route group after authentication (failed authentication is
counted per client address in ``guards.note_auth_failure``). Over a limit: 429 ``rate_limited`` with
``Retry-After``."""

from __future__ import annotations

import math

from litestar import Request, Response
from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler

from application.errors import RateLimited
from application.rate_limits import RequestLimits
from entrypoints.http.errors import error_body
from entrypoints.http.guards import CALLER_ID

READS = frozenset({"GET", "HEAD"})


async def rate_limited(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    """Guard (after ``authenticated``): the caller's bucket for this route's group.

    The group is the handler's ``opt["rate_group"]`` (assign-work is ``assign``), else ``read`` for
    GET and ``write`` for the rest.
    """
    group = handler.opt.get("rate_group") or ("read" if connection.scope["method"] in READS else "write")
    limits: RequestLimits = connection.app.state.limits
    await limits.check(group, connection.scope["state"][CALLER_ID])


def on_rate_limited(request: Request, error: RateLimited) -> Response:
    seconds = max(1, math.ceil(error.retry_after))
    body = error_body(f"too many requests: try again in {seconds} s", "rate_limited")
    return Response(body, status_code=429, headers={"Retry-After": str(seconds)})
