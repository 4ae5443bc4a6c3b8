"""Pushes per second of ``FcmPushSender`` (the real firebase-admin SDK) against the fake FCM server,
and of a plain aiohttp client posting the same requests to the same fake in the same run: the client
side's physical limit here, so the ratio says what the SDK path costs.

The fake runs in its own process so that it does not share this process's CPU and GIL.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import jwt
from tests.fixtures.servers import free_port

from adapters.fcm.sender import FcmPushSender, load_credentials
from application.ports import PushMessage, PushSent
from domain.devices import AddressKind, DeviceToken


async def measure(pushes: int, per_call: int, transport: str = "aiohttp") -> dict:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    key = Path(tempfile.mkdtemp()) / "key.json"
    fake = subprocess.Popen(  # noqa: ASYNC220
        [
            sys.executable,
            "-m",
            "entrypoints.cli",
            "fake-fcm",
            "--port",
            str(port),
            "--keep",
            "0",
            "--key-file",
            str(key),
        ],
        stderr=subprocess.DEVNULL,
    )
    try:
        async with httpx.AsyncClient() as probe:
            for _ in range(200):
                try:
                    await probe.post(f"{base}/nothing", timeout=0.2)
                    break
                except httpx.HTTPError:
                    await asyncio.sleep(0.05)
        for _ in range(200):  # the key file is written just before the server listens
            if key.exists():
                break
            await asyncio.sleep(0.05)
        sender = FcmPushSender(load_credentials(key, "bench"), base, transport=transport)
        now = datetime.now(UTC)
        devices = [
            DeviceToken(1, f"token-{i}", AddressKind.REGISTRATION_TOKEN, "android", now, id=i) for i in range(per_call)
        ]
        message = PushMessage(
            "New worker job", "Need help", {"type": "work_assigned", "work_id": "1"}, timedelta(minutes=5)
        )
        await sender.send(message, devices[:1])  # token fetch and connection set-up are not what we measure
        sent = 0
        began = time.perf_counter()
        while sent < pushes:
            results = await sender.send(message, devices)
            sent += sum(isinstance(r, PushSent) for r in results)
        elapsed = time.perf_counter() - began
        await sender.aclose()
        plain = await plain_aiohttp(base, json.loads(key.read_text()), pushes, per_call)
        return {
            "transport": transport,
            "pushes": sent,
            "per_call": per_call,
            "seconds": round(elapsed, 2),
            "pushes_per_second": round(sent / elapsed, 1),
            "plain_aiohttp_pushes_per_second": plain,
            "ratio_to_plain_aiohttp": round(sent / elapsed / plain, 3),
        }
    finally:
        fake.terminate()
        fake.wait(10)


async def plain_aiohttp(base: str, account: dict, pushes: int, concurrency: int) -> float:
    """The same v1 send requests (same body shape, a bearer token from the fake) from bare aiohttp."""
    import aiohttp

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as http:
        assertion = jwt.encode(
            {
                "iss": account["client_email"],
                "aud": account["token_uri"],
                "scope": "https://www.googleapis.com/auth/firebase.messaging",
                "iat": int(time.time()),
                "exp": int(time.time()) + 3600,
            },
            account["private_key"],
            algorithm="RS256",
        )
        grant = {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion}
        async with http.post(account["token_uri"], data=grant) as r:
            token = (await r.json())["access_token"]
        url = f"{base}/v1/projects/{account['project_id']}/messages:send"
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

        def body(i: int) -> bytes:
            message = {
                "token": f"token-{i}",
                "notification": {"title": "New worker job", "body": "Need help"},
                "data": {"type": "work_assigned", "work_id": "1"},
                "android": {"priority": "high", "ttl": "300s", "notification": {"channel_id": "work"}},
                "apns": {"headers": {"apns-priority": "10"}, "payload": {"aps": {"sound": "default"}}},
            }
            return json.dumps({"message": message}).encode()

        async def post(i: int) -> None:
            async with http.post(url, data=body(i), headers=headers) as r:
                await r.read()
                assert r.status == 200, r.status

        await post(0)
        began = time.perf_counter()
        for start in range(0, pushes, concurrency):
            await asyncio.gather(*(post(i) for i in range(start, min(pushes, start + concurrency))))
        return round(pushes / (time.perf_counter() - began), 1)


if __name__ == "__main__":
    print(asyncio.run(measure(int(sys.argv[1]) if len(sys.argv) > 1 else 2000, 100)))
