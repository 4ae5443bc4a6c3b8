"""What operators get: an order's timeline over the admin API and the ops console in a real browser,
on the embedded store and on PostgreSQL, with pushes through the real SDK to the fake FCM."""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path

import httpx
import pytest
from playwright.async_api import async_playwright, expect

from entrypoints.container import close
from entrypoints.settings import Settings
from tests.e2e.conftest import BASE_ENV, Admin, notifications_when, open_socket, running_server, seed_assignment
from tests.fakes.fcm import fake_fcm_server
from tests.fixtures.servers import create_database, free_port
from tests.fixtures.waiting import eventually

ADMIN_KEY = "ops-console-key-" + "k" * 24
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Set to a folder to keep screenshots of the console's main pages (docs/operating.md).
SCREENSHOTS = os.environ.get("CONSOLE_SCREENSHOTS_DIR")


@pytest.fixture(scope="module")
def fcm():
    with fake_fcm_server() as fake:
        yield fake


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def ops_server(request, fcm, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp(f"ops-{request.param}")
    env = {
        "WORKCAST_DATA_DIR": str(data_dir),
        "PUSH_BACKEND": "fcm",
        "FIREBASE_CREDENTIALS_PATH": str(fcm.service_account(data_dir)),
        "FCM_BASE_URL": fcm.base_url,
        "JWT_SECRET": "j" * 40,
        "ADMIN_API_KEYS": ADMIN_KEY,
        "INSTANCE_NAME": f"ops-{request.param}",
    }
    if request.param == "postgres":
        env["DATABASE_URL"] = create_database(request.getfixturevalue("postgres"), f"ops{free_port()}")
        env["AUTO_MIGRATE"] = "true"
    with running_server(env) as server:
        yield server


@pytest.fixture
async def admin(ops_server):
    admin = Admin(Settings.from_env({**BASE_ENV, **_env_of(ops_server)}))
    yield admin
    await close(admin.container)


def _env_of(server) -> dict[str, str]:
    s = server.settings
    env = {"WORKCAST_DATA_DIR": str(s.data_dir), "JWT_SECRET": s.jwt_secret or ""}
    if s.database_url:
        env["DATABASE_URL"] = s.database_url
    return env


async def _failed_offer(http, fcm, admin) -> tuple[int, int, object]:
    """An offer whose push found only a dead token and whose provider had no socket: it ends failed."""
    seeker, provider = await admin.seeker(), await admin.provider()
    dead = f"dead-{provider.id}-{free_port()}"
    fcm.fail(dead, "UNREGISTERED")
    await http.post("/api/1/profiles/fcm-token/", json={"fcm_token": dead}, headers=provider.headers)
    r = await http.post("/api/1/profiles/assign-work/", json=seed_assignment(provider.id), headers=seeker.headers)
    work_id = r.json()["data"]["work_order_id"]
    (note,) = await notifications_when(http, provider, lambda found: found and found[0]["delivery_status"] == "failed")
    assert note["delivery_status"] == "failed", note
    return work_id, note["id"], provider


async def test_the_timeline_shows_every_attempt_per_channel_and_device(ops_server, fcm, admin):
    seeker, provider = await admin.seeker(), await admin.provider()
    good, dead = f"good-{provider.id}-{free_port()}", f"gone-{provider.id}-{free_port()}"
    fcm.fail(dead, "UNREGISTERED")
    key = {"Authorization": f"Bearer {ADMIN_KEY}"}
    async with httpx.AsyncClient(base_url=ops_server.base_url, timeout=20) as http:
        for token in (good, dead):
            await http.post("/api/1/profiles/fcm-token/", json={"fcm_token": token}, headers=provider.headers)
        r = await http.post("/api/1/profiles/assign-work/", json=seed_assignment(provider.id), headers=seeker.headers)
        work_id = r.json()["data"]["work_order_id"]
        await notifications_when(http, provider, lambda found: found[0]["push_state"] == "sent")
        await http.post(
            f"/api/1/profiles/work-orders/{work_id}/respond/", json={"accepted": True}, headers=provider.headers
        )
        await notifications_when(http, seeker, lambda found: found and found[0]["push_state"] != "pending")

        r = await http.get(f"/api/1/admin/work-orders/{work_id}/timeline", headers=key)

        assert r.status_code == 200, r.text
        data = r.json()["data"]
        assert data["order"]["id"] == work_id and data["order"]["status"] == "accepted"
        offer = data["notifications"][0]
        assert offer["notification"]["type"] == "work_assigned" and offer["recipient_id"] == provider.id
        push = {a["outcome"]: a for a in offer["attempts"] if a["channel"] == "push"}
        assert push["sent"]["detail"].startswith("projects/") and push["sent"]["device_id"]
        assert push["invalid_device"]["detail"].startswith("UNREGISTERED")
        assert push["sent"]["device_id"] != push["invalid_device"]["device_id"]
        assert {a["instance"] for a in offer["attempts"]} == {ops_server.settings.instance_name}
        assert all(a["duration_ms"] >= 0 for a in offer["attempts"])
        events = [e["event"] for e in data["events"]]
        assert events[:2] == ["order_created", "notification_created"]
        assert "answered" in events and events.count("attempt") >= 4  # offer: socket + 2 devices; answer: socket
        assert [e["at"] for e in data["events"]] == sorted(e["at"] for e in data["events"])

        # Who may ask: the admin key or an operator; anything else is refused, missing orders are 404.
        assert (await http.get(f"/api/1/admin/work-orders/{work_id}/timeline")).status_code == 401
        as_seeker = await http.get(f"/api/1/admin/work-orders/{work_id}/timeline", headers=seeker.headers)
        assert as_seeker.status_code == 403
        for missing in (work_id + 1000, 2**63 - 1):
            r = await http.get(f"/api/1/admin/work-orders/{missing}/timeline", headers=key)
            assert r.status_code == 404 and r.json()["status"] == "error"
        for hostile in ("abc", str(2**64), "-1", "%EF%BC%91"):
            r = await http.get(f"/api/1/admin/work-orders/{hostile}/timeline", headers=key)
            assert 400 <= r.status_code < 500, (hostile, r.status_code)


async def test_an_operator_signs_in_reads_a_timeline_and_retries_a_failed_notification(
    ops_server, fcm, admin, tmp_path
):
    store = "postgres" if ops_server.settings.database_url else "sqlite"
    shots = Path(SCREENSHOTS) / store if SCREENSHOTS else None
    if shots:
        shots.mkdir(parents=True, exist_ok=True)
    async with httpx.AsyncClient(base_url=ops_server.base_url, timeout=20) as http:
        work_id, notification_id, provider = await _failed_offer(http, fcm, admin)
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM)
            try:
                page = await browser.new_page(viewport={"width": 1280, "height": 900})
                await page.goto(f"{ops_server.base_url}/console/")
                await expect(page).to_have_url(re.compile(r"/console/login$"))
                if shots:
                    await page.screenshot(path=shots / "1-sign-in.png", full_page=True)

                await page.fill("#token", "not-a-key")
                await page.click("button[type=submit]")
                await expect(page.get_by_role("alert")).to_contain_text("not an admin API key")

                await page.fill("#token", ADMIN_KEY)
                await page.click("button[type=submit]")
                await expect(page.get_by_role("heading", name="Overview")).to_be_visible()
                (cookie,) = [c for c in await page.context.cookies() if c["name"] == "workcast_console"]
                assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and ADMIN_KEY not in cookie["value"]
                failed_before = int(await page.get_by_test_id("funnel-failed").inner_text())
                sent_before = int(await page.get_by_test_id("funnel-sent").inner_text())
                assert failed_before >= 1
                if shots:
                    await page.screenshot(path=shots / "2-overview.png", full_page=True)

                await page.fill("header input[name=q]", str(work_id))
                await page.press("header input[name=q]", "Enter")
                await page.click(f"a[href='/console/orders/{work_id}']")
                await expect(page.get_by_test_id(f"status-{notification_id}")).to_have_text("failed")
                timeline = page.get_by_test_id("timeline")
                await expect(timeline).to_contain_text("invalid_device")
                await expect(timeline).to_contain_text("UNREGISTERED")
                await expect(timeline).to_contain_text("not_connected")

                # The provider installs the app again; the operator retries the offer.
                await http.post(
                    "/api/1/profiles/fcm-token/", json={"fcm_token": f"new-{provider.id}"}, headers=provider.headers
                )
                await page.get_by_test_id(f"retry-{notification_id}").click()
                await expect(page.get_by_test_id(f"status-{notification_id}")).to_have_text("sent")
                await expect(timeline).to_contain_text("projects/")
                assert fcm.messages_to(f"new-{provider.id}")
                if shots:
                    await page.screenshot(path=shots / "3-order-timeline.png", full_page=True)

                await page.click("a[href='/console/']")
                await expect(page.get_by_test_id("funnel-failed")).to_have_text(str(failed_before - 1))
                await expect(page.get_by_test_id("funnel-sent")).to_have_text(str(sent_before + 1))

                await page.goto(f"{ops_server.base_url}/console/users/{provider.id}")
                await expect(page.get_by_test_id("availability")).to_have_text("on duty")
                if shots:
                    await page.screenshot(path=shots / "4-user.png", full_page=True)
                await page.get_by_role("button", name="Take off duty").click()
                await expect(page.get_by_test_id("availability")).to_have_text("off duty")
            finally:
                await browser.close()


async def test_console_actions_need_the_session_csrf_token_and_a_same_site_origin(ops_server, fcm, admin):
    async with httpx.AsyncClient(base_url=ops_server.base_url, timeout=20) as http:
        _, notification_id, _ = await _failed_offer(http, fcm, admin)
        signed_in = await http.post("/console/login", data={"token": ADMIN_KEY})
        assert signed_in.status_code == 303 and "workcast_console" in http.cookies
        retry = f"/console/notifications/{notification_id}/retry"

        assert (await http.post(retry, data={})).status_code == 403
        assert (await http.post(retry, data={"csrf": "forged"})).status_code == 403
        page = (await http.get("/console/")).text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        cross_site = await http.post(retry, data={"csrf": csrf}, headers={"Origin": "https://evil.example"})
        assert cross_site.status_code == 403

        # Hostile ids answer a page, never a 500.
        for path in ("/console/orders/abc", f"/console/orders/{2**64}", "/console/users/-1", "/console/orders/99999"):
            r = await http.get(path)
            assert r.status_code == 404 and "text/html" in r.headers["content-type"], path
        r = await http.get("/console/orders", params={"q": "user:nobody-like-this"})
        assert r.status_code == 404

        http.cookies.clear()
        http.cookies.set("workcast_console", "e30.AAAA")
        assert (await http.get("/console/")).status_code == 303


async def test_secrets_stay_out_of_the_logs_and_delivery_lines_carry_the_request_id(ops_server, fcm, admin, caplog):
    caplog.set_level(logging.DEBUG)
    seeker, provider = await admin.seeker(), await admin.provider()
    fcm_token = f"secret-fcm-token-{provider.id}-{free_port()}"
    fcm.fail(fcm_token, "UNREGISTERED")
    async with httpx.AsyncClient(base_url=ops_server.base_url, timeout=20) as http:
        await http.post("/api/1/profiles/fcm-token/", json={"fcm_token": fcm_token}, headers=provider.headers)
        r = await http.post(
            "/api/1/profiles/assign-work/",
            json=seed_assignment(provider.id),
            headers=seeker.headers | {"X-Request-ID": "assign-77"},
        )
        await notifications_when(http, provider, lambda found: found[0]["push_state"] == "failed")
        await http.get(f"/api/1/admin/work-orders/{r.json()['data']['work_order_id']}/timeline", headers=_key())
        await http.get("/api/1/admin/work-orders/1/timeline", headers={"X-API-Key": ADMIN_KEY})
        await http.post("/console/login", data={"token": ADMIN_KEY})
        await http.post("/console/login", data={"token": provider.token})
        await http.get("/metrics", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
        async with open_socket(ops_server, "/ws/work/provider/", provider.token):
            pass

    async def logged() -> bool:
        return any(r.getMessage() == "socket session" for r in caplog.records)

    await eventually(logged)
    (not_delivered,) = [r for r in caplog.records if r.getMessage() == "push not delivered"]
    assert not_delivered.request_id == "assign-77" and "UNREGISTERED" in not_delivered.reason
    (session,) = [r for r in caplog.records if r.getMessage() == "socket session"]
    assert (session.route, session.status, session.user_id) == ("/ws/work/provider/", 1000, provider.id)
    everything = " ".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    for secret in (ADMIN_KEY, fcm_token, provider.token, seeker.token):
        assert secret not in everything


def _key() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_KEY}"}
