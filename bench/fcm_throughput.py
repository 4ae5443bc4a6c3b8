"""Pushes per second of ``FcmPushSender`` (the real firebase-admin SDK) against the fake FCM server.

The fake runs in its own process so that it does not share this process's CPU and GIL.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
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
        return {
            "transport": transport,
            "pushes": sent,
            "per_call": per_call,
            "seconds": round(elapsed, 2),
            "pushes_per_second": round(sent / elapsed, 1),
        }
    finally:
        fake.terminate()
        fake.wait(10)


if __name__ == "__main__":
    print(asyncio.run(measure(int(sys.argv[1]) if len(sys.argv) > 1 else 2000, 100)))
