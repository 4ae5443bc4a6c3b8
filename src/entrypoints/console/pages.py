"""The console's pages and its three actions. Authorization: a session made by signing in with an admin
API key or an operator's token; every POST also carries the session's CSRF token and a same-origin Origin."""

from __future__ import annotations

import hmac
import time
from datetime import UTC, datetime
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.params import PathParameter, QueryParameter
from litestar.response import Redirect, Template

from application.errors import InvalidToken, KeysUnavailable, StorageUnavailable
from domain.errors import DomainError, NotFound, ProfileNotFound
from domain.profiles import Role
from entrypoints.console.chart import last_hour
from entrypoints.console.session import COOKIE, LIFETIME_SECONDS, ConsoleSession, ConsoleSessions, key_fingerprint
from entrypoints.http.guards import note_auth_failure

SECURITY_HEADERS = {
    # No script at all; styles only from the page itself; forms post only here; never framed.
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
MAX_ID = 2**63 - 1
# Ids arrive as text and are checked by ``_id``: a bad one gets the console's own 404 page, not a JSON error.
PathText = Annotated[str, PathParameter()]
Query = Annotated[str, QueryParameter(max_length=200)]


class SignInNeeded(Exception):
    """No valid session: the browser goes to the sign-in page."""


class Refused(Exception):
    """A console request that cannot be served: shown as a page with this status and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _page(name: str, status_code: int = 200, **context: Any) -> Template:
    return Template(template_name=name, context=context, status_code=status_code, headers=SECURITY_HEADERS)


def _to_sign_in(_: Request, __: SignInNeeded) -> Response:
    return Redirect("/console/login", status_code=303, headers=SECURITY_HEADERS)


def _refused(request: Request, error: Exception) -> Response:
    if isinstance(error, Refused):
        status, message = error.status, error.message
    elif isinstance(error, NotFound):
        status, message = 404, error.message
    elif isinstance(error, DomainError):
        status, message = 409, error.message
    else:
        status, message = 503, "the database is unavailable; try again"
    session = request.scope.get("state", {}).get("console_session")
    return _page("error.html", status, status=status, message=message, session=session)


def _id(value: str, what: str) -> int:
    """A path or query id: ASCII digits within range, else the page says so (never a 500)."""
    if not (value.isascii() and value.isdigit()) or not 0 < int(value) <= MAX_ID:
        raise Refused(404, f"there is no {what} {value[:40]!r}")
    return int(value)


class ConsolePages(Controller):
    path = "/console"
    include_in_schema = False
    exception_handlers = {
        SignInNeeded: _to_sign_in,
        Refused: _refused,
        DomainError: _refused,
        StorageUnavailable: _refused,
    }

    # --- signing in and out ------------------------------------------------------------------------

    @get("/login")
    async def login_form(self) -> Template:
        return _page("login.html")

    @post("/login", status_code=303)
    async def login(self, request: Request) -> Response:
        _same_origin(request)
        supplied = str((await request.form()).get("token", "")).strip()
        subject = await _subject_for(request, supplied) if supplied else None
        if subject is None:
            await note_auth_failure(request.app, request.scope)  # guessing keys here is slowed down too
            return _page("login.html", 401, error="That is not an admin API key or an operator's token.")
        cookie, _ = _sessions(request).issue(subject, time.time())
        return Redirect(
            "/console/", status_code=303, headers=SECURITY_HEADERS, cookies=[_cookie(request, cookie, LIFETIME_SECONDS)]
        )

    @post("/logout", status_code=303)
    async def logout(self, request: Request) -> Response:
        await _form(request)
        return Redirect("/console/login", status_code=303, headers=SECURITY_HEADERS, cookies=[_cookie(request, "", 0)])

    # --- pages -------------------------------------------------------------------------------------

    @get("/")
    async def overview(self, request: Request) -> Template:
        session = await _session(request)
        container = request.app.state.container
        overview = await container.get_overview().execute()
        recent = await container.find_orders().execute(limit=15)
        stats = overview.last_hour
        sent = stats.by_delivery_status.get("sent", 0) + stats.by_delivery_status.get("delivered", 0)
        return _page(
            "overview.html",
            session=session,
            sockets=request.app.sockets.sessions.open_by_role(),
            orders_by_status=overview.orders_by_status,
            funnel={
                "created": stats.total,
                "sent": sent,
                "delivered": stats.by_delivery_status.get("delivered", 0),
                "pending": stats.by_delivery_status.get("pending", 0),
                "failed": stats.by_delivery_status.get("failed", 0),
            },
            push_errors=stats.push_errors,
            chart=last_hour(overview.per_minute, datetime.now(UTC)),
            orders=recent,
        )

    @get("/orders")
    async def orders(self, request: Request, q: Query = "") -> Template:
        session = await _session(request)
        container = request.app.state.container
        query = q.strip()[:200]
        found, heading = [], "Recent orders"
        if query.startswith("user:"):
            who = query.removeprefix("user:").strip()
            user_id = await _user_id(request, who)
            found, heading = await container.find_orders().execute(user_id=user_id), f"Orders of user {user_id}"
        elif query:
            found, heading = await container.find_orders().execute(order_id=_id(query, "work order")), "Order"
        else:
            found = await container.find_orders().execute(limit=50)
        return _page("orders.html", session=session, orders=found, q=query, heading=heading)

    @get("/orders/{work_id:str}")
    async def order(self, request: Request, work_id: PathText) -> Template:
        session = await _session(request)
        timeline = await request.app.state.container.get_work_order_timeline().execute(_id(work_id, "work order"))
        attempts: dict[int, list] = {}
        for a in timeline.attempts:
            attempts.setdefault(a.notification_id, []).append(a)
        return _page("order.html", session=session, t=timeline, attempts=attempts)

    @get("/users/{user_id:str}")
    async def user(self, request: Request, user_id: PathText) -> Template:
        session = await _session(request)
        record = await request.app.state.container.get_user_record().execute(_id(user_id, "user"))
        return _page("user.html", session=session, r=record)

    # --- actions (POST, CSRF-checked, then back to the page they were taken on) ---------------------

    @post("/notifications/{notification_id:str}/retry", status_code=303)
    async def retry(self, request: Request, notification_id: PathText) -> Response:
        await _form(request)
        n = await request.app.state.container.retry_notification_now().execute(_id(notification_id, "notification"))
        return Redirect(f"/console/orders/{n.work_id}", status_code=303, headers=SECURITY_HEADERS)

    @post("/users/{user_id:str}/devices/{device_id:str}/invalidate", status_code=303)
    async def invalidate_device(self, request: Request, user_id: PathText, device_id: PathText) -> Response:
        await _form(request)
        uid = _id(user_id, "user")
        await request.app.state.container.invalidate_device().execute(uid, _id(device_id, "device"))
        return Redirect(f"/console/users/{uid}", status_code=303, headers=SECURITY_HEADERS)

    @post("/users/{user_id:str}/deactivate", status_code=303)
    async def deactivate(self, request: Request, user_id: PathText) -> Response:
        await _form(request)
        uid = _id(user_id, "user")
        await request.app.state.container.deactivate_provider().execute(uid)
        return Redirect(f"/console/users/{uid}", status_code=303, headers=SECURITY_HEADERS)


# --- helpers -----------------------------------------------------------------------------------------


def _sessions(request: Request) -> ConsoleSessions:
    return request.app.state.console_sessions


async def _session(request: Request) -> ConsoleSession:
    """The signed-in session, still backed by a configured key or a live operator; else SignInNeeded."""
    session = _sessions(request).read(request.cookies.get(COOKIE), time.time())
    if session is None:
        raise SignInNeeded
    kind, _, who = session.subject.partition(":")
    if kind == "key":
        valid = any(hmac.compare_digest(who, key_fingerprint(k)) for k in request.app.state.admin_api_keys)
    else:
        valid = await _is_operator(request, int(who))
    if not valid:
        raise SignInNeeded
    request.scope.setdefault("state", {})["console_session"] = session
    return session


async def _form(request: Request) -> dict[str, str]:
    """An action's form, after its session, origin and CSRF token were checked."""
    session = await _session(request)
    _same_origin(request)
    form = await request.form()
    if not hmac.compare_digest(str(form.get("csrf", "")), session.csrf):
        raise Refused(403, "this form is stale or did not come from the console: reload the page and try again")
    return {k: str(v) for k, v in form.items()}


def _same_origin(request: Request) -> None:
    """Browsers send Origin with every POST: one from another site is refused (SameSite=Strict is the other lock)."""
    origin = request.headers.get("origin")
    if origin is not None and origin != f"{_scheme(request)}://{request.headers.get('host', '')}":
        raise Refused(403, "cross-site requests are refused")


def _scheme(request: Request) -> str:
    if request.scope.get("scheme") == "https":
        return "https"
    peer = request.client.host if request.client else None
    if peer in request.app.trusted_proxies and request.headers.get("x-forwarded-proto") == "https":
        return "https"
    return "http"


def _cookie(request: Request, value: str, max_age: int) -> Cookie:
    return Cookie(
        key=COOKIE,
        value=value,
        path="/console",
        max_age=max_age,
        httponly=True,
        secure=_scheme(request) == "https",
        samesite="strict",
    )


async def _subject_for(request: Request, supplied: str) -> str | None:
    """Who this admin API key or operator token is, for the session; None if it is neither."""
    keys: tuple[str, ...] = request.app.state.admin_api_keys
    matched = [k for k in keys if hmac.compare_digest(supplied.encode(), k.encode())]
    if matched:
        return f"key:{key_fingerprint(matched[0])}"
    try:
        user_id = await request.app.state.identify.execute(supplied)
    except (InvalidToken, ProfileNotFound, KeysUnavailable):
        return None
    return f"operator:{user_id}" if await _is_operator(request, user_id) else None


async def _is_operator(request: Request, user_id: int) -> bool:
    try:
        profile = await request.app.state.container.get_profile().execute(user_id)
    except ProfileNotFound:
        return False
    return profile.role is Role.OPERATOR


async def _user_id(request: Request, who: str) -> int:
    """A user by profile id or by the app's external id."""
    if who.isascii() and who.isdigit():
        return _id(who, "user")
    profile = await request.app.state.container.get_provisioned_profile().execute(who)
    assert profile[0].id is not None
    return profile[0].id
