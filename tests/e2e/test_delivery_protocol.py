"""What the app sees over real sockets: no ghost offers, a replay that tells the truth, acks that stop
retries, and a frozen app that cannot hold up a healthy one."""

from __future__ import annotations

import asyncio
import logging
import socket
from datetime import UTC, datetime, timedelta

import httpx
from websockets.asyncio.client import connect

from application.messages import iso_utc
from domain.geo import GeoPoint
from domain.notifications import Notification, NotificationKind
from domain.work_orders import WorkOrder, WorkStatus
from entrypoints.container import close
from tests.e2e.conftest import Admin, notifications_when, open_socket, running_server, seed_assignment
from tests.fixtures.waiting import eventually

ASSIGN = "/api/1/profiles/assign-work/"


async def test_a_provider_who_answers_without_ack_never_sees_the_offer_again(server, admin, http):
    seeker, provider = await admin.seeker(), await admin.provider()
    rest_order = (await http.post(ASSIGN, json=seed_assignment(provider.id), headers=seeker.headers)).json()["data"]
    socket_order = (await http.post(ASSIGN, json=seed_assignment(provider.id), headers=seeker.headers)).json()["data"]
    async with open_socket(server, "/ws/work/provider/", provider.token) as app:
        assert [m["work_id"] for m in app.replayed] == [socket_order["work_order_id"], rest_order["work_order_id"]]
        app.skip_replay()
        await app.send({"type": "work_response", "work_id": socket_order["work_order_id"], "accepted": True})
        assert (await app.receive())["type"] == "work_response_result"
    r = await http.post(
        f"/api/1/profiles/work-orders/{rest_order['work_order_id']}/respond/",
        json={"accepted": False},
        headers=provider.headers,
    )
    assert r.status_code == 200
    async with open_socket(server, "/ws/work/provider/", provider.token) as app:
        assert app.replayed == []  # no ghost offers: both were answered, neither acknowledged by 'ack'
        assert app.replay_complete == {"type": "replay_complete", "count": 0, "truncated": False}
    notes = await notifications_when(http, provider, lambda found: len(found) == 2)
    assert all(n["delivery_status"] == "delivered" for n in notes)


async def test_replay_after_a_flood_shows_the_newest_live_offer_first(server, admin, http):
    spammer, seeker, provider = await admin.seeker("Spammer"), await admin.seeker(), await admin.provider()
    now = datetime.now(UTC)
    async with admin.container.unit_of_work() as uow:  # 2,000 spam offers, written straight to the store
        for i in range(2000):
            created = now - timedelta(seconds=2000 - i)
            order = await uow.work_orders.add(
                WorkOrder(
                    spammer.id,
                    provider.id,
                    "spam",
                    "buy now",
                    "1km",
                    GeoPoint(1, 2),
                    WorkStatus.PENDING,
                    created,
                    created + timedelta(hours=1),
                )
            )
            offer = {
                "work_id": order.id,
                "service_type": "spam",
                "status": "pending",
                "seeker_id": spammer.id,
                "seeker_name": "Spammer",
                "seeker_mobile": "9",
                "message": "buy now",
                "distance": "1km",
                "latitude": 1.0,
                "longitude": 2.0,
                "created_at": iso_utc(created),
                "expires_at": iso_utc(created + timedelta(hours=1)),
            }
            await uow.notifications.add_many(
                [Notification(provider.id, NotificationKind.WORK_ASSIGNED, order.id, offer, created)]
            )
        await uow.commit()
    real = (await http.post(ASSIGN, json=seed_assignment(provider.id), headers=seeker.headers)).json()["data"]
    cancelled = (await http.post(ASSIGN, json=seed_assignment(provider.id), headers=seeker.headers)).json()["data"]
    await http.post(f"/api/1/profiles/work-orders/{cancelled['work_order_id']}/cancel/", headers=seeker.headers)

    async with open_socket(server, "/ws/work/provider/", provider.token) as app:
        # The cancellation notice is not an offer; the cancelled offer itself is not replayed as one.
        offers = [m for m in app.replayed if m["type"] == "work_assigned"]
        assert offers[0]["work_id"] == real["work_order_id"] and offers[0]["seeker_name"] == "Sam Seeker"
        assert cancelled["work_order_id"] not in [m["work_id"] for m in offers]
        notice = [m for m in app.replayed if m["type"] == "work_cancelled"]
        assert [m["work_id"] for m in notice] == [cancelled["work_order_id"]] and notice[0]["status"] == "cancelled"
        assert app.replay_complete == {"type": "replay_complete", "count": 100, "truncated": True}
        assert app.replayed[:2] == offers[:2]  # actionable first


async def test_a_frozen_app_is_closed_and_the_healthy_one_gets_everything_once(tmp_path, caplog):
    """Two apps of one provider: one never reads (a frozen phone), one reads and acks everything."""
    env = {
        "WORKCAST_DATA_DIR": str(tmp_path),
        "SOCKET_SEND_TIMEOUT_SECONDS": "10",  # generous for the healthy app on a busy machine
        "SOCKET_SEND_QUEUE": "4",  # the frozen app is given up once 4 writes wait for it
        "WS_PING_INTERVAL_SECONDS": "600",  # the frozen app must be given up for not draining, not for pings
    }
    caplog.set_level(logging.WARNING, logger="entrypoints.http.sockets")
    with running_server(env) as server:
        admin = Admin(server.settings)
        try:
            seeker, provider = await admin.seeker(), await admin.provider()
            url = f"{server.ws_url}/ws/work/provider/?token={provider.token}"
            # A small receive buffer, and max_queue=1: once a message waits unread, this client stops
            # reading from the network at all, so the server's writes back up as behind a frozen phone.
            frozen_sock = socket.socket()
            frozen_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            frozen_sock.connect(("127.0.0.1", int(server.base_url.rsplit(":", 1)[1])))
            async with (
                connect(url, sock=frozen_sock, max_queue=1),
                open_socket(server, "/ws/work/provider/", provider.token) as healthy,
            ):
                seen: dict[int, int] = {}

                async def read_and_ack() -> None:
                    while True:
                        message = await healthy.receive(within=120)
                        if message["type"] == "work_assigned":
                            seen[message["notification_id"]] = seen.get(message["notification_id"], 0) + 1
                            await healthy.send({"type": "ack", "notification_id": message["notification_id"]})

                def given_up() -> bool:
                    return any("too slow" in r.getMessage() for r in caplog.records)

                reader = asyncio.create_task(read_and_ack())
                try:
                    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
                        body = seed_assignment(provider.id) | {"message": "m" * 1900}  # fill the buffers quickly
                        posted = []
                        while not given_up():
                            assert len(posted) < 3000, "the frozen socket was never given up"
                            r = await http.post(ASSIGN, json=body, headers=seeker.headers)
                            assert r.status_code == 201 and r.json()["data"]["websocket_sent"] is True
                            posted.append(r.json()["data"]["notification_id"])
                        print(f"frozen socket given up after {len(posted)} offers")
                        for _ in range(20):  # after it was given up, the healthy app is served as before
                            r = await http.post(ASSIGN, json=body, headers=seeker.headers)
                            assert r.json()["data"]["websocket_sent"] is True
                            posted.append(r.json()["data"]["notification_id"])
                        await eventually(lambda: set(posted) <= set(seen), within=60)
                        notes = await notifications_when(
                            http,
                            provider,
                            lambda found: all(n["delivery_status"] == "delivered" for n in found),
                            within=60,
                        )
                        assert all(n["socket_state"] == "sent" for n in notes), "a message the app got is not sent"
                        await asyncio.sleep(2)  # dispatcher rounds (0.2 s apart): nothing acknowledged goes again
                        assert all(count == 1 for count in seen.values()), "an acknowledged message was sent again"
                finally:
                    reader.cancel()
        finally:
            await close(admin.container)
