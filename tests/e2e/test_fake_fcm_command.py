"""``workcast fake-fcm``: the seed's push scenario offline, against the command a team would run."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx

from entrypoints.container import close
from tests.e2e.conftest import Admin, notifications_when, running_server, seed_assignment
from tests.fixtures.servers import free_port
from tests.fixtures.waiting import eventually


async def test_pushes_reach_the_fake_and_chosen_tokens_fail(tmp_path):
    port = free_port()
    key = tmp_path / "key.json"
    command = ["fake-fcm", "--port", str(port), "--key-file", str(key), "--fail-token", "dead-*=UNREGISTERED"]
    fake = subprocess.Popen(  # noqa: ASYNC220 (a server for the whole test, not awaited)
        [sys.executable, "-m", "entrypoints.cli", *command],
        env={**os.environ, "WORKCAST_DATA_DIR": str(tmp_path / "unused")},
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=10) as fcm:

            async def listening() -> bool:
                try:
                    return (await fcm.get("/received")).status_code == 200
                except httpx.HTTPError:
                    return False

            await eventually(listening)
            env = {
                "WORKCAST_DATA_DIR": str(tmp_path / "data"),
                "PUSH_BACKEND": "fcm",
                "FIREBASE_CREDENTIALS_PATH": str(key),
                "FCM_BASE_URL": base,
            }
            with running_server(env) as server:
                admin = Admin(server.settings)
                try:
                    seeker, provider = await admin.seeker(), await admin.provider()
                finally:
                    await close(admin.container)
                async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
                    for token in ("live-phone", "dead-phone"):
                        r = await http.post(
                            "/api/1/profiles/fcm-token/", json={"fcm_token": token}, headers=provider.headers
                        )
                        assert r.status_code == 200
                    r = await http.post(
                        "/api/1/profiles/assign-work/", json=seed_assignment(provider.id), headers=seeker.headers
                    )
                    assert r.status_code == 201
                    (note,) = await notifications_when(http, provider, lambda found: found[0]["push_state"] == "sent")
                    assert note["push_error"] is None
            received = (await fcm.get("/received")).json()
            assert [m["token"] for m in received["messages"]] == ["live-phone"]
            assert received["messages"][0]["data"]["type"] == "work_assigned"
            assert received["accepted"] == 1
    finally:
        fake.terminate()
        _, stderr = fake.communicate(timeout=10)
    assert f"FCM_BASE_URL={base}" in stderr and str(key) in stderr


def test_an_unknown_error_name_is_refused_clearly(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "entrypoints.cli", "fake-fcm", "--port", "1", "--fail-token", "x=NOPE"],
        env={**os.environ, "WORKCAST_DATA_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "NOPE" in done.stderr and "UNREGISTERED" in done.stderr
