"""``create_app()``: the Litestar application, wired from settings through the container."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hmac
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

from litestar import Litestar, Request, Response, get, head
from litestar.config.cors import CORSConfig
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.status_codes import HTTP_503_SERVICE_UNAVAILABLE
from litestar.template.config import TemplateConfig
from prometheus_client import CONTENT_TYPE_LATEST

from adapters.prometheus.metrics import PrometheusMetrics
from adapters.sqlalchemy.migrate import schema_problem, upgrade_async
from application.errors import InvalidToken, RateLimited
from application.idempotency import Replayed
from entrypoints.console.pages import ConsolePages
from entrypoints.console.session import ConsoleSessions, signing_key
from entrypoints.container import Container, build_container, close, database_location, database_settings
from entrypoints.http.admin import AdminProfilesController, AdminWorkOrdersController
from entrypoints.http.errors import EXCEPTION_HANDLERS, RequestRejected, error_body
from entrypoints.http.fast_assign import FastAssignWork
from entrypoints.http.guards import CALLER_ID, caller_id
from entrypoints.http.idempotency import on_replayed
from entrypoints.http.limits import on_rate_limited
from entrypoints.http.preferences import NotificationPreferencesController
from entrypoints.http.profiles import ProfilesController
from entrypoints.http.schemas import Envelope, HealthData, envelope, error_responses
from entrypoints.http.socket_protocol import asyncapi_document
from entrypoints.http.sockets import (
    LiveSessions,
    SessionEnd,
    SocketServices,
    serve_socket,
    socket_paths_over_http,
    socket_role,
)
from entrypoints.http.strict import StrictJsonRequest
from entrypoints.logs import configure_logging, request_id
from entrypoints.settings import Settings

CONSOLE_TEMPLATES = Path(__file__).parent.parent / "console" / "templates"
log = logging.getLogger(__name__)
access = logging.getLogger("workcast.access")
_REQUEST_ID = re.compile(r"[!-~]{1,128}")  # visible ASCII: safe to echo in a header and a log line


def _request_id(scope) -> str:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            supplied = value.decode("latin-1")
            if _REQUEST_ID.fullmatch(supplied):
                return supplied
            break
    return uuid.uuid4().hex


MAX_BODY = 64 * 1024  # bytes of a request body
GC_THRESHOLDS = (2000, 20, 1000)  # CPython's defaults: (700, 10, 10)

# Use cases and services handlers may ask for by name; each resolves through the container.
INJECTED = (
    "broker",
    "register_device",
    "set_provider_availability",
    "list_active_providers",
    "assign_work",
    "offer_work",
    "respond_to_work",
    "cancel_work",
    "list_work_orders",
    "list_notifications",
    "acknowledge_notification",
    "get_delivery_stats",
    "provision_profile",
    "get_provisioned_profile",
    "erase_profile",
    "import_profiles",
    "show_profile",
    "show_notification_preferences",
    "change_notification_preferences",
    "unregister_device",
    "get_work_order",
    "complete_work",
    "get_work_order_timeline",
)


@get("/health", tags=["operations"], operation_id="health")
async def health() -> Envelope[dict]:
    """Liveness: the process answers."""
    return envelope("ok", {"alive": True})


@head("/health", tags=["operations"], operation_id="healthHead")
async def health_head() -> None:
    """Liveness for probes that only look at the status (load balancers often send HEAD)."""


def asyncapi_schema():
    document = asyncapi_document()

    @get("/schema/asyncapi.json", tags=["operations"], operation_id="asyncapi", include_in_schema=False)
    async def asyncapi() -> dict:
        """The WebSocket protocol as an AsyncAPI 3.0 document (generated from the server's message types)."""
        return document

    return asyncapi


LOOPBACK = ("127.0.0.1", "::1", "localhost")


def metrics_endpoint(metrics: PrometheusMetrics, token: str | None):
    @get("/metrics", tags=["operations"], operation_id="metrics", include_in_schema=False)
    async def scrape(request: Request) -> Response:
        """Prometheus text format. With METRICS_TOKEN: that bearer token only; without: loopback clients only."""
        if token:
            scheme, _, supplied = (request.headers.get("authorization") or "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(supplied.strip().encode(), token.encode()):
                raise InvalidToken("metrics need 'Authorization: Bearer <METRICS_TOKEN>'")
        elif (request.client.host if request.client else None) not in LOOPBACK:
            raise RequestRejected(
                403, "forbidden", "metrics are served to loopback clients unless METRICS_TOKEN is set"
            )
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return scrape


def readiness(container: Container):
    @get("/ready", tags=["operations"], operation_id="ready", responses=error_responses(503))
    async def ready() -> Response:
        """Readiness: the database answers and the broker can carry messages."""
        database = "ok"
        try:
            async with asyncio.timeout(3):
                database = await schema_problem(container.engine()) or "ok"
        except Exception as error:  # any failure means "not ready", with the reason for the operator
            database = f"unavailable: {type(error).__name__}"
        broker = "ok" if await container.broker().is_healthy() else "unavailable"
        data = HealthData(database=database, broker=broker)
        if database == "ok" and broker == "ok":
            return Response(envelope("ready", data))
        body = error_body("not ready", "not_ready") | {"data": {"database": database, "broker": broker}}
        return Response(body, status_code=HTTP_503_SERVICE_UNAVAILABLE)

    return ready


def _resolver(container: Container, name: str):
    """Bridge dependency-injector to Litestar: a plain callable Litestar can inspect."""
    provider = getattr(container, name)

    def resolve():
        return provider()

    return resolve


class WorkcastApp(Litestar):
    """Litestar, with the WebSocket paths served ahead of its routing (see entrypoints.http.sockets)."""

    sockets: SocketServices
    metrics: PrometheusMetrics
    fast_assign: FastAssignWork

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "websocket" and (role := socket_role(scope["path"])) is not None:
            await self._socket_session(scope, receive, send, role)
            return
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        # Every HTTP request is counted and logged by its route template (Litestar's, once routed), never
        # its raw path or query (tokens travel there), with a request id that every line it causes carries.
        started = time.perf_counter()
        status = 499  # until a response starts: nginx's "client closed the request" (an app error answers 500)
        rid = _request_id(scope)
        token = request_id.set(rid)

        async def send_and_note_status(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        try:
            if self.fast_assign.takes(scope):
                receive = await self.fast_assign.serve(scope, receive, send_and_note_status)
            if receive is not None:
                await super().__call__(scope, receive, send_and_note_status)
        finally:
            seconds = time.perf_counter() - started
            route = (scope.get("path_template") if scope.get("route_handler") is not None else None) or "unmatched"
            self.metrics.http_request(scope["method"], route, status, seconds)
            access.log(
                logging.ERROR if status >= 500 else logging.INFO,
                "request",
                extra={
                    "method": scope["method"],
                    "route": route,
                    "status": status,
                    "duration_ms": round(seconds * 1000, 2),
                    "user_id": scope.get("state", {}).get(CALLER_ID),
                    "client": self.client_address(scope),
                },
            )
            request_id.reset(token)

    async def _socket_session(self, scope, receive, send, role) -> None:
        """A WebSocket session, with one access log line when it ends (its close code stands for the status)."""
        started = time.perf_counter()
        token = request_id.set(_request_id(scope))
        end = SessionEnd()
        try:
            await serve_socket(scope, receive, send, role, self.sockets, end, self.client_address(scope) or "unknown")
        finally:
            access.info(
                "socket session",
                extra={
                    "method": "WEBSOCKET",
                    "route": scope["path"] if scope["path"].endswith("/") else f"{scope['path']}/",
                    "status": end.close_code,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    "user_id": end.user_id,
                    "client": self.client_address(scope),
                },
            )
            request_id.reset(token)

    trusted_proxies: frozenset[str] = frozenset()

    def client_address(self, scope) -> str | None:
        """The client's address; behind a trusted proxy, the address that proxy saw (X-Forwarded-For)."""
        peer = scope["client"][0] if scope.get("client") else None
        if peer in self.trusted_proxies:
            for name, value in scope["headers"]:
                if name == b"x-forwarded-for":
                    return value.decode("latin-1").rsplit(",", 1)[-1].strip()[:64] or peer
        return peer


def create_app(settings: Settings | None = None, container: Container | None = None) -> WorkcastApp:
    settings = settings or Settings.from_env()
    configure_logging(settings.log_level, settings.log_format)
    if settings.embedded:
        settings = settings.with_jwt_secret()
    settings.require_token_keys()
    container = container or build_container(settings)
    # Pick the adapters now: a wrong PUSH_BACKEND or REDIS_URL stops the start with a clear message.
    container.push_sender()
    container.broker()

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        if settings.auto_migrate:
            await upgrade_async(database_settings(settings).url)
        catch_up = container.catch_up_sockets()

        async def on_broker_reconnect(users: list[int], gap: timedelta) -> None:
            container.metrics().broker_reconnects.inc()
            await catch_up.execute(users, gap)

        container.broker().on_reconnect(on_broker_reconnect)
        await container.broker().start()
        recheck_task = asyncio.create_task(
            app.sockets.sessions.recheck_forever(container.find_unknown_users(), settings.socket_recheck_interval),
            name="socket-user-recheck",
        )
        pool_task = asyncio.create_task(container.metrics().sample_pool_forever(), name="pool-sampler")
        locations_task = asyncio.create_task(container.live_locations().flush_forever(), name="live-locations")
        dispatcher_task = None
        if settings.dispatcher_enabled:
            dispatcher = container.dispatcher()
            dispatcher_task = asyncio.create_task(dispatcher.run_forever(), name="dispatcher")
        if settings.embedded and settings.data_dir_is_default:
            log.warning(
                "WORKCAST_DATA_DIR is not set: the data (database and JWT secret) is in .workcast of the folder"
                " workcast started in; started elsewhere, it would be another database. Set it to pin one",
                extra={"data_dir": str(settings.data_dir)},
            )
        log.info(
            "workcast started",
            extra={
                "database": database_location(settings),
                "broker": "redis" if settings.redis_url else "in-process",
                "push": settings.push_backend.value,
                "dispatcher": settings.dispatcher_enabled,
            },
        )
        # Full collections walk every live object, and thousands of idle sockets are many objects:
        # measured 80-330 ms pauses, which were the whole p99 of assign-work. So: everything loaded
        # by now (modules, container, compiled SQL) leaves the collector's sight for good, and the
        # old generation is collected 100x less often (young cycles are still freed as before).
        # Measured at 200 assignments/s with 5,000 idle sockets: p99 438 -> 18 ms (bench/, README).
        gc.collect()
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        try:
            yield
        finally:
            for task in (dispatcher_task, recheck_task, pool_task, locations_task):
                if task:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            with contextlib.suppress(Exception):  # the last second of positions; a later send replaces them anyway
                await container.live_locations().flush()
            await close(container)
            container.metrics().process_exiting()

    dependencies = {name: Provide(_resolver(container, name), sync_to_thread=False) for name in INJECTED}
    dependencies["caller_id"] = Provide(caller_id, sync_to_thread=False)
    app = WorkcastApp(
        route_handlers=[
            ProfilesController,
            NotificationPreferencesController,
            AdminProfilesController,
            AdminWorkOrdersController,
            *socket_paths_over_http(),
            health,
            health_head,
            readiness(container),
            asyncapi_schema(),
            metrics_endpoint(container.metrics(), settings.metrics_token),
            ConsolePages,
        ],
        template_config=TemplateConfig(directory=CONSOLE_TEMPLATES, engine=JinjaTemplateEngine),
        dependencies=dependencies,
        exception_handlers={**EXCEPTION_HANDLERS, RateLimited: on_rate_limited, Replayed: on_replayed},
        lifespan=[lifespan],
        openapi_config=OpenAPIConfig(
            title="workcast",
            version="1.0.0",
            description="Assign work to providers and deliver it by FCM push and WebSocket.",
            components=Components(
                security_schemes={"BearerToken": SecurityScheme(type="http", scheme="bearer", bearer_format="JWT")}
            ),
            path="/schema",
        ),
        request_max_body_size=MAX_BODY,
        request_class=StrictJsonRequest,
        # A Flutter web build calls the API from its own origin; unset, browsers get no CORS headers at all.
        cors_config=CORSConfig(
            allow_origins=list(settings.cors_allow_origins),
            allow_methods=["GET", "POST", "PATCH", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
            max_age=600,
        )
        if settings.cors_allow_origins
        else None,
        logging_config=None,  # configure_logging() owns the log format
        debug=False,
    )
    app.metrics = container.metrics()
    pool = container.engine().sync_engine.pool
    if hasattr(pool, "checkedout") and hasattr(pool, "size"):
        app.metrics.watch_pool(pool.checkedout, pool.size())  # SQLite's pool is one connection: its one writer
    app.trusted_proxies = frozenset(settings.trusted_proxies)
    app.sockets = SocketServices(
        identify=container.identify_caller(),
        broker=container.broker(),
        replay=container.replay_undelivered(),
        respond=container.respond_to_work(),
        acknowledge=container.acknowledge_notification(),
        locations=container.live_locations(),
        sessions=LiveSessions(),
        metrics=container.metrics(),
        limits=container.request_limits(),
        socket_registry=container.socket_registry(),
        max_sockets_per_user=settings.max_sockets_per_user,
        admission=asyncio.Semaphore(settings.socket_admission),
        send_queue=settings.socket_send_queue,
        send_timeout=settings.socket_send_timeout,
    )
    app.state.container = container
    app.state.identify = container.identify_caller()
    app.state.admin_api_keys = settings.admin_api_keys
    app.state.settings = settings
    app.state.limits = container.request_limits()
    app.state.assign_work = container.assign_work()  # the hot path takes it from here (profiles.assign_work)
    app.fast_assign = FastAssignWork(
        app, container.assign_work(), container.identify_caller(), container.request_limits(), MAX_BODY
    )
    app.state.console_sessions = ConsoleSessions(signing_key(settings.console_secret, settings.admin_api_keys))
    return app
