"""assign-work's fast path (entrypoints.http.fast_assign) answers exactly as the Litestar route does.

Every request is sent twice: as it is, and with a query string, which the fast path never takes (so Litestar
answers). Both answers must be the same, whichever path served the first; and the fast path must really serve
the plain valid ones (its counters say so), or this test would compare Litestar with itself.
"""

from __future__ import annotations

import httpx
import pytest

from entrypoints.container import close
from tests.e2e.conftest import Admin, running_server, seed_assignment

VARYING = ("work_order_id", "notification_id", "created_at", "expires_at")  # differ between two orders


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    env = {"WORKCAST_DATA_DIR": str(tmp_path_factory.mktemp("fast-assign")), "RATE_LIMIT_ASSIGN": "3/0.001"}
    with running_server(env) as running:
        yield running


def comparable(response: httpx.Response) -> tuple:
    body = response.json()
    if isinstance(body.get("data"), dict):
        body["data"] = {k: ("..." if k in VARYING else v) for k, v in body["data"].items()}
    headers = {k: v for k, v in response.headers.items() if k in ("content-type", "retry-after")}
    return response.status_code, headers, body


async def both_ways(http, body=None, headers=None, content=None) -> tuple[tuple, tuple]:
    path = "/api/1/profiles/assign-work/"
    plain = await http.post(path, json=body, content=content, headers=headers)
    routed = await http.post(f"{path}?via=litestar", json=body, content=content, headers=headers)
    return comparable(plain), comparable(routed)


async def test_the_fast_path_answers_as_the_route_does(server, admin, http):
    fast = server.app.fast_assign
    seeker, provider, resting = await admin.seeker(), await admin.provider(), await admin.provider("Off", active=False)
    served = fast.served
    plain, routed = await both_ways(http, seed_assignment(provider.id), seeker.headers)
    assert plain == routed and plain[0] == 201 and plain[2]["data"]["provider_name"] == "John Doe"
    assert fast.served == served + 1

    answered_by_the_use_case = {
        "unknown provider": (seed_assignment(2**62), seeker.headers),
        "resting provider": (seed_assignment(resting.id), seeker.headers),
        "a provider assigning": (seed_assignment(provider.id), provider.headers),
        "blank service type": (seed_assignment(provider.id) | {"service_type": "   "}, seeker.headers),
    }
    for what, (body, headers) in answered_by_the_use_case.items():
        plain, routed = await both_ways(http, body, headers)
        assert plain == routed and plain[0] in (403, 409, 422), what
        assert plain[2]["status"] == "error" and plain[2]["code"], what
    assert fast.served == served + 1 + len(answered_by_the_use_case)

    json_headers = seeker.headers | {"Content-Type": "application/json"}
    handed_on = {
        "no token": ({}, seed_assignment(provider.id), None),
        "a forged token": ({"Authorization": "Bearer x.y.z"}, seed_assignment(provider.id), None),
        "malformed JSON": (json_headers, None, b'{"provider_id": 1,'),
        "a key twice": (json_headers, None, b'{"provider_id": 1, "provider_id": 2}'),
        "a string id": (seeker.headers, seed_assignment(provider.id) | {"provider_id": str(provider.id)}, None),
        "latitude 91": (seeker.headers, seed_assignment(provider.id) | {"latitude": 91}, None),
        "nested deep": (json_headers, None, b'{"a":' * 5000 + b"1" + b"}" * 5000),
        "invalid UTF-8": (json_headers, None, b'{"service_type": "\xff"}'),
        "text/plain": (seeker.headers | {"Content-Type": "text/plain"}, None, b"{}"),
        "too big": (json_headers, None, b'{"message": "' + b"x" * 70_000 + b'"}'),
    }
    for what, (headers, body, content) in handed_on.items():
        plain, routed = await both_ways(http, body, headers, content)
        assert plain == routed and 400 <= plain[0] < 500, what
    assert fast.served == served + 1 + len(answered_by_the_use_case)


async def test_a_request_refused_by_the_fast_path_costs_one_token_as_before(limited):
    admin = Admin(limited.settings)
    try:
        seeker, provider = await admin.seeker(), await admin.provider()
    finally:
        await close(admin.container)
    async with httpx.AsyncClient(base_url=limited.base_url, timeout=10) as http:
        path = "/api/1/profiles/assign-work/"
        bad = await http.post(path, json=seed_assignment(provider.id) | {"latitude": "north"}, headers=seeker.headers)
        assert bad.status_code == 422  # Litestar answered, and took the one token it always took
        for _ in range(2):
            assert (await http.post(path, json=seed_assignment(provider.id), headers=seeker.headers)).status_code == 201
        limited_answer = await http.post(path, json=seed_assignment(provider.id), headers=seeker.headers)
        assert limited_answer.status_code == 429 and int(limited_answer.headers["retry-after"]) >= 1
        assert limited_answer.json()["code"] == "rate_limited"
    assert limited.app.fast_assign.served == 2
