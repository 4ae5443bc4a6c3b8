"""``PrometheusMetrics``: the DeliveryMetrics port and the service's other counters, in one registry.

One registry per app (not the library's global one), so several apps in one process (the tests)
do not collide. Every label set is bounded: route templates, not paths; no user ids.
"""

from __future__ import annotations

import re

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from application.ports import DeliveryMetrics

_CODE = re.compile(r"[A-Z][A-Z0-9_]{0,39}")
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class PrometheusMetrics(DeliveryMetrics):
    def __init__(self) -> None:
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
        self.sockets_open = Gauge("workcast_sockets_open", "Open WebSockets by role", ["role"], registry=r)
        self.socket_closes = Counter(
            "workcast_socket_sessions_ended", "WebSocket sessions that ended, by how", ["reason"], registry=r
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

    # --- the rest ------------------------------------------------------------------------------------

    def http_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.http_requests.labels(method, route, str(status)).inc()
        self.http_duration.labels(method, route).observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
