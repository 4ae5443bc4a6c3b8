"""Pushes through the real firebase-admin SDK to the fake FCM server, end to end through the API."""

from __future__ import annotations

import asyncio
import os
import signal

import httpx
import pytest

from adapters.sqlalchemy.migrate import upgrade_async
from entrypoints.container import close, database_settings
from entrypoints.settings import Settings
from tests.e2e.conftest import (
    BASE_ENV,
    Admin,
    notifications_when,
    open_socket,
    running_server,
    seed_assignment,
    server_process,
)
from tests.fakes.fcm import fake_fcm_server
from tests.fixtures.servers import free_port
from tests.fixtures.waiting import eventually


@pytest.fixture(scope="module")
def fcm():
    with fake_fcm_server() as fake:
        yield fake


def fcm_env(fcm, tmp_path) -> dict[str, str]:
    return {
        "WORKCAST_DATA_DIR": str(tmp_path),
        "PUSH_BACKEND": "fcm",
        "FIREBASE_CREDENTIALS_PATH": str(fcm.service_account(tmp_path)),
        "FCM_BASE_URL": fcm.base_url,
        "JWT_SECRET": "j" * 40,
    }


@pytest.fixture(scope="module")
def fcm_server(fcm, tmp_path_factory):
    with running_server(fcm_env(fcm, tmp_path_factory.mktemp("fcm-server"))) as server:
        yield server


@pytest.fixture
async def admin(fcm_server):
    admin = Admin(fcm_server.settings)
    yield admin
    await close(admin.container)


async def until(condition, within: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def test_invalid_token_push_fails_socket_delivers_and_the_token_is_invalidated(fcm, fcm_server, admin):
    """The seed's scenario 2."""
    seeker, provider = await admin.seeker(), await admin.provider()
    fcm.fail("dead-token", "UNREGISTERED")
    async with (
        httpx.AsyncClient(base_url=fcm_server.base_url) as http,
        open_socket(fcm_server, "/ws/work/provider/", provider.token) as app,
    ):
        await http.post("/api/1/profiles/fcm-token/", json={"fcm_token": "dead-token"}, headers=provider.headers)
        await app.send({"type": "ping"})
        await app.receive()

        r = await http.post("/api/1/profiles/assign-work/", json=seed_assignment(provider.id), headers=seeker.headers)

        assert (r.json()["data"]["fcm_sent"], r.json()["data"]["websocket_sent"]) == (False, True)
        assert (await app.receive())["type"] == "work_assigned"
        (note,) = await notifications_when(http, provider, lambda found: found[0]["push_state"] != "pending")
        assert note["push_state"] == "failed" and "UNREGISTERED" in note["push_error"]
        assert note["delivery_status"] == "sent" and note["next_attempt_at"] is None

        # The dead token is not used again: the next job is not pushed to it at all.
        asked_before = len(fcm.requests)
        r = await http.post("/api/1/profiles/assign-work/", json=seed_assignment(provider.id), headers=seeker.headers)
        assert r.json()["data"]["fcm_sent"] is False and len(fcm.requests) == asked_before


async def test_a_working_token_gets_the_job_offer(fcm, fcm_server, admin):
    seeker, provider = await admin.seeker(), await admin.provider()
    async with httpx.AsyncClient(base_url=fcm_server.base_url) as http:
        await http.post(
            "/api/1/profiles/fcm-token/", json={"fcm_token": f"phone-{provider.id}"}, headers=provider.headers
        )
        await http.post("/api/1/profiles/fcm-token/", json={"fid": f"fid-{provider.id}"}, headers=provider.headers)
        r = await http.post("/api/1/profiles/assign-work/", json=seed_assignment(provider.id), headers=seeker.headers)
    assert r.json()["data"]["fcm_sent"] is True
    (by_token,), (by_fid,) = fcm.messages_to(f"phone-{provider.id}"), fcm.messages_to(f"fid-{provider.id}")
    for message in (by_token, by_fid):
        assert message["data"]["type"] == "work_assigned"
        assert message["data"]["work_id"] == str(r.json()["data"]["work_order_id"])
        assert message["notification"]["title"] == "New worker job"
        assert message["android"]["priority"] == "high"
        # Localizable: the app renders its own strings from these keys and arguments (docs/flutter.md).
        android, alert = message["android"]["notification"], message["apns"]["payload"]["aps"]["alert"]
        assert android["title_loc_key"] == alert["title-loc-key"] == "work_assigned_title"
        assert android["body_loc_key"] == alert["loc-key"] == "work_assigned_body"
        args = ["worker", "Sam Seeker", "Need help with painting work", "2.5km"]
        assert android["title_loc_args"] == android["body_loc_args"] == alert["loc-args"] == args
        assert alert["title"] == "New worker job"  # the fallback text stays


async def test_a_passing_outage_is_retried_by_the_dispatcher(fcm, fcm_server, admin):
    seeker, provider = await admin.seeker(), await admin.provider()
    token = f"flaky-{provider.id}"
    fcm.fail(token, "UNAVAILABLE", retry_after=1)
    async with httpx.AsyncClient(base_url=fcm_server.base_url) as http:
        await http.post("/api/1/profiles/fcm-token/", json={"fcm_token": token}, headers=provider.headers)
        r = await http.post("/api/1/profiles/assign-work/", json=seed_assignment(provider.id), headers=seeker.headers)
        assert r.json()["data"]["fcm_sent"] is False
        fcm.failures.pop(token)
        await until(lambda: fcm.messages_to(token))
        await asyncio.sleep(0.3)
        (note,) = (await http.get("/api/1/profiles/notifications/", headers=provider.headers)).json()["data"][
            "notifications"
        ]
    assert note["push_state"] == "sent" and note["attempts"] == 2


async def test_a_crash_after_commit_loses_nothing(fcm, tmp_path):
    """SIGKILL the server while the push is in flight; the restarted server delivers push and socket."""
    env = {
        **fcm_env(fcm, tmp_path),
        "DELIVERY_REQUEST_BUDGET_MS": "300",
        "DELIVERY_PUSH_TIMEOUT_SECONDS": "1",
        "DELIVERY_LEASE_SECONDS": "2",
    }
    port = free_port()
    settings = Settings.from_env({**BASE_ENV, **env})
    await upgrade_async(database_settings(settings).url)
    admin = Admin(settings)
    try:
        seeker, provider = await admin.seeker(), await admin.provider()
    finally:
        await close(admin.container)
    base = f"http://127.0.0.1:{port}"
    token = "phone-that-waits"
    fcm.hang.add(token)
    try:
        with server_process(env, port, tmp_path / "first.log") as first:
            async with httpx.AsyncClient(base_url=base) as http:
                await http.post("/api/1/profiles/fcm-token/", json={"fcm_token": token}, headers=provider.headers)
                r = await http.post(
                    "/api/1/profiles/assign-work/", json=seed_assignment(provider.id), headers=seeker.headers
                )
            assert r.status_code == 201 and r.json()["data"]["fcm_sent"] is False
            work_id = r.json()["data"]["work_order_id"]
            await until(lambda: any(q["body"]["message"].get("token") == token for q in fcm.requests))
            abandoned = fcm.abandoned
            os.kill(first.pid, signal.SIGKILL)  # committed, push in flight, nothing recorded as sent
            first.wait(5)
            # The fake must see the killed client go before the hang is lifted, or it would answer (and count
            # as delivered) a request nobody is waiting for.
            await until(lambda: fcm.abandoned > abandoned, within=30)
    finally:
        fcm.hang.discard(token)
    await asyncio.sleep(0.2)
    assert fcm.messages_to(token) == []

    with server_process(env, port, tmp_path / "second.log"):
        await until(lambda: fcm.messages_to(token), within=15)
        (pushed,) = fcm.messages_to(token)
        assert pushed["data"]["work_id"] == str(work_id)
        from tests.e2e.conftest import Server

        server = Server(base, base.replace("http", "ws"), None)  # type: ignore[arg-type]
        async with open_socket(server, "/ws/work/provider/", provider.token) as app:
            offer = await app.receive()
            assert offer["type"] == "work_assigned" and offer["work_id"] == work_id


async def test_push_policy_fallback_pushes_only_what_no_app_acknowledged(fcm, tmp_path):
    env = fcm_env(fcm, tmp_path) | {"PUSH_POLICY": "fallback", "PUSH_FALLBACK_MS": "800"}
    with running_server(env) as server:
        admin = Admin(server.settings)
        try:
            seeker, on_screen, ignoring = await admin.seeker(), await admin.provider(), await admin.provider()
        finally:
            await close(admin.container)
        async with httpx.AsyncClient(base_url=server.base_url, timeout=20) as http:
            for provider in (on_screen, ignoring):
                token = f"fallback-{provider.id}"
                await http.post("/api/1/profiles/fcm-token/", json={"fcm_token": token}, headers=provider.headers)
            async with (
                open_socket(server, "/ws/work/provider/", on_screen.token) as app,
                open_socket(server, "/ws/work/provider/", ignoring.token) as other,
            ):
                for provider, socket in ((on_screen, app), (ignoring, other)):
                    r = await http.post(
                        "/api/1/profiles/assign-work/", json=seed_assignment(provider.id), headers=seeker.headers
                    )
                    assert (r.json()["data"]["websocket_sent"], r.json()["data"]["fcm_sent"]) == (True, False)
                    offer = await socket.receive()
                    if provider is on_screen:
                        await socket.send({"type": "ack", "notification_id": offer["notification_id"]})
                        assert (await socket.receive())["type"] == "acked"
                # The one that did not ack gets its push once the wait is over; the other never does.
                await until(lambda: fcm.messages_to(f"fallback-{ignoring.id}"), within=20)
                await asyncio.sleep(1.0)
                assert fcm.messages_to(f"fallback-{on_screen.id}") == []


async def test_a_crash_during_the_fallback_wait_loses_no_push(fcm, tmp_path):
    """PUSH_POLICY=fallback: the socket took the offer, the push waits for an ack that never comes, and the
    server is SIGKILLed during the wait: the restarted server sends the push."""
    env = {
        **fcm_env(fcm, tmp_path),
        "PUSH_POLICY": "fallback",
        "PUSH_FALLBACK_MS": "1500",
        "DELIVERY_LEASE_SECONDS": "3",
        "DELIVERY_PUSH_TIMEOUT_SECONDS": "2",
    }
    port = free_port()
    settings = Settings.from_env({**BASE_ENV, **env})
    await upgrade_async(database_settings(settings).url)
    admin = Admin(settings)
    try:
        seeker, provider = await admin.seeker(), await admin.provider()
    finally:
        await close(admin.container)
    base = f"http://127.0.0.1:{port}"
    token = f"waiting-for-an-ack-{provider.id}"
    from tests.e2e.conftest import Server

    server = Server(base, base.replace("http", "ws"), None)  # type: ignore[arg-type]
    with server_process(env, port, tmp_path / "first.log") as first:
        async with httpx.AsyncClient(base_url=base) as http:
            await http.post("/api/1/profiles/fcm-token/", json={"fcm_token": token}, headers=provider.headers)
            async with open_socket(server, "/ws/work/provider/", provider.token) as app:
                r = await http.post(
                    "/api/1/profiles/assign-work/", json=seed_assignment(provider.id), headers=seeker.headers
                )
                assert (r.json()["data"]["websocket_sent"], r.json()["data"]["fcm_sent"]) == (True, False)
                assert (await app.receive())["type"] == "work_assigned"
                os.kill(first.pid, signal.SIGKILL)  # during the wait: no ack, no push yet
                first.wait(5)
    assert fcm.messages_to(token) == []

    with server_process(env, port, tmp_path / "second.log"):
        await until(lambda: fcm.messages_to(token), within=20)
        (pushed,) = fcm.messages_to(token)
        assert pushed["data"]["work_id"] == str(r.json()["data"]["work_order_id"])


def window_around_now() -> dict[str, str]:
    """Quiet hours in UTC from an hour ago to an hour ahead (spanning midnight when it must)."""
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    return {
        "start": (now - timedelta(hours=1)).strftime("%H:%M"),
        "end": (now + timedelta(hours=1)).strftime("%H:%M"),
        "timezone": "Etc/UTC",
    }


async def test_preferences_quiet_hours_go_silent_turned_off_kinds_are_not_pushed_offers_always_ring(
    fcm, fcm_server, admin
):
    seeker, provider = await admin.seeker(), await admin.provider()
    prefs = "/api/1/profiles/notification-preferences/"
    async with httpx.AsyncClient(base_url=fcm_server.base_url) as http:
        for user in (seeker, provider):
            await http.post("/api/1/profiles/fcm-token/", json={"fcm_token": f"pref-{user.id}"}, headers=user.headers)
        defaults = (await http.get(prefs, headers=provider.headers)).json()["data"]
        assert defaults["quiet_hours"] is None and all(defaults["push"].values())
        quiet = window_around_now()
        # The provider is in quiet hours and turned work_cancelled off; the seeker is in quiet hours.
        r = await http.put(
            prefs, json={"quiet_hours": quiet, "push": {"work_cancelled": False}}, headers=provider.headers
        )
        assert r.status_code == 200, r.text
        assert r.json()["data"]["push"]["work_cancelled"] is False and r.json()["data"]["quiet_hours"] == quiet
        await http.put(prefs, json={"quiet_hours": quiet}, headers=seeker.headers)

        # A job offer to an active provider is critical: pushed loud despite the quiet hours.
        r = await http.post("/api/1/profiles/assign-work/", json=seed_assignment(provider.id), headers=seeker.headers)
        work_id = r.json()["data"]["work_order_id"]
        await until(lambda: fcm.messages_to(f"pref-{provider.id}"))
        (offer,) = fcm.messages_to(f"pref-{provider.id}")
        assert offer["notification"]["title"] == "New worker job" and offer["android"]["priority"] == "high"

        # The seeker's work_accepted, in the seeker's quiet hours: silent (data only / content-available).
        await http.post(
            f"/api/1/profiles/work-orders/{work_id}/respond/", json={"accepted": True}, headers=provider.headers
        )
        await until(lambda: fcm.messages_to(f"pref-{seeker.id}"))
        (accepted,) = fcm.messages_to(f"pref-{seeker.id}")
        assert accepted["data"]["type"] == "work_accepted"
        assert "notification" not in accepted and "notification" not in accepted["android"]
        assert accepted["apns"]["payload"]["aps"] == {"content-available": 1}
        assert accepted["apns"]["headers"]["apns-push-type"] == "background"

        # work_cancelled is off for the provider: no push, recorded as such; the socket and history still have it.
        await http.post(f"/api/1/profiles/work-orders/{work_id}/cancel/", headers=seeker.headers)
        found = await notifications_when(http, provider, lambda f: f[0]["type"] == "work_cancelled")
        assert found[0]["push_state"] == "skipped" and found[0]["push_error"] == "turned_off_by_user"
        assert len(fcm.messages_to(f"pref-{provider.id}")) == 1


async def test_bad_preferences_are_refused_naming_the_field(fcm_server, admin):
    from tests.e2e.test_errors_and_access import error_of

    user = await admin.seeker()
    url = "/api/1/profiles/notification-preferences/"
    good = {"start": "22:00", "end": "07:00", "timezone": "Europe/Madrid"}
    async with httpx.AsyncClient(base_url=fcm_server.base_url) as http:
        for body, field in (
            ({"push": {"work_nonsense": False}}, "push.work_nonsense"),
            ({"quiet_hours": good | {"start": "25:00"}}, "quiet_hours.start"),
            ({"quiet_hours": good | {"end": "7pm"}}, "quiet_hours.end"),
            ({"quiet_hours": good | {"end": "22:00"}}, "quiet_hours.end"),
            ({"quiet_hours": good | {"timezone": "Mars/Olympus"}}, "quiet_hours.timezone"),
            ({"quiet_hours": good | {"timezone": "../../etc/passwd"}}, "quiet_hours.timezone"),
            ({"push": {"work_assigned": "no"}}, "push.work_assigned"),
        ):
            r = await http.put(url, json=body, headers=user.headers)
            error_of(r, 422, r.json().get("code", ""), field)
        error_of(await http.put(url, json={}), 401, "not_authenticated")
        assert (await http.get(url, headers=user.headers)).json()["data"]["quiet_hours"] is None  # nothing saved


async def test_the_funnel_by_platform_counts_what_fcm_accepted(fcm, fcm_server, admin):
    from domain.profiles import Role

    seeker, provider = await admin.seeker(), await admin.provider()
    operator = await admin.user(Role.OPERATOR, "Olga Operator")
    async with httpx.AsyncClient(base_url=fcm_server.base_url) as http:
        device = {"fcm_token": f"iphone-{provider.id}", "platform": "ios"}
        await http.post("/api/1/profiles/fcm-token/", json=device, headers=provider.headers)
        r = await http.post("/api/1/profiles/assign-work/", json=seed_assignment(provider.id), headers=seeker.headers)
        assert r.json()["data"]["fcm_sent"] is True
        opened = await http.post(
            f"/api/1/profiles/notifications/{r.json()['data']['notification_id']}/opened/", headers=provider.headers
        )
        assert opened.status_code == 200

        async def stats_with_the_ios_push():
            # The push attempts are recorded behind the request (in batches), so they show up shortly after.
            answer = await http.get(
                "/api/1/profiles/notifications/stats/", params={"hours": 1}, headers=operator.headers
            )
            data = answer.json()["data"]
            return data if "ios" in data["by_platform"] else None

        stats = await eventually(stats_with_the_ios_push)
    ios = stats["by_platform"]["ios"]
    assert ios["pushed"] >= ios["delivered"] >= ios["opened"] >= 1
    offers = stats["by_kind"]["work_assigned"]
    assert offers["created"] >= offers["sent"] >= offers["pushed"] >= 1 and offers["on_socket"] >= 0
