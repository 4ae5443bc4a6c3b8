"""Every error class over real HTTP and WebSocket: bad input, bad tokens, wrong roles, other people's things."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import jwt
import pytest
from websockets.exceptions import ConnectionClosed

from tests.e2e.conftest import open_socket, seed_assignment


def error_of(response, status: int, code: str, field: str | None = None) -> dict:
    body = response.json()
    assert response.status_code == status, body
    assert body["status"] == "error" and body["code"] == code and body["data"] is None, body
    assert body["message"]
    if field is not None:
        assert body["field"] == field, body
    return body


# --- bad input ------------------------------------------------------------------------------------


async def test_malformed_json_is_400(admin, http):
    seeker = await admin.seeker()
    r = await http.post(
        "/api/1/profiles/assign-work/",
        content=b"{not json",
        headers=seeker.headers | {"content-type": "application/json"},
    )
    error_of(r, 400, "malformed_json")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"provider_id": None}, "provider_id"),
        ({"provider_id": "two"}, "provider_id"),
        ({"latitude": 91}, "latitude"),
        ({"longitude": -180.5}, "longitude"),
        ({"service_type": ""}, "service_type"),
        ({"service_type": "x" * 65}, "service_type"),
        ({"message": "m" * 2001}, "message"),
        ({"distance": "d" * 33}, "distance"),
    ],
)
async def test_invalid_fields_are_422_naming_the_field(admin, http, change, field):
    seeker, provider = await admin.seeker(), await admin.provider()
    body = {k: v for k, v in (seed_assignment(provider.id) | change).items() if v is not None}
    r = await http.post("/api/1/profiles/assign-work/", json=body, headers=seeker.headers)
    error_of(r, 422, "validation_error", field)
    orders = await http.get("/api/1/profiles/work-orders/", headers=seeker.headers)
    assert orders.json()["data"]["work_orders"] == []  # nothing half-written


async def test_unknown_and_unavailable_providers(admin, http):
    seeker, resting = await admin.seeker(), await admin.provider(active=False)
    r = await http.post("/api/1/profiles/assign-work/", json=seed_assignment(10**9), headers=seeker.headers)
    error_of(r, 422, "unknown_provider", "provider_id")
    r = await http.post("/api/1/profiles/assign-work/", json=seed_assignment(resting.id), headers=seeker.headers)
    error_of(r, 409, "provider_unavailable", "provider_id")
    r = await http.post("/api/1/profiles/assign-work/", json=seed_assignment(seeker.id), headers=seeker.headers)
    error_of(r, 409, "provider_unavailable")


async def test_query_and_location_pairs_are_checked(admin, http):
    seeker, provider = await admin.seeker(), await admin.provider()
    r = await http.get("/api/1/profiles/active-providers/?latitude=12", headers=seeker.headers)
    error_of(r, 422, "invalid_input", "longitude")
    r = await http.get("/api/1/profiles/active-providers/?radius_km=5", headers=seeker.headers)
    error_of(r, 422, "invalid_input", "radius_km")
    r = await http.get("/api/1/profiles/work-orders/?limit=1000", headers=seeker.headers)
    error_of(r, 422, "validation_error", "limit")
    r = await http.get("/api/1/profiles/work-orders/?status=bogus", headers=seeker.headers)
    error_of(r, 422, "validation_error", "status")
    r = await http.patch(
        "/api/1/profiles/provider-status/", json={"is_active_for_work": True, "latitude": 1}, headers=provider.headers
    )
    error_of(r, 422, "invalid_input", "longitude")
    r = await http.post("/api/1/profiles/fcm-token/", json={}, headers=provider.headers)
    error_of(r, 422, "invalid_input", "fcm_token")


async def test_unknown_paths_and_methods(admin, http):
    seeker = await admin.seeker()
    error_of(await http.get("/api/1/profiles/nothing/", headers=seeker.headers), 404, "not_found")
    error_of(await http.get("/api/1/profiles/assign-work/", headers=seeker.headers), 405, "method_not_allowed")
    r = await http.post("/api/1/profiles/work-orders/999999/cancel/", headers=seeker.headers)
    error_of(r, 404, "work_order_not_found")
    for path in ("/ws/work/provider/", "/ws/work/seeker"):
        error_of(await http.get(path, headers=seeker.headers), 426, "websocket_only")


async def test_paths_answer_with_and_without_the_trailing_slash(admin, http):
    seeker = await admin.seeker()
    assert (await http.get("/api/1/profiles/work-orders/", headers=seeker.headers)).status_code == 200
    assert (await http.get("/api/1/profiles/work-orders", headers=seeker.headers)).status_code == 200


# --- tokens ---------------------------------------------------------------------------------------


def forged(claims: dict) -> str:
    header = base64.urlsafe_b64encode(json.dumps({"alg": "none", "typ": "JWT"}).encode()).rstrip(b"=").decode()
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{payload}."


async def bad_tokens(admin) -> dict[str, str]:
    seeker = await admin.seeker()
    tokens = admin.container.tokens()
    good = seeker.token
    header, payload, signature = good.split(".")
    return {
        "expired": tokens.issue(seeker.id, ttl=timedelta(seconds=-60)),
        "tampered": f"{header}.{payload}.{signature[:-4]}AAAA",
        "alg none": forged({"sub": str(seeker.id), "exp": 4102444800}),
        "other secret": jwt.encode({"sub": str(seeker.id), "exp": 4102444800}, "x" * 40, algorithm="HS256"),
        "no exp": jwt.encode({"sub": str(seeker.id)}, admin.container.settings().jwt_secret, algorithm="HS256"),
        "unknown user": tokens.issue(10**12),
        "garbage": "not-a-token",
    }


async def test_requests_without_a_valid_token_are_401(admin, http):
    r = await http.get("/api/1/profiles/work-orders/")
    error_of(r, 401, "not_authenticated")
    assert r.headers["www-authenticate"] == "Bearer"
    for name, token in (await bad_tokens(admin)).items():
        r = await http.get("/api/1/profiles/work-orders/", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401, name
        assert r.json()["code"] in ("not_authenticated", "unknown_user"), name


async def test_sockets_close_4401_on_bad_tokens_and_4403_on_the_wrong_path(server, admin):
    for name, token in (await bad_tokens(admin)).items():
        async with open_socket(server, "/ws/work/provider/", token) as app:
            with pytest.raises(ConnectionClosed) as closed:
                await app.receive()
            assert closed.value.rcvd.code == 4401, name
    async with open_socket(server, "/ws/work/provider/") as app:
        with pytest.raises(ConnectionClosed) as closed:
            await app.receive()
        assert closed.value.rcvd.code == 4401
    seeker, provider = await admin.seeker(), await admin.provider()
    for path, user in (("/ws/work/provider/", seeker), ("/ws/work/seeker/", provider)):
        async with open_socket(server, path, headers=user.headers) as app:
            with pytest.raises(ConnectionClosed) as closed:
                await app.receive()
            assert closed.value.rcvd.code == 4403


# --- roles and ownership ---------------------------------------------------------------------------


async def test_roles_are_enforced(admin, http):
    seeker, provider = await admin.seeker(), await admin.provider()
    r = await http.post("/api/1/profiles/assign-work/", json=seed_assignment(provider.id), headers=provider.headers)
    error_of(r, 403, "not_a_seeker")
    r = await http.patch("/api/1/profiles/provider-status/", json={"is_active_for_work": True}, headers=seeker.headers)
    error_of(r, 403, "not_a_provider")
    created = await http.post("/api/1/profiles/assign-work/", json=seed_assignment(provider.id), headers=seeker.headers)
    work_id = created.json()["data"]["work_order_id"]
    r = await http.post(
        f"/api/1/profiles/work-orders/{work_id}/respond/", json={"accepted": True}, headers=seeker.headers
    )
    error_of(r, 403, "not_a_provider")


async def test_other_peoples_orders_and_notifications_are_out_of_reach(admin, http):
    alice, mallory = await admin.seeker("Alice"), await admin.seeker("Mallory")
    provider, other_provider = await admin.provider(), await admin.provider("Other")
    created = await http.post("/api/1/profiles/assign-work/", json=seed_assignment(provider.id), headers=alice.headers)
    work_id, notification_id = created.json()["data"]["work_order_id"], created.json()["data"]["notification_id"]

    assert (await http.get("/api/1/profiles/work-orders/", headers=mallory.headers)).json()["data"]["count"] == 0
    # One order: its parties read it; anyone else gets exactly what a missing id gets.
    mine = await http.get(f"/api/1/profiles/work-orders/{work_id}/", headers=alice.headers)
    assert mine.status_code == 200 and mine.json()["data"]["id"] == work_id
    assert (await http.get(f"/api/1/profiles/work-orders/{work_id}/", headers=provider.headers)).status_code == 200
    not_mine = await http.get(f"/api/1/profiles/work-orders/{work_id}/", headers=mallory.headers)
    missing = await http.get(f"/api/1/profiles/work-orders/{10**15}/", headers=mallory.headers)
    error_of(not_mine, 404, "work_order_not_found")
    assert not_mine.json()["message"].replace(str(work_id), "ID") == missing.json()["message"].replace(
        str(10**15), "ID"
    )
    theirs = await http.get("/api/1/profiles/work-orders/", headers=other_provider.headers)
    assert theirs.json()["data"]["count"] == 0
    error_of(
        await http.post(f"/api/1/profiles/work-orders/{work_id}/cancel/", headers=mallory.headers),
        404,
        "work_order_not_found",
    )
    # Another provider's order answers exactly like an id that does not exist (no existence oracle).
    theirs = await http.post(
        f"/api/1/profiles/work-orders/{work_id}/respond/", json={"accepted": True}, headers=other_provider.headers
    )
    missing = await http.post(
        f"/api/1/profiles/work-orders/{10**15}/respond/", json={"accepted": True}, headers=other_provider.headers
    )
    error_of(theirs, 404, "work_order_not_found")
    assert theirs.json() | {"message": None} == missing.json() | {"message": None}
    assert theirs.json()["message"].replace(str(work_id), "ID") == missing.json()["message"].replace(str(10**15), "ID")
    r = await http.post(f"/api/1/profiles/notifications/{notification_id}/ack/", headers=mallory.headers)
    error_of(r, 404, "notification_not_found")
    assert (await http.get("/api/1/profiles/notifications/", headers=mallory.headers)).json()["data"]["count"] == 0

    # The right people can: the provider answers once, the second answer is a conflict.
    r = await http.post(
        f"/api/1/profiles/work-orders/{work_id}/respond/", json={"accepted": False}, headers=provider.headers
    )
    assert r.status_code == 200 and r.json()["data"]["status"] == "rejected"
    r = await http.post(
        f"/api/1/profiles/work-orders/{work_id}/respond/", json={"accepted": True}, headers=provider.headers
    )
    error_of(r, 409, "already_answered")
    error_of(
        await http.post(f"/api/1/profiles/work-orders/{work_id}/cancel/", headers=alice.headers),
        409,
        "invalid_transition",
    )


async def test_socket_messages_get_typed_errors_and_the_socket_stays_up(server, admin, http):
    seeker, provider = await admin.seeker(), await admin.provider()
    created = await http.post("/api/1/profiles/assign-work/", json=seed_assignment(provider.id), headers=seeker.headers)
    work_id = created.json()["data"]["work_order_id"]
    async with open_socket(server, "/ws/work/seeker/", seeker.token) as seeker_app:
        await seeker_app.send({"type": "work_response", "work_id": work_id, "accepted": True})
        assert (await seeker_app.receive())["code"] == "not_a_provider"
    async with open_socket(server, "/ws/work/provider/", provider.token) as app:
        assert (await app.receive())["type"] == "work_assigned"  # replayed
        for raw, code in [
            ("{oops", "malformed_json"),
            ('{"type": "dance"}', "unknown_type"),
            ('{"type": "work_response", "work_id": "x", "accepted": true}', "validation_error"),
            ('{"type": "ack", "notification_id": 999999}', "notification_not_found"),
        ]:
            await app.send(raw)
            reply = await app.receive()
            assert reply["type"] == "error" and reply["code"] == code, reply
        await app.send({"type": "work_response", "work_id": work_id, "accepted": True})
        assert (await app.receive())["status"] == "accepted"
        await app.send({"type": "work_response", "work_id": work_id, "accepted": False})
        reply = await app.receive()
        assert reply["type"] == "error" and reply["code"] == "already_answered"
        await app.send({"type": "ping"})
        assert await app.receive() == {"type": "pong"}
