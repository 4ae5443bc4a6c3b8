"""PostgreSQL's own edges: a database nobody migrated, a deploy step that only migrates, text PostgreSQL refuses,
and a deleted user whose sockets are open on two instances."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from entrypoints.container import close
from entrypoints.settings import Settings
from tests.e2e.conftest import BASE_ENV, Admin, Server, open_socket, running_server, seed_assignment, server_process
from tests.e2e.test_errors_and_access import error_of
from tests.fixtures.servers import create_database, free_port
from tests.fixtures.waiting import eventually

SECRET = "p" * 40
ADMIN_KEY = "k" * 40


def workcast(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "entrypoints.cli", *args],
        env={**os.environ, **BASE_ENV, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def blank_database(postgres) -> str:
    """A database that exists but was never migrated."""
    return create_database(postgres, f"blank{free_port()}")


async def test_an_unmigrated_database_answers_503_schema_not_migrated(blank_database, caplog):
    env = {"DATABASE_URL": blank_database, "JWT_SECRET": SECRET, "AUTO_MIGRATE": "false"}
    caplog.set_level(logging.INFO)
    with running_server(env | {"DISPATCH_INTERVAL_SECONDS": "0.05"}) as server:
        from entrypoints.auth import TokenService

        token = TokenService(server.settings).issue(1)
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
            for _ in range(3):
                r = await http.get("/api/1/profiles/notifications/", headers={"Authorization": f"Bearer {token}"})
                body = error_of(r, 503, "schema_not_migrated")
                assert "workcast migrate" in body["message"] and r.headers["retry-after"]
            ready = await http.get("/ready")
            assert ready.status_code == 503 and "workcast migrate" in ready.json()["data"]["database"]
        # The dispatcher ran many rounds meanwhile; the problem was said once, with no traceback.
        await eventually(lambda: [r for r in caplog.records if "workcast migrate" in r.getMessage()])
    said = [r for r in caplog.records if "workcast migrate" in r.getMessage()]
    assert len([r for r in said if r.name == "entrypoints.dispatcher"]) == 1
    assert len([r for r in said if r.name == "entrypoints.http.errors"]) == 1
    assert not [r for r in caplog.records if r.exc_info]

    created = workcast("create-user", "--role", "seeker", "--name", "A", "--mobile", "1", env=env)
    assert created.returncode == 2 and "run `workcast migrate`" in created.stderr
    assert "Traceback" not in created.stderr and created.stdout == ""


def test_migrate_needs_only_the_database_url(blank_database):
    migrated = workcast("migrate", env={"DATABASE_URL": blank_database})
    assert migrated.returncode == 0, migrated.stderr
    created = workcast(
        "create-user", "--role", "seeker", "--name", "A", "--mobile", "1", env={"DATABASE_URL": blank_database}
    )
    assert created.returncode == 2 and "JWT_SECRET" in created.stderr  # issuing a token does need it
    created = workcast(
        "create-user",
        "--role",
        "seeker",
        "--name",
        "A",
        "--mobile",
        "1",
        env={"DATABASE_URL": blank_database, "JWT_SECRET": SECRET},
    )
    assert created.returncode == 0, created.stderr
    assert "wrote to PostgreSQL" in created.stderr and "blank" in created.stderr


@pytest.fixture
def shared_env(postgres_url, redis_url) -> dict[str, str]:
    return {
        "DATABASE_URL": postgres_url,
        "REDIS_URL": redis_url,
        "REDIS_KEY_PREFIX": f"edges{free_port()}",
        "JWT_SECRET": SECRET,
        "AUTO_MIGRATE": "false",
        "ADMIN_API_KEYS": ADMIN_KEY,
    }


@pytest.fixture
async def admin(shared_env):
    admin = Admin(Settings.from_env({**BASE_ENV, **shared_env}))
    yield admin
    await close(admin.container)


async def test_nul_in_text_is_the_same_422_as_on_sqlite(shared_env, admin):
    with running_server(shared_env) as server:
        seeker, provider = await admin.seeker(), await admin.provider()
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
            r = await http.post(
                "/api/1/profiles/fcm-token/", json={"fcm_token": "tok\u0000en"}, headers=provider.headers
            )
            error_of(r, 422, "invalid_input", "fcm_token")
            body = seed_assignment(provider.id) | {"message": "hi\u0000"}
            r = await http.post("/api/1/profiles/assign-work/", json=body, headers=seeker.headers)
            error_of(r, 422, "invalid_input", "message")


async def test_a_deleted_user_is_cut_off_on_every_instance(shared_env, admin, tmp_path):
    ports = free_port(), free_port()
    with (
        server_process(shared_env, ports[0], tmp_path / "a.log"),
        server_process(shared_env, ports[1], tmp_path / "b.log"),
    ):
        a, b = (Server(f"http://127.0.0.1:{p}", f"ws://127.0.0.1:{p}", None) for p in ports)  # type: ignore[arg-type]
        provider = await admin.provider("Leaving")
        async with (
            open_socket(a, "/ws/work/provider/", provider.token) as on_a,
            open_socket(b, "/ws/work/provider/", provider.token) as on_b,
        ):
            for app in (on_a, on_b):
                await app.send({"type": "ping"})
                assert await app.receive() == {"type": "pong"}
            async with httpx.AsyncClient(base_url=b.base_url, timeout=10) as http:  # the app's backend, on B
                r = await http.delete(
                    f"/api/1/admin/profiles/{provider.id}", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
                )
                assert r.status_code == 200, r.text
            for app in (on_a, on_b):
                with pytest.raises(ConnectionClosed) as closed:
                    await app.receive(within=60)
                assert closed.value.rcvd.code == 4401
        async with httpx.AsyncClient(base_url=a.base_url, timeout=10) as http:
            r = await http.get("/api/1/profiles/work-orders/", headers=provider.headers)
            error_of(r, 401, "unknown_user")
