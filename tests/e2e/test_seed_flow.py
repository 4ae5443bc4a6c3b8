"""The seed's three scenarios, end to end over HTTP and WebSocket against a running server."""

from __future__ import annotations

import re

from tests.e2e.conftest import notifications_when, open_socket, seed_assignment

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


async def test_complete_assignment_flow(server, admin, http):
    seeker, provider = await admin.seeker(), await admin.provider(active=False)
    for user in (seeker, provider):
        r = await http.post("/api/1/profiles/fcm-token/", json={"fcm_token": f"token-{user.id}"}, headers=user.headers)
        assert r.status_code == 200
        assert r.json() == {
            "status": "success",
            "message": "FCM token updated successfully",
            "data": r.json()["data"] | {"user_id": str(user.id), "user_type": user.role.value, "fcm_token_set": True},
        }
    r = await http.patch(
        "/api/1/profiles/provider-status/", json={"is_active_for_work": True}, headers=provider.headers
    )
    assert r.status_code == 200 and r.json()["data"]["is_active_for_work"] is True

    async with (
        open_socket(server, "/ws/work/provider/", provider.token) as provider_app,
        open_socket(server, "/ws/work/seeker/", headers=seeker.headers) as seeker_app,
    ):
        for app in (provider_app, seeker_app):
            await app.send({"type": "ping"})
            assert await app.receive() == {"type": "pong"}  # connected and subscribed

        r = await http.post("/api/1/profiles/assign-work/", json=seed_assignment(provider.id), headers=seeker.headers)

        assert r.status_code == 201
        body = r.json()
        assert body["status"] == "success" and body["message"] == "Work assigned successfully"
        data = body["data"]
        assert {
            k: data[k] for k in ("provider_name", "provider_mobile", "service_type", "fcm_sent", "websocket_sent")
        } == {
            "provider_name": "John Doe",
            "provider_mobile": "9876543210",
            "service_type": "worker",
            "fcm_sent": True,
            "websocket_sent": True,
        }
        assert isinstance(data["work_order_id"], int) and ISO_UTC.match(data["created_at"])

        offer = await provider_app.receive()
        assert offer["type"] == "work_assigned" and offer["work_id"] == data["work_order_id"]
        assert offer["message"] == "Need help with painting work" and offer["distance"] == "2.5km"

        await provider_app.send({"type": "work_response", "work_id": offer["work_id"], "accepted": True})
        outcome = await provider_app.receive()
        assert outcome["type"] == "work_response_result" and outcome["status"] == "accepted"
        assert outcome["seeker_notified"] is True

        answer = await seeker_app.receive()
        assert answer["type"] == "work_accepted" and answer["work_id"] == offer["work_id"]
        assert answer["provider_name"] == "John Doe"

    orders = (await http.get("/api/1/profiles/work-orders/", headers=seeker.headers)).json()["data"]["work_orders"]
    assert [(o["id"], o["status"]) for o in orders] == [(data["work_order_id"], "accepted")]


async def test_socket_still_delivers_when_push_cannot(server, admin, http):
    """Scenario 2 in its simplest form: no device at all, the socket carries the job."""
    seeker, provider = await admin.seeker(), await admin.provider()
    async with open_socket(server, "/ws/work/provider/", provider.token) as provider_app:
        await provider_app.send({"type": "ping"})
        await provider_app.receive()
        r = await http.post("/api/1/profiles/assign-work/", json=seed_assignment(provider.id), headers=seeker.headers)
        assert (r.json()["data"]["fcm_sent"], r.json()["data"]["websocket_sent"]) == (False, True)
        assert (await provider_app.receive())["type"] == "work_assigned"


async def test_offline_provider_sees_job_after_reconnect(server, admin, http):
    seeker, provider = await admin.seeker(), await admin.provider()
    await http.post("/api/1/profiles/fcm-token/", json={"fcm_token": f"phone-{provider.id}"}, headers=provider.headers)

    r = await http.post("/api/1/profiles/assign-work/", json=seed_assignment(provider.id), headers=seeker.headers)
    assert (r.json()["data"]["fcm_sent"], r.json()["data"]["websocket_sent"]) == (True, False)
    work_id = r.json()["data"]["work_order_id"]

    async with open_socket(server, "/ws/work/provider/", provider.token) as provider_app:
        replayed = await provider_app.receive()
        assert replayed["type"] == "work_assigned" and replayed["work_id"] == work_id
        await provider_app.send({"type": "ack", "notification_id": replayed["notification_id"]})
        assert await provider_app.receive() == {"type": "acked", "notification_id": replayed["notification_id"]}

    (note,) = await notifications_when(http, provider, lambda found: found[0]["push_state"] != "pending")
    assert note["delivery_status"] == "delivered" and note["socket_state"] == "sent" and note["push_state"] == "sent"

    async with open_socket(server, "/ws/work/provider/", provider.token) as provider_app:
        assert await provider_app.nothing_within(0.5)  # acknowledged: not replayed again
