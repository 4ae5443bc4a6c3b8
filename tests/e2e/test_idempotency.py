"""Idempotency-Key: a retried request gets the first answer and creates nothing, even when both copies
arrive at once on two instances."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from entrypoints.container import close
from entrypoints.settings import Settings
from tests.e2e.conftest import BASE_ENV, Admin, Server, seed_assignment, server_process
from tests.fixtures.servers import free_port


def keyed(user, key: str | bytes) -> dict:
    return user.headers | {"Idempotency-Key": key}


async def orders_of(http, user) -> list[dict]:
    r = await http.get("/api/1/profiles/work-orders/", headers=user.headers)
    return r.json()["data"]["work_orders"]


async def test_a_retry_gets_the_first_answer_and_creates_nothing(server, admin, http):
    seeker, provider = await admin.seeker(), await admin.provider()
    body = seed_assignment(provider.id)

    first = await http.post("/api/1/profiles/assign-work/", json=body, headers=keyed(seeker, "order-2026-0001"))
    again = await http.post("/api/1/profiles/assign-work/", json=body, headers=keyed(seeker, "order-2026-0001"))

    assert first.status_code == again.status_code == 201
    assert "idempotent-replayed" not in first.headers and again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert len(await orders_of(http, seeker)) == 1

    # The same key for another request is refused; another user's identical key is their own.
    other = await http.post(
        "/api/1/profiles/assign-work/",
        json=body | {"message": "something else"},
        headers=keyed(seeker, "order-2026-0001"),
    )
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    assert other.json()["field"] == "Idempotency-Key"
    someone = await admin.seeker("Someone")
    theirs = await http.post("/api/1/profiles/assign-work/", json=body, headers=keyed(someone, "order-2026-0001"))
    assert theirs.status_code == 201 and "idempotent-replayed" not in theirs.headers

    for bad in ("", "has space", "x" * 256, "ключ".encode()):
        r = await http.post("/api/1/profiles/assign-work/", json=body, headers=keyed(seeker, bad))
        assert r.status_code in (400, 422), (bad, r.status_code)
    assert len(await orders_of(http, seeker)) == 1

    # Answering and cancelling with a key: a retry gets the first answer, not 409 already_answered.
    work_id = first.json()["data"]["work_order_id"]
    answer = {"accepted": True}
    responded = [
        await http.post(
            f"/api/1/profiles/work-orders/{work_id}/respond/", json=answer, headers=keyed(provider, "answer-1")
        )
        for _ in range(2)
    ]
    assert [r.status_code for r in responded] == [200, 200] and responded[0].json() == responded[1].json()
    cancelled = [
        await http.post(f"/api/1/profiles/work-orders/{work_id}/cancel/", headers=keyed(seeker, "cancel-1"))
        for _ in range(2)
    ]
    assert [r.status_code for r in cancelled] == [200, 200] and cancelled[1].headers["idempotent-replayed"] == "true"
    without_key = await http.post(f"/api/1/profiles/work-orders/{work_id}/cancel/", headers=seeker.headers)
    assert without_key.status_code == 409


@pytest.mark.postgres
async def test_the_same_key_at_once_on_two_instances_makes_one_order(postgres_url, redis_url, tmp_path):
    env = {
        **BASE_ENV,
        "DATABASE_URL": postgres_url,
        "REDIS_URL": redis_url,
        "REDIS_KEY_PREFIX": f"idem{free_port()}",
        "JWT_SECRET": "i" * 40,
        "AUTO_MIGRATE": "false",
    }
    admin = Admin(Settings.from_env(env))
    try:
        seeker, provider = await admin.seeker(), await admin.provider()
    finally:
        await close(admin.container)
    ports = free_port(), free_port()
    with server_process(env, ports[0], tmp_path / "a.log"), server_process(env, ports[1], tmp_path / "b.log"):
        servers = [Server(f"http://127.0.0.1:{p}", f"ws://127.0.0.1:{p}", None) for p in ports]  # type: ignore[arg-type]
        async with httpx.AsyncClient(timeout=20) as http:
            for round_number in range(10):
                key = f"race-{round_number}"
                answers = await asyncio.gather(
                    *(
                        http.post(
                            f"{servers[i % 2].base_url}/api/1/profiles/assign-work/",
                            json=seed_assignment(provider.id),
                            headers=keyed(seeker, key),
                        )
                        for i in range(4)
                    )
                )
                statuses = sorted(r.status_code for r in answers)
                assert statuses.count(201) >= 1 and set(statuses) <= {201, 409}, statuses
                made = {r.json()["data"]["work_order_id"] for r in answers if r.status_code == 201}
                assert len(made) == 1, made  # replays carry the first order's id
                for r in answers:
                    if r.status_code == 409:
                        assert r.json()["code"] == "request_in_progress" and r.headers["Retry-After"] == "1"
            listed = await http.get(f"{servers[0].base_url}/api/1/profiles/work-orders/", headers=seeker.headers)
            assert len(listed.json()["data"]["work_orders"]) == 10
