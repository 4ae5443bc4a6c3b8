"""/metrics: Prometheus text an operator can scrape, with bounded labels, and who may read it."""

from __future__ import annotations

import re

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.exceptions import ConnectionClosed

from tests.e2e.conftest import open_socket, running_server, seed_assignment
from tests.fixtures.waiting import eventually


def samples(text: str) -> dict[tuple[str, tuple], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found: dict, name: str, **labels) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_count_requests_deliveries_and_sockets(server, admin, http):
    seeker, provider = await admin.seeker(), await admin.provider()
    async with open_socket(server, "/ws/work/provider/", provider.token) as app:
        r = await http.post("/api/1/profiles/assign-work/", json=seed_assignment(provider.id), headers=seeker.headers)
        work_id = r.json()["data"]["work_order_id"]
        assert (await app.receive())["type"] == "work_assigned"
        await http.post(f"/api/1/profiles/work-orders/{work_id}/cancel/", headers=seeker.headers)
        scraped = await http.get("/metrics")
        assert scraped.status_code == 200 and scraped.headers["content-type"].startswith("text/plain")
        found = samples(scraped.text)
        assert value(found, "workcast_sockets_open", role="provider") >= 1
    route = "/api/1/profiles/assign-work"
    assert value(found, "workcast_http_requests_total", method="POST", route=route, status="201") >= 1
    cancel = "/api/1/profiles/work-orders/{work_id}/cancel"
    assert value(found, "workcast_http_requests_total", method="POST", route=cancel, status="200") >= 1
    assert value(found, "workcast_notifications_total", kind="work_assigned") >= 1
    assert value(found, "workcast_deliveries_total", channel="socket", outcome="sent") >= 1
    assert value(found, "workcast_delivery_latency_seconds_count", channel="socket") >= 1
    # Labels are bounded: route templates, never a raw path with an id in it.
    routes = {dict(labels).get("route") for (name, labels) in found if name == "workcast_http_requests_total"}
    assert cancel in routes and not any(re.search(r"/[0-9]+(/|$)", r.replace("/api/1/", "/api/")) for r in routes)

    async def socket_counted_out() -> bool:
        now = samples((await http.get("/metrics")).text)
        return value(now, "workcast_sockets_open", role="provider") == 0

    await eventually(socket_counted_out)


async def test_a_metrics_token_is_required_when_set(tmp_path):
    token = "m" * 40
    with running_server({"WORKCAST_DATA_DIR": str(tmp_path), "METRICS_TOKEN": token}) as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
            refused = await http.get("/metrics")
            assert refused.status_code == 401 and refused.json()["code"] == "not_authenticated"
            assert (await http.get("/metrics", headers={"Authorization": "Bearer wrong"})).status_code == 401
            assert (await http.get("/metrics", headers={"Authorization": f"Bearer {token}"})).status_code == 200


async def test_acks_disconnects_backlog_and_the_pool_are_measured(server, admin, http):
    seeker, provider = await admin.seeker(), await admin.provider()
    before = samples((await http.get("/metrics")).text)
    async with open_socket(server, "/ws/work/provider/", provider.token) as app:
        r = await http.post("/api/1/profiles/assign-work/", json=seed_assignment(provider.id), headers=seeker.headers)
        assert r.status_code == 201
        offer = await app.receive()
        await app.send({"type": "ack", "notification_id": offer["notification_id"]})
        assert (await app.receive())["type"] == "acked"

    async def measured() -> bool:
        found = samples((await http.get("/metrics")).text)
        offers = {"channel": "socket", "kind": "work_assigned"}
        acked = value(found, "workcast_acks_total", **offers) - value(before, "workcast_acks_total", **offers)
        closed = value(found, "workcast_socket_disconnects_total", role="provider", code="1000") - value(
            before, "workcast_socket_disconnects_total", role="provider", code="1000"
        )
        return acked >= 1 and closed >= 1 and value(found, "workcast_ack_latency_seconds_count") >= 1

    await eventually(measured)
    found = samples((await http.get("/metrics")).text)
    assert ("workcast_dispatcher_due", ()) in found and ("workcast_dispatcher_oldest_due_seconds", ()) in found
    assert value(found, "workcast_db_pool_size") >= 1 and ("workcast_db_pool_connections_in_use", ()) in found

    # A refused socket is counted by its close code too (4401: no valid token).
    async with open_socket(server, "/ws/work/provider/", "not-a-token") as refused:
        with pytest.raises(ConnectionClosed) as closed:
            await refused.receive()
        assert closed.value.rcvd.code == 4401

    async def refusal_counted() -> bool:
        now = samples((await http.get("/metrics")).text)
        return value(now, "workcast_socket_disconnects_total", role="provider", code="4401") >= 1

    await eventually(refusal_counted)
