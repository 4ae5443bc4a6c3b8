"""``PrometheusMetrics``: the DeliveryMetrics port and the service's other counters, in one registry.

One registry per app (not the library's global one), so several apps in one process (the tests)
do not collide. Every label set is bounded: route templates, not paths; no user ids.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Callable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)

from application.ports import DeliveryMetrics

_CODE = re.compile(r"[A-Z][A-Z0-9_]{0,39}")
# Socket close codes are chosen by clients too: any other code is counted as "other" (bounded labels).
KNOWN_CLOSE_CODES = frozenset({1000, 1001, 1005, 1006, 1008, 1011, 1012, 1013, 4401, 4403, 4408, 4409, 4429, 4503})
KNOWN_PLATFORMS = frozenset({"android", "ios", "web"})
ACK_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0, 86400.0)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class PrometheusMetrics(DeliveryMetrics):
    def __init__(self) -> None:
        # The *_created series (one per labelled child) double the scrape for no dashboard or alert here.
        disable_created_metrics()
        # `workcast serve --workers N` sets PROMETHEUS_MULTIPROC_DIR: values go to files every worker's
        # /metrics adds up (gauges say how: summed over live workers, or the highest).
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self._pool_checked_out: Callable[[], int] | None = None
        self.registry = CollectorRegistry()
        r = self.registry
        self.notifications = Counter("workcast_notifications", "Notifications created, by kind", ["kind"], registry=r)
        self.deliveries = Counter(
            "workcast_deliveries", "Channel attempts that ended, by channel and outcome", ["channel", "outcome"],
            registry=r,
        )  # fmt: skip
        self.push_errors = Counter("workcast_push_errors", "Push failures by FCM error code", ["code"], registry=r)
        self.delivery_latency = Histogram(
            "workcast_delivery_latency_seconds",
            "From the notification's commit to the socket write / to FCM accepting the push",
            ["channel"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.http_requests = Counter(
            "workcast_http_requests",
            "HTTP requests by method, route template and status",
            ["method", "route", "status"],
            registry=r,
        )
        self.http_duration = Histogram(
            "workcast_http_request_duration_seconds", "HTTP request duration", ["method", "route"],
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.sockets_open = Gauge(
            "workcast_sockets_open", "Open WebSockets by role", ["role"], registry=r, multiprocess_mode="livesum"
        )
        self.socket_disconnects = Counter(
            "workcast_socket_disconnects",
            "WebSocket sessions that ended (accepted or refused), by role and close code",
            ["role", "code"],
            registry=r,
        )
        self.acks = Counter(
            "workcast_acks", "Notifications the app acknowledged, by channel and kind", ["channel", "kind"], registry=r
        )
        self.ack_latency = Histogram(
            "workcast_ack_latency_seconds",
            "From the notification's commit to the app's acknowledgement",
            buckets=ACK_BUCKETS,
            registry=r,
        )
        self.opens = Counter(
            "workcast_opens", "Notifications the user opened, by channel and kind", ["channel", "kind"], registry=r
        )
        self.open_latency = Histogram(
            "workcast_open_latency_seconds",
            "From the notification's commit to the user opening it",
            buckets=ACK_BUCKETS,
            registry=r,
        )
        self.pushes_accepted = Counter(
            "workcast_pushes_accepted",
            "Pushes FCM accepted, by the device's platform (one per device)",
            ["platform"],
            registry=r,
        )
        self.locations_received = Counter(
            "workcast_locations_received", "Provider positions received on sockets (before coalescing)", registry=r
        )
        self.locations_written = Counter(
            "workcast_locations_written", "Provider positions from sockets written to the store", registry=r
        )
        self.location_staleness = Histogram(
            "workcast_location_staleness_seconds",
            "Age of the oldest position in each batch when it was written (what a search may miss)",
            buckets=(0.1, 0.25, 0.5, 1, 1.5, 2, 3, 5, 10),
            registry=r,
        )
        self.dispatcher_due = Gauge(
            "workcast_dispatcher_due",
            "Notifications due for delivery when the dispatcher last looked",
            registry=r,
            multiprocess_mode="livemax",
        )
        self.dispatcher_oldest_due = Gauge(
            "workcast_dispatcher_oldest_due_seconds",
            "How long the oldest due notification had waited",
            registry=r,
            multiprocess_mode="livemax",
        )
        self.broker_reconnects = Counter(
            "workcast_broker_reconnects", "Times the Redis subscription was lost and came back", registry=r
        )
        self.db_pool_in_use = Gauge(
            "workcast_db_pool_connections_in_use", "Database connections checked out of the pools",
            registry=r, multiprocess_mode="livesum",
        )  # fmt: skip
        self.db_pool_size = Gauge(
            "workcast_db_pool_size", "The pools' configured size", registry=r, multiprocess_mode="livesum"
        )
        self.rate_limited_requests = Counter(
            "workcast_rate_limited", "Requests and socket messages refused by a rate limit, by group", ["group"],
            registry=r,
        )  # fmt: skip
        self.limiter_failures = Counter(
            "workcast_rate_limiter_unavailable",
            "Checks the shared limiter could not answer (the request was let through)",
            registry=r,
        )

    # --- DeliveryMetrics ---------------------------------------------------------------------------

    def notification_created(self, kind: str) -> None:
        self.notifications.labels(kind).inc()

    def channel_outcome(self, channel: str, outcome: str, seconds_since_created: float | None = None) -> None:
        self.deliveries.labels(channel, outcome).inc()
        if seconds_since_created is not None:
            self.delivery_latency.labels(channel).observe(seconds_since_created)

    def push_error(self, code: str) -> None:
        self.push_errors.labels(code if _CODE.fullmatch(code) else "OTHER").inc()

    def acknowledged(self, channel: str, kind: str, seconds_since_created: float) -> None:
        self.acks.labels(channel, kind).inc()
        self.ack_latency.observe(seconds_since_created)

    def opened(self, channel: str, kind: str, seconds_since_created: float) -> None:
        self.opens.labels(channel, kind).inc()
        self.open_latency.observe(seconds_since_created)

    def push_accepted(self, platform: str) -> None:
        # The platform is the app's word: anything unexpected is "other", so the label set stays small.
        self.pushes_accepted.labels(platform if platform in KNOWN_PLATFORMS else "other").inc()

    # --- the rest ------------------------------------------------------------------------------------

    def rate_limited(self, group: str) -> None:
        self.rate_limited_requests.labels(group).inc()

    def limiter_unavailable(self) -> None:
        self.limiter_failures.inc()

    def socket_disconnect(self, role: str, code: int) -> None:
        self.socket_disconnects.labels(role, str(code) if code in KNOWN_CLOSE_CODES else "other").inc()

    def watch_pool(self, checked_out: Callable[[], int], size: int) -> None:
        """Read the pool's use at each scrape (nothing is counted on the request path); with several
        workers, where a gauge cannot read a function, ``sample_pool`` sets it every few seconds instead."""
        self._pool_checked_out = checked_out
        self.db_pool_size.set(size)
        if not self.multiprocess:
            self.db_pool_in_use.set_function(checked_out)

    async def sample_pool_forever(self, every: float = 5.0) -> None:
        while self.multiprocess and self._pool_checked_out is not None:
            self.db_pool_in_use.set(self._pool_checked_out())
            await asyncio.sleep(every)

    def locations_flushed(self, received: int, written: int, oldest_seconds: float) -> None:
        self.locations_received.inc(received)
        self.locations_written.inc(written)
        self.location_staleness.observe(oldest_seconds)

    def process_exiting(self) -> None:
        """A worker stops: its live gauges (sockets open, pool in use) leave the sums."""
        if self.multiprocess:
            multiprocess.mark_process_dead(os.getpid())

    def http_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.http_requests.labels(method, route, str(status)).inc()
        self.http_duration.labels(method, route).observe(seconds)

    def exposition(self) -> bytes:
        if self.multiprocess:
            every_worker = CollectorRegistry()
            multiprocess.MultiProcessCollector(every_worker)
            return generate_latest(every_worker)
        return generate_latest(self.registry)
