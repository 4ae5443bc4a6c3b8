"""Flows beyond the seed: nearby providers, cancel, expiry, acknowledgements over REST, a database that is down."""

from __future__ import annotations

import asyncio
import json
import logging

import httpx

from domain.profiles import Role
from tests.e2e.conftest import open_socket, running_server, seed_assignment
from tests.fixtures.servers import free_port
from tests.fixtures.waiting import eventually


async def test_active_providers_near_a_point(admin, http):
    seeker, near, far = await admin.seeker(), await admin.provider("Near"), await admin.provider("Far")
    await http.patch(
        "/api/1/profiles/provider-status/",
        headers=near.headers,
        json={"is_active_for_work": True, "latitude": 48.8566, "longitude": 2.3522},
    )
    await http.patch(
        "/api/1/profiles/provider-status/",
        headers=far.headers,
        json={"is_active_for_work": True, "latitude": 48.9, "longitude": 2.6},
    )
    r = await http.get(
        "/api/1/profiles/active-providers/",
        headers=seeker.headers,
        params={"latitude": 48.857, "longitude": 2.35, "radius_km": 25},
    )
    providers = r.json()["data"]["providers"]
    assert [p["name"] for p in providers][:2] == ["Near", "Far"]
    assert providers[0]["distance_km"] < 1 < providers[1]["distance_km"] < 25
    r = await http.get(
        "/api/1/profiles/active-providers/",
        headers=seeker.headers,
        params={"latitude": 48.857, "longitude": 2.35, "radius_km": 1},
    )
    assert [p["name"] for p in r.json()["data"]["providers"]] == ["Near"]


async def test_the_log_has_each_socket_connecting_and_disconnecting(server, admin, caplog):
    caplog.set_level(logging.INFO, logger="entrypoints.http.sockets")
    provider = await admin.provider("Logged")
    async with open_socket(server, "/ws/work/provider/", provider.token) as socket:
        await socket.send({"type": "ping"})
        assert (await socket.receive())["type"] == "pong"

    def events():
        return [(r.getMessage(), r.user_id) for r in caplog.records if getattr(r, "user_id", None) == provider.id]

    await eventually(lambda: ("socket disconnected", provider.id) in events())  # the server sees the close later
    assert events() == [("socket connected", provider.id), ("socket disconnected", provider.id)]


async def test_cancel_reaches_the_provider(server, admin, http):
    seeker, provider = await admin.seeker(), await admin.provider()
    async with open_socket(server, "/ws/work/provider/", provider.token) as app:
        await app.send({"type": "ping"})
        await app.receive()
        created = await http.post(
            "/api/1/profiles/assign-work/", json=seed_assignment(provider.id), headers=seeker.headers
        )
        work_id = created.json()["data"]["work_order_id"]
        assert (await app.receive())["type"] == "work_assigned"
        r = await http.post(f"/api/1/profiles/work-orders/{work_id}/cancel/", headers=seeker.headers)
        assert r.status_code == 200 and r.json()["data"]["status"] == "cancelled"
        cancelled = await app.receive()
        assert cancelled["type"] == "work_cancelled" and cancelled["work_id"] == work_id


async def test_acknowledging_over_rest_marks_delivered(admin, http):
    seeker, provider = await admin.seeker(), await admin.provider()
    created = await http.post("/api/1/profiles/assign-work/", json=seed_assignment(provider.id), headers=seeker.headers)
    notification_id = created.json()["data"]["notification_id"]
    r = await http.post(f"/api/1/profiles/notifications/{notification_id}/ack/", headers=provider.headers)
    assert r.status_code == 200 and r.json()["data"]["delivery_status"] == "delivered"


async def test_unanswered_work_expires_and_both_sides_hear(tmp_path):
    from tests.e2e.conftest import Admin

    env = {"WORKCAST_DATA_DIR": str(tmp_path), "WORK_TIME_TO_ANSWER_SECONDS": "1"}
    with running_server(env) as server:
        admin = Admin(server.settings)
        try:
            seeker, provider = await admin.seeker(), await admin.provider()
            async with (
                httpx.AsyncClient(base_url=server.base_url) as http,
                open_socket(server, "/ws/work/seeker/", seeker.token) as seeker_app,
            ):
                await seeker_app.send({"type": "ping"})
                await seeker_app.receive()
                created = await http.post(
                    "/api/1/profiles/assign-work/", json=seed_assignment(provider.id), headers=seeker.headers
                )
                work_id = created.json()["data"]["work_order_id"]
                expired = await seeker_app.receive(within=10)
                assert expired["type"] == "work_expired" and expired["work_id"] == work_id
                r = await http.post(
                    f"/api/1/profiles/work-orders/{work_id}/respond/", json={"accepted": True}, headers=provider.headers
                )
                assert r.status_code == 409 and r.json()["code"] == "already_answered"
        finally:
            from entrypoints.container import close

            await close(admin.container)


async def test_a_database_that_is_down_answers_503_not_500(tmp_path):
    env = {
        "DATABASE_URL": f"postgresql://nobody@127.0.0.1:{free_port()}/none",
        "JWT_SECRET": "s" * 40,
        "AUTO_MIGRATE": "false",
        "DB_CONNECT_TIMEOUT_SECONDS": "1",
    }
    with running_server(env) as server:
        from entrypoints.auth import TokenService

        token = TokenService(server.settings).issue(1)
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
            r = await http.get("/api/1/profiles/work-orders/", headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 503 and r.json()["code"] == "storage_unavailable"
            assert r.headers["retry-after"] == "5"
            ready = await http.get("/ready")
            assert ready.status_code == 503 and ready.json()["data"]["database"].startswith("unavailable")
            assert (await http.get("/health")).status_code == 200
        await asyncio.sleep(0)


async def test_delivery_stats_are_for_operators(admin, http):
    from domain.profiles import Role

    operator, seeker, provider = await admin.user(Role.OPERATOR, "Ops"), await admin.seeker(), await admin.provider()
    await http.post("/api/1/profiles/assign-work/", json=seed_assignment(provider.id), headers=seeker.headers)
    r = await http.get("/api/1/profiles/notifications/stats/", headers=seeker.headers)
    assert r.status_code == 403 and r.json()["code"] == "not_an_operator"
    r = await http.get("/api/1/profiles/notifications/stats/?hours=1", headers=operator.headers)
    data = r.json()["data"]
    assert r.status_code == 200 and data["total"] >= 1 and data["window_hours"] == 1
    assert sum(data["by_delivery_status"].values()) == data["total"]
    assert set(data["by_push_state"]) <= {"pending", "sent", "failed", "skipped"}
    r = await http.get("/api/1/profiles/notifications/stats/?hours=0", headers=operator.headers)
    assert r.status_code == 422 and r.json()["field"] == "hours"


async def test_workcast_serve_declines_per_message_deflate(tmp_path, admin):
    """A client that offers compression (Flutter's dart:io does by default) gets a plain socket: ~25 KB, not ~300 KB."""
    from websockets.asyncio.client import connect

    from tests.e2e.conftest import server_process

    port = free_port()
    env = {"WORKCAST_DATA_DIR": str(tmp_path), "JWT_SECRET": "d" * 40}
    with server_process(env, port, tmp_path / "serve.log"):
        from entrypoints.settings import Settings
        from tests.e2e.conftest import BASE_ENV, Admin

        own = Admin(Settings.from_env({**BASE_ENV, **env}))
        try:
            provider = await own.provider()
        finally:
            from entrypoints.container import close

            await close(own.container)
        url = f"ws://127.0.0.1:{port}/ws/work/provider/?token={provider.token}"
        async with connect(url, compression="deflate") as ws:
            await ws.send('{"type": "ping"}')
            assert json.loads(await ws.recv())["type"] == "replay_complete"
            assert await ws.recv() == '{"type":"pong"}'
            assert ws.protocol.extensions == []


async def test_the_app_reports_opened_notifications_over_http_and_socket(server, admin, http):
    seeker, provider = await admin.seeker(), await admin.provider()
    operator = await admin.user(Role.OPERATOR, "Ops")
    async with open_socket(server, "/ws/work/provider/", provider.token) as app:
        first = await http.post(
            "/api/1/profiles/assign-work/", json=seed_assignment(provider.id), headers=seeker.headers
        )
        offer = await app.receive()
        assert offer["type"] == "work_assigned"
        await app.send({"type": "opened", "notification_id": offer["notification_id"]})
        assert await app.receive() == {"type": "open_recorded", "notification_id": offer["notification_id"]}
        assert first.status_code == 201
        await http.post("/api/1/profiles/assign-work/", json=seed_assignment(provider.id), headers=seeker.headers)
        second = await app.receive()

    r = await http.post(f"/api/1/profiles/notifications/{second['notification_id']}/opened/", headers=provider.headers)
    assert r.status_code == 200 and r.json()["data"]["opened_at"] and r.json()["data"]["delivery_status"] == "delivered"
    again = await http.post(
        f"/api/1/profiles/notifications/{second['notification_id']}/opened/", headers=provider.headers
    )
    assert again.json()["data"]["opened_at"] == r.json()["data"]["opened_at"]  # the first time is kept
    # Someone else's notification reads as missing.
    stranger = await http.post(
        f"/api/1/profiles/notifications/{second['notification_id']}/opened/", headers=seeker.headers
    )
    assert stranger.status_code == 404

    listed = (await http.get("/api/1/profiles/notifications/", headers=provider.headers)).json()["data"]
    assert all(n["opened_at"] for n in listed["notifications"][:2])
    stats = (await http.get("/api/1/profiles/notifications/stats/", headers=operator.headers)).json()["data"]
    assert stats["opened"] >= 2
    offers = stats["by_kind"]["work_assigned"]
    assert offers["created"] >= offers["sent"] >= offers["delivered"] >= offers["opened"] >= 2
    assert stats["time_to_open"]["samples"] >= 2 and stats["time_to_open"]["p50"] >= 0
    assert stats["time_to_ack"]["samples"] >= stats["time_to_open"]["samples"]
    assert stats["time_to_ack"]["p50"] <= stats["time_to_ack"]["p90"] <= stats["time_to_ack"]["p99"]
    metrics = (await http.get("/metrics")).text
    opens = 'workcast_opens_total{channel="%s",kind="work_assigned"}'
    assert opens % "socket" in metrics and opens % "http" in metrics
