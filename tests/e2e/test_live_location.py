"""Live location over the provider's socket: positions reach the nearby search without an HTTP request each,
bad ones are refused naming the field while the socket stays open, and seekers have no location to send."""

from __future__ import annotations

from tests.e2e.conftest import open_socket
from tests.fixtures.waiting import eventually

SEVILLE = {"latitude": 37.3891, "longitude": -5.9845}


async def test_a_position_sent_on_the_socket_is_found_by_a_nearby_search(admin, http, server):
    seeker, provider = await admin.seeker(), await admin.provider("Moving")
    near_seville = {**SEVILLE, "radius_km": 1, "limit": 5}

    async def found() -> list[int]:
        r = await http.get("/api/1/profiles/active-providers/", params=near_seville, headers=seeker.headers)
        assert r.status_code == 200, r.text
        return [p["id"] for p in r.json()["data"]["providers"]]

    assert provider.id not in await found()
    async with open_socket(server, "/ws/work/provider/", provider.token) as app:
        for step in range(5):  # an app on the move: only the newest position counts
            await app.send(
                {
                    "type": "location",
                    "latitude": SEVILLE["latitude"] + 0.001 * (5 - step),
                    "longitude": SEVILLE["longitude"],
                }
            )
        await app.send({"type": "location", **SEVILLE})
        await eventually(lambda: found_includes(found, provider.id), within=20)
        assert await app.nothing_within(0.3)  # taken silently
        await app.send({"type": "location", "latitude": 0.5, "longitude": 0.5})  # moves far away
        await eventually(lambda: found_excludes(found, provider.id), within=20)


async def found_includes(found, provider_id: int) -> bool:
    return provider_id in await found()


async def found_excludes(found, provider_id: int) -> bool:
    return provider_id not in await found()


async def test_bad_positions_are_refused_naming_the_field_and_the_socket_stays_open(admin, server):
    seeker, provider = await admin.seeker(), await admin.provider()
    async with open_socket(server, "/ws/work/provider/", provider.token) as app:
        app.skip_replay()
        for bad, field in (
            ('{"type": "location", "latitude": 91, "longitude": 0}', "latitude"),
            ('{"type": "location", "latitude": 0, "longitude": -180.5}', "longitude"),
            ('{"type": "location", "latitude": 1e999, "longitude": 0}', "latitude"),
            ('{"type": "location", "latitude": "north", "longitude": 0}', "latitude"),
            ('{"type": "location", "longitude": 0}', "latitude"),
        ):
            await app.send(bad)
            error = await app.receive()
            assert error["type"] == "error" and error["field"] == field, (bad, error)
            assert error["request_type"] == "location"
        await app.send({"type": "ping"})
        assert (await app.receive())["type"] == "pong"
    async with open_socket(server, "/ws/work/seeker/", seeker.token) as seeker_app:
        seeker_app.skip_replay()
        await seeker_app.send({"type": "location", **SEVILLE})
        error = await seeker_app.receive()
        assert error["type"] == "error" and error["code"] == "not_a_provider"
