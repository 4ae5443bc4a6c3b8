"""What an attacker (or a sloppy client) sends, over real HTTP and WebSocket: every answer is a clean 4xx
in the error envelope, never a 500, a dropped socket or a traceback in the log."""

from __future__ import annotations

import json
import logging

import jwt
import pytest
from sqlalchemy import text
from websockets.exceptions import ConnectionClosed

from tests.e2e.conftest import open_socket, seed_assignment
from tests.e2e.test_errors_and_access import error_of

ASSIGN = "/api/1/profiles/assign-work/"
JSON = {"content-type": "application/json"}


@pytest.fixture
def no_tracebacks(caplog):
    """A client's mistake never logs an error or a traceback (one per request would be a log-flooding vector)."""
    caplog.set_level(logging.INFO)
    yield
    noisy = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert noisy == [], [r.getMessage() for r in noisy]


# --- bodies -----------------------------------------------------------------------------------------


async def test_invalid_utf8_inside_a_json_string_is_400(admin, http, no_tracebacks):
    seeker, provider = await admin.seeker(), await admin.provider()
    for body in (
        b'{"provider_id": %d, "message": "\xff"}' % provider.id,
        b'{"provider_id": %d, "unknown": "\xc3\x28"}' % provider.id,
    ):
        error_of(await http.post(ASSIGN, content=body, headers=seeker.headers | JSON), 400, "malformed_json")


@pytest.mark.parametrize(
    "body",
    [
        "[" * 1000 + "]" * 1000,
        '{"provider_id": 1, "x": ' + "[" * 30_000 + "]" * 30_000 + "}",
        '{"a":' * 5000 + "1" + "}" * 5000,
    ],
    ids=["arrays", "inside-an-unknown-field", "objects"],
)
async def test_deeply_nested_json_is_400_and_401_without_a_token(admin, http, no_tracebacks, body):
    seeker = await admin.seeker()
    error_of(await http.post(ASSIGN, content=body, headers=seeker.headers | JSON), 400, "malformed_json")
    error_of(await http.post(ASSIGN, content=body, headers=JSON), 401, "not_authenticated")  # who first


@pytest.mark.parametrize(
    ("path", "method", "body", "field"),
    [
        ("/api/1/profiles/fcm-token/", "POST", {"fcm_token": "tok\u0000en"}, "fcm_token"),
        ("/api/1/profiles/fcm-token/", "POST", {"fcm_token": "tok", "platform": "and\u0000roid"}, "platform"),
        (ASSIGN, "POST", {"message": "hello\u0000"}, "message"),
        (ASSIGN, "POST", {"service_type": "paint\u0000"}, "service_type"),
        (ASSIGN, "POST", {"distance": "2km\u001b[2J"}, "distance"),
    ],
)
async def test_nul_and_control_characters_in_text_are_422_naming_the_field(admin, http, path, method, body, field):
    seeker, provider = await admin.seeker(), await admin.provider()
    caller = provider if "fcm-token" in path else seeker
    payload = seed_assignment(provider.id) | body if path == ASSIGN else body
    r = await http.request(method, path, json=payload, headers=caller.headers)
    error_of(r, 422, "invalid_input", field)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"provider_id": "9"}, "provider_id"),
        ({"provider_id": 9.0}, "provider_id"),
        ({"latitude": "12.3"}, "latitude"),
        ({"longitude": True}, "longitude"),
        ({"message": 5}, "message"),
    ],
)
async def test_types_are_exactly_the_documented_ones(admin, http, change, field):
    seeker, provider = await admin.seeker(), await admin.provider()
    r = await http.post(ASSIGN, json=seed_assignment(provider.id) | change, headers=seeker.headers)
    error_of(r, 422, "validation_error", field)


async def test_booleans_are_booleans_and_query_integers_are_digits(admin, http):
    seeker, provider = await admin.seeker(), await admin.provider()
    r = await http.patch("/api/1/profiles/provider-status/", json={"is_active_for_work": 1}, headers=provider.headers)
    error_of(r, 422, "validation_error", "is_active_for_work")
    for query in ("cursor=1e3", "cursor=12.0", "limit=%D9%A3", "limit=+5"):
        r = await http.get(f"/api/1/profiles/work-orders/?{query}", headers=seeker.headers)
        error_of(r, 422, "validation_error", query.split("=")[0])
    assert (await http.get("/api/1/profiles/work-orders/?cursor=1000&limit=5", headers=seeker.headers)).is_success


@pytest.mark.parametrize(
    "content_type", ["text/plain", None, "application/x-www-form-urlencoded", "application/json; charset=latin-1"]
)
async def test_json_endpoints_refuse_other_media_types_with_415(admin, http, content_type):
    seeker, provider = await admin.seeker(), await admin.provider()
    headers = seeker.headers | ({"content-type": content_type} if content_type else {})
    r = await http.post(ASSIGN, content=json.dumps(seed_assignment(provider.id)), headers=headers)
    error_of(r, 415, "unsupported_media_type")
    assert (await http.get("/api/1/profiles/work-orders/", headers=seeker.headers)).json()["data"]["count"] == 0


async def test_empty_bodies_and_duplicate_keys_are_400(admin, http):
    seeker, provider = await admin.seeker(), await admin.provider()
    body = error_of(await http.post(ASSIGN, content=b"", headers=seeker.headers | JSON), 400, "malformed_json")
    assert "empty" in body["message"]
    twice = b'{"provider_id": %d, "provider_id": %d, "service_type": "x", "latitude": 1, "longitude": 2}' % (
        10**9,
        provider.id,
    )
    error_of(
        await http.post(ASSIGN, content=twice, headers=seeker.headers | JSON), 400, "malformed_json", "provider_id"
    )


async def test_malformed_json_without_a_token_is_401(http):
    error_of(await http.post(ASSIGN, content=b"{oops", headers=JSON), 401, "not_authenticated")


@pytest.mark.parametrize("raw_id", ["%EF%BC%99", "%D9%A3", "9_0", "+9", "09", "%209"])
async def test_path_ids_are_ascii_digits_only(admin, http, raw_id):
    seeker, provider = await admin.seeker(), await admin.provider()
    for _ in range(9):  # order 9 (and 90) exist, so a lenient parser would act on them
        await http.post(ASSIGN, json=seed_assignment(provider.id), headers=seeker.headers)
    r = await http.post(f"/api/1/profiles/work-orders/{raw_id}/cancel/", headers=seeker.headers)
    assert r.status_code == 404, r.text
    error_of(r, 404, r.json()["code"])
    assert all(
        o["status"] == "pending"
        for o in (await http.get("/api/1/profiles/work-orders/?limit=100", headers=seeker.headers)).json()["data"][
            "work_orders"
        ]
    )


async def test_head_health_is_200(http):
    r = await http.head("/health")
    assert r.status_code == 200 and r.content == b""


# --- tokens and users -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "code"),
    [
        ("\u00b2", "not_authenticated"),  # digits of other scripts are never a numeric id
        ("\u0661", "not_authenticated"),
        ("\uff11", "not_authenticated"),
        ("01", "not_authenticated"),
        ("1" * 19, "not_authenticated"),
        ("+1", "unknown_user"),  # not digits: an external id, compared exactly, that nobody has
        (" 1", "unknown_user"),
    ],
)
async def test_only_ascii_digit_subjects_are_user_ids(admin, http, no_tracebacks, subject, code):
    await admin.seeker()  # user 1 exists
    token = jwt.encode({"sub": subject, "exp": 4102444800}, admin.container.settings().jwt_secret, algorithm="HS256")
    r = await http.get("/api/1/profiles/work-orders/", headers={"Authorization": f"Bearer {token}"})
    error_of(r, 401, code)


UNKNOWN_USER_CALLS = [
    ("POST", "/api/1/profiles/fcm-token/", {"fcm_token": "abc"}),
    ("POST", ASSIGN, seed_assignment(1)),
    ("GET", "/api/1/profiles/work-orders/", None),
    ("PATCH", "/api/1/profiles/provider-status/", {"is_active_for_work": True}),
    ("GET", "/api/1/profiles/active-providers/", None),
    ("GET", "/api/1/profiles/active-providers/?latitude=1&longitude=2", None),
    ("POST", "/api/1/profiles/work-orders/1/respond/", {"accepted": True}),
    ("POST", "/api/1/profiles/work-orders/1/cancel/", None),
    ("GET", "/api/1/profiles/notifications/", None),
    ("GET", "/api/1/profiles/notifications/stats/", None),
    ("POST", "/api/1/profiles/notifications/1/ack/", None),
]


async def test_a_valid_token_of_an_unknown_user_is_401_everywhere(admin, http):
    stranger = admin.container.tokens().issue(10**12)
    for method, path, body in UNKNOWN_USER_CALLS:
        r = await http.request(method, path, json=body, headers={"Authorization": f"Bearer {stranger}"})
        assert r.status_code == 401 and r.json()["code"] == "unknown_user", (method, path, r.text)


async def test_a_deleted_users_open_socket_is_closed_4401(server, admin):
    provider = await admin.provider("Soon Gone")
    async with open_socket(server, "/ws/work/provider/", provider.token) as app:
        await app.send({"type": "ping"})
        assert await app.receive() == {"type": "pong"}
        async with admin.container.engine().begin() as connection:
            await connection.execute(text("DELETE FROM profiles WHERE id = :id"), {"id": provider.id})
        with pytest.raises(ConnectionClosed) as closed:
            await app.receive(within=30)
        assert closed.value.rcvd.code == 4401


# --- sockets ----------------------------------------------------------------------------------------


async def test_hostile_socket_frames_get_errors_and_the_socket_stays_open(server, admin, no_tracebacks):
    provider = await admin.provider()
    async with open_socket(server, "/ws/work/provider/", provider.token) as app:
        for raw, code, field in [
            ('{"type": "ack", "notification_id": 9223372036854775808}', "validation_error", "notification_id"),
            (
                '{"type": "work_response", "work_id": 9223372036854775808, "accepted": true}',
                "validation_error",
                "work_id",
            ),
            ('{"type": "work_response", "work_id": 0, "accepted": true}', "validation_error", "work_id"),
            ('{"type": "work_response", "work_id": 1, "accepted": 1}', "validation_error", "accepted"),
            ('{"type": 5}', "validation_error", "type"),
            ('{"type": "ping", "x": ' + "[" * 7000 + "]" * 7000 + "}", "malformed_json", None),
            ('{"type": "ping", "x": ' + '{"a":' * 2500 + "1" + "}" * 2500 + "}", "malformed_json", None),
            ("[" * 5000 + "]" * 5000, "validation_error", None),
        ]:
            await app.send(raw)
            reply = await app.receive()
            assert reply["type"] == "error" and reply["code"] == code and reply["field"] == field, (raw[:80], reply)
        await app.connection.send(b'{"type": "ping", "x": "\xff"}')  # a binary frame that is not UTF-8
        assert (await app.receive())["type"] in ("error", "pong")
        await app.send({"type": "ping"})
        assert await app.receive() == {"type": "pong"}
