"""Broadcast offers end to end: the nearest providers hear of one job, the first accept wins, the rest hear
it was taken; declines and bad requests; and 50 providers accepting at once on two instances (PostgreSQL)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from entrypoints.container import close
from entrypoints.settings import Settings
from tests.e2e.conftest import BASE_ENV, Admin, Server, User, open_socket, server_process
from tests.e2e.test_errors_and_access import error_of
from tests.fixtures.servers import free_port

# Each test offers its job in its own city: the module's server (and its providers) is shared.
MADRID = {"latitude": 40.4168, "longitude": -3.7038}
LISBON = {"latitude": 38.7223, "longitude": -9.1393}


def offer(radius_km: float = 10, job: dict = MADRID, **more) -> dict:
    return {"service_type": "plumber", "message": "Leaking sink", **job, "radius_km": radius_km, **more}


async def providers_at(admin: Admin, http: httpx.AsyncClient, job: dict, *north_km: float) -> list[User]:
    """Active providers this many km north of the job (about 111.2 km per degree of latitude)."""
    made = []
    for i, km in enumerate(north_km):
        provider = await admin.provider(f"Provider {i}")
        where = {"latitude": job["latitude"] + km / 111.2, "longitude": job["longitude"]}
        r = await http.patch(
            "/api/1/profiles/provider-status/", json={"is_active_for_work": True, **where}, headers=provider.headers
        )
        assert r.status_code == 200, r.text
        made.append(provider)
    return made


async def next_of(socket, kind: str) -> dict:
    while True:
        message = await socket.receive()
        if message["type"] == kind:
            return message


async def test_the_nearest_hear_the_first_accept_wins_and_the_others_hear_it_was_taken(admin, http, server):
    seeker = await admin.seeker()
    near, nearer, declining, far = await providers_at(admin, http, MADRID, 3.0, 1.0, 2.0, 50.0)
    async with (
        open_socket(server, "/ws/work/seeker/", seeker.token) as seeker_app,
        open_socket(server, "/ws/work/provider/", near.token) as near_app,
        open_socket(server, "/ws/work/provider/", nearer.token) as nearer_app,
        open_socket(server, "/ws/work/provider/", declining.token) as declining_app,
        open_socket(server, "/ws/work/provider/", far.token) as far_app,
    ):
        r = await http.post("/api/1/profiles/work-offers/", json=offer(radius_km=10), headers=seeker.headers)
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["status"] == "success" and body["data"]["offered_to"] == 3
        work_id = body["data"]["work_order_id"]
        assert body["data"]["status"] == "pending" and body["data"]["expires_at"].endswith("Z")
        for app in (near_app, nearer_app, declining_app):
            offered = await next_of(app, "work_assigned")
            assert offered["work_id"] == work_id and offered["offered_to"] == 3

        declined = await http.post(
            f"/api/1/profiles/work-orders/{work_id}/respond/", json={"accepted": False}, headers=declining.headers
        )
        assert declined.status_code == 200, declined.text
        assert declined.json()["data"]["status"] == "pending"  # the others may still take it

        await nearer_app.send({"type": "work_response", "work_id": work_id, "accepted": True})
        result = await next_of(nearer_app, "work_response_result")
        assert result["status"] == "accepted" and result["seeker_notified"] is True
        accepted = await next_of(seeker_app, "work_accepted")
        assert accepted["work_id"] == work_id and accepted["provider_id"] == nearer.id
        taken = await next_of(near_app, "work_taken")
        assert taken["work_id"] == work_id and taken["status"] == "accepted"

        late = await http.post(
            f"/api/1/profiles/work-orders/{work_id}/respond/", json={"accepted": True}, headers=near.headers
        )
        error_of(late, 409, "already_taken")
        await near_app.send({"type": "work_response", "work_id": work_id, "accepted": True})
        assert (await next_of(near_app, "error"))["code"] == "already_taken"
        assert await declining_app.nothing_within(0.5)  # declined: not told it was taken
        assert await far_app.nothing_within(0.2)  # outside the radius: never offered
        outsider = await http.post(
            f"/api/1/profiles/work-orders/{work_id}/respond/", json={"accepted": True}, headers=far.headers
        )
        error_of(outsider, 404, "work_order_not_found")

    order = (await http.get(f"/api/1/profiles/work-orders/{work_id}/", headers=seeker.headers)).json()["data"]
    assert order["status"] == "accepted" and order["provider_id"] == nearer.id
    # The taken offer is settled: not replayed to the provider who lost the race.
    async with open_socket(server, "/ws/work/provider/", near.token) as again:
        assert all(m.get("work_id") != work_id or m["type"] != "work_assigned" for m in again.replayed)


async def test_when_everyone_declines_the_order_expires_and_the_seeker_hears(admin, http, server):
    seeker = await admin.seeker()
    first, second = await providers_at(admin, http, LISBON, 0.5, 0.7)
    r = await http.post("/api/1/profiles/work-offers/", json=offer(1, LISBON), headers=seeker.headers)
    work_id = r.json()["data"]["work_order_id"]
    async with open_socket(server, "/ws/work/seeker/", seeker.token) as seeker_app:
        seeker_app.skip_replay()
        for provider in (first, second):
            answer = await http.post(
                f"/api/1/profiles/work-orders/{work_id}/respond/", json={"accepted": False}, headers=provider.headers
            )
            assert answer.status_code == 200, answer.text
        expired = await next_of(seeker_app, "work_expired")
        assert expired["work_id"] == work_id and expired["provider_id"] is None
    order = (await http.get(f"/api/1/profiles/work-orders/{work_id}/", headers=seeker.headers)).json()["data"]
    assert order["status"] == "expired" and order["provider_id"] is None
    again = await http.post(
        f"/api/1/profiles/work-orders/{work_id}/respond/", json={"accepted": True}, headers=first.headers
    )
    error_of(again, 409, "already_answered")


async def test_bad_offers_are_refused_naming_the_field(admin, http):
    seeker, provider = await admin.seeker(), await admin.provider()
    url = "/api/1/profiles/work-offers/"
    no_radius = {k: v for k, v in offer().items() if k != "radius_km"}
    error_of(await http.post(url, json=no_radius, headers=seeker.headers), 422, "validation_error", "radius_km")
    for field, bad in (("radius_km", 0), ("radius_km", 20_001), ("max_providers", 51), ("max_providers", 0)):
        answer = await http.post(url, json=offer(**{field: bad}), headers=seeker.headers)
        error_of(answer, 422, "validation_error", field)
    error_of(await http.post(url, json=offer(), headers=provider.headers), 403, "not_a_seeker")
    # Nobody active within 0.001 km of a point in the ocean.
    lonely = offer(radius_km=0.001) | {"latitude": -40.0, "longitude": -120.0}
    error_of(await http.post(url, json=lonely, headers=seeker.headers), 409, "no_providers_nearby")
    error_of(await http.post(url, json=offer()), 401, "not_authenticated")


@pytest.fixture
def shared_env(postgres_url, redis_url) -> dict[str, str]:
    return {
        "DATABASE_URL": postgres_url,
        "REDIS_URL": redis_url,
        "REDIS_KEY_PREFIX": f"offers{free_port()}",
        "JWT_SECRET": "o" * 40,
        "AUTO_MIGRATE": "false",
    }


async def test_fifty_providers_accept_at_once_on_two_instances_and_one_wins(shared_env, tmp_path):
    ports = free_port(), free_port()
    admin = Admin(Settings.from_env({**BASE_ENV, **shared_env}))
    try:
        with (
            server_process(shared_env, ports[0], tmp_path / "a.log"),
            server_process(shared_env, ports[1], tmp_path / "b.log"),
        ):
            a, b = (Server(f"http://127.0.0.1:{p}", f"ws://127.0.0.1:{p}", None) for p in ports)  # type: ignore[arg-type]
            # Far from every other test's providers (they share the database): the South Pole station.
            job = {"latitude": -89.99, "longitude": 139.27}
            async with (
                httpx.AsyncClient(base_url=a.base_url, timeout=30) as http_a,
                httpx.AsyncClient(base_url=b.base_url, timeout=30) as http_b,
            ):
                seeker = await admin.seeker()
                providers = []
                for i in range(50):
                    provider = await admin.provider(f"Racer {i}")
                    where = {"latitude": job["latitude"], "longitude": job["longitude"] + i * 0.5}
                    r = await http_a.patch(
                        "/api/1/profiles/provider-status/",
                        json={"is_active_for_work": True, **where},
                        headers=provider.headers,
                    )
                    assert r.status_code == 200, r.text
                    providers.append(provider)
                async with open_socket(b, "/ws/work/seeker/", seeker.token) as seeker_app:
                    seeker_app.skip_replay()
                    body = offer(50, job, max_providers=50)
                    r = await http_a.post("/api/1/profiles/work-offers/", json=body, headers=seeker.headers)
                    assert r.status_code == 201 and r.json()["data"]["offered_to"] == 50, r.text
                    work_id = r.json()["data"]["work_order_id"]
                    start = asyncio.Event()

                    async def accept(i: int, provider: User) -> httpx.Response:
                        await start.wait()
                        return await (http_a if i % 2 else http_b).post(
                            f"/api/1/profiles/work-orders/{work_id}/respond/",
                            json={"accepted": True},
                            headers=provider.headers,
                        )

                    racing = [asyncio.create_task(accept(i, p)) for i, p in enumerate(providers)]
                    await asyncio.sleep(0.1)
                    start.set()
                    answers = await asyncio.gather(*racing)
                    statuses = sorted(r.status_code for r in answers)
                    assert statuses == [200] + [409] * 49, [r.text for r in answers if r.status_code not in (200, 409)]
                    assert {r.json()["code"] for r in answers if r.status_code == 409} == {"already_taken"}
                    winner = next(p for p, r in zip(providers, answers, strict=True) if r.status_code == 200)
                    accepted = await next_of(seeker_app, "work_accepted")
                    assert accepted["provider_id"] == winner.id
                    assert await seeker_app.nothing_within(1.0)  # exactly one work_accepted
                order = (await http_a.get(f"/api/1/profiles/work-orders/{work_id}/", headers=seeker.headers)).json()
                assert order["data"]["provider_id"] == winner.id
    finally:
        await close(admin.container)
