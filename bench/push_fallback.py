"""PUSH_POLICY=fallback against always: pushes saved when the apps are open and acknowledging, and the delay
a provider sees when the push is all it gets.

    .venv/bin/python -m bench.push_fallback [--orders 1000] [--providers 20]

One run per policy, embedded store, the real firebase-admin SDK against the local fake FCM (in this process).
Connected providers ack every offer as it arrives; one more provider has no socket (offline) and one has a
socket that never acks (the app is open but did not show it). Reported per policy: pushes per 1,000 orders
to connected providers, and the time from assign-work's answer to the push reaching the fake, for the
offline and the silent provider (p50/p99).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import httpx
from tests.fakes.fcm import fake_fcm_server

from bench.run import bench_server, infrastructure, log, seed_users

FALLBACK_MS = 1500


def assignment(provider_id: int) -> dict:
    return {"provider_id": provider_id, "service_type": "worker", "latitude": 40.4, "longitude": -3.7}


async def acking_app(session, ws_url: str, token: str, ack: bool, ready: asyncio.Event) -> None:
    async with session.ws_connect(f"{ws_url}/ws/work/provider/?token={token}", heartbeat=None) as ws:
        async for raw in ws:
            message = json.loads(raw.data)
            if message["type"] == "replay_complete":
                ready.set()
            elif message["type"] == "work_assigned" and ack:
                await ws.send_str(json.dumps({"type": "ack", "notification_id": message["notification_id"]}))


async def time_to_push(http, fake, seeker: dict, provider: dict, rounds: int) -> list[float]:
    delays = []
    for _ in range(rounds):
        before = len(fake.messages_to(f"bench-{provider['id']}"))
        answer = await http.post(
            "/api/1/profiles/assign-work/",
            json=assignment(provider["id"]),
            headers={"Authorization": f"Bearer {seeker['token']}"},
        )
        assert answer.status_code == 201, answer.text
        answered = time.perf_counter()
        while len(fake.messages_to(f"bench-{provider['id']}")) == before:
            if time.perf_counter() - answered > 30:
                raise RuntimeError("no push within 30 s")
            await asyncio.sleep(0.005)
        delays.append((time.perf_counter() - answered) * 1000)
    return delays


async def run_policy(policy: str, fake, orders: int, providers_count: int) -> dict:
    with tempfile.TemporaryDirectory() as keys, infrastructure("embedded") as env:
        env |= {
            "PUSH_BACKEND": "fcm",
            "FIREBASE_CREDENTIALS_PATH": str(fake.service_account(Path(keys))),
            "FCM_BASE_URL": fake.base_url,
            "PUSH_POLICY": policy,
            "PUSH_FALLBACK_MS": str(FALLBACK_MS),
            "DISPATCH_INTERVAL_SECONDS": "0.2",
        }
        providers, (seeker,) = await seed_users(env, providers_count + 2, 1)
        connected, offline, silent = providers[:providers_count], providers[-2], providers[-1]
        with bench_server(env, "wsproto") as (port, _):
            base = f"http://127.0.0.1:{port}"
            async with httpx.AsyncClient(base_url=base, timeout=30) as http, aiohttp.ClientSession() as session:
                for p in providers:
                    r = await http.post(
                        "/api/1/profiles/fcm-token/",
                        json={"fcm_token": f"bench-{p['id']}"},
                        headers={"Authorization": f"Bearer {p['token']}"},
                    )
                    assert r.status_code == 200, r.text
                ready = [asyncio.Event() for _ in range(providers_count + 1)]
                apps = [
                    asyncio.create_task(acking_app(session, f"ws://127.0.0.1:{port}", p["token"], True, ready[i]))
                    for i, p in enumerate(connected)
                ]
                apps.append(
                    asyncio.create_task(
                        acking_app(session, f"ws://127.0.0.1:{port}", silent["token"], False, ready[-1])
                    )
                )
                await asyncio.gather(*(r.wait() for r in ready))
                sent_before = len(fake.sent)
                headers = {"Authorization": f"Bearer {seeker['token']}"}
                for i in range(orders):
                    r = await http.post(
                        "/api/1/profiles/assign-work/",
                        json=assignment(connected[i % providers_count]["id"]),
                        headers=headers,
                    )
                    assert r.status_code == 201, r.text
                await asyncio.sleep(FALLBACK_MS / 1000 + 3)  # every deferred push is due and sent, or dropped
                tokens = {f"bench-{p['id']}" for p in connected}
                pushed = sum(1 for m in list(fake.sent)[sent_before:] if m.get("token") in tokens)
                offline_delays = await time_to_push(http, fake, seeker, offline, 30)
                silent_delays = await time_to_push(http, fake, seeker, silent, 10)
                for app in apps:
                    app.cancel()
    return {
        "policy": policy,
        "orders_to_connected_acking_providers": orders,
        "pushes_per_1000": round(pushed * 1000 / orders),
        "offline_push_delay_ms": summary(offline_delays),
        "open_but_not_acking_push_delay_ms": summary(silent_delays),
    }


def summary(samples: list[float]) -> dict:
    ordered = sorted(samples)
    return {"p50": round(statistics.median(ordered)), "p99": round(ordered[max(0, int(len(ordered) * 0.99) - 1)])}


async def main_async(args) -> list[dict]:
    results = []
    with fake_fcm_server() as fake:
        for policy in ("always", "fallback"):
            log(f"policy {policy}")
            results.append(await run_policy(policy, fake, args.orders, args.providers))
            log(json.dumps(results[-1]))
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--providers", type=int, default=20)
    args = parser.parse_args()
    results = asyncio.run(main_async(args))
    print(
        "| PUSH_POLICY | pushes per 1,000 orders (apps open, acking) "
        "| offline provider: push after the answer p50 / p99 | app open, not acking: p50 / p99 |"
    )
    print("| --- | --- | --- | --- |")
    for r in results:
        off, silent = r["offline_push_delay_ms"], r["open_but_not_acking_push_delay_ms"]
        delays = f"{off['p50']} / {off['p99']} ms | {silent['p50']} / {silent['p99']} ms"
        print(f"| {r['policy']} | {r['pushes_per_1000']} | {delays} |")
    print(json.dumps(results), file=sys.stderr)


if __name__ == "__main__":
    main()
