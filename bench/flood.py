"""Floods against the limits, measured from a victim's side: ``python -m bench.flood``.

One instance on PostgreSQL + Redis with the default limits. For each flood, a well-behaved user's
latency is measured before (baseline) and during it, in the same run:
- one seeker posts 2,000 assign-work requests 50 at a time; another seeker assigns one at a time;
- a socket sends pings as fast as it can for 20 s, reconnecting when closed; another pings ten times a second;
- 2,000 apps connect at once, 100 at a time (a reconnect storm);
- one user opens 50 sockets.
Prints one JSON summary (p50/p99 in ms, what the flooder got).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import time
from collections import Counter

import httpx
from tests.fixtures.servers import create_database, postgres_server, redis_server
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from bench.run import JWT_SECRET, bench_server, log, seed_users


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    if not ordered:
        return {"n": 0}
    at = lambda q: round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1)  # noqa: E731
    return {"p50_ms": at(0.5), "p99_ms": at(0.99), "n": len(ordered)}


async def assign_latencies(http, base, seeker, provider_id, stop: asyncio.Event) -> list[float]:
    found = []
    while not stop.is_set():
        started = time.perf_counter()
        r = await http.post(
            f"{base}/api/1/profiles/assign-work/",
            json={"provider_id": provider_id, "service_type": "worker", "latitude": 1.0, "longitude": 1.0},
            headers={"Authorization": f"Bearer {seeker['token']}"},
        )
        if r.status_code == 201:
            found.append(time.perf_counter() - started)
            # cancel it, so the victim never reaches the pending-orders cap
            await http.post(
                f"{base}/api/1/profiles/work-orders/{r.json()['data']['work_order_id']}/cancel/",
                headers={"Authorization": f"Bearer {seeker['token']}"},
            )
        await asyncio.sleep(0.05)
    return found


async def ping_latencies(ws_base, provider, stop: asyncio.Event) -> list[float]:
    found = []
    async with connect(f"{ws_base}/ws/work/provider/?token={provider['token']}") as socket:
        while json.loads(await socket.recv())["type"] != "replay_complete":
            pass
        while not stop.is_set():
            started = time.perf_counter()
            await socket.send('{"type": "ping"}')
            while json.loads(await socket.recv())["type"] != "pong":
                pass
            found.append(time.perf_counter() - started)
            await asyncio.sleep(0.1)  # 10 a second: within the default message rate (20/s)
    return found


async def measure_during(probe, flood: asyncio.Task) -> list[float]:
    """The probe's samples for as long as the flood goes on."""
    stop = asyncio.Event()
    task = asyncio.create_task(probe(stop))
    await asyncio.wait([flood])
    stop.set()
    return await task


async def measure(probe, seconds: float) -> list[float]:
    stop = asyncio.Event()
    task = asyncio.create_task(probe(stop))
    await asyncio.sleep(seconds)
    stop.set()
    return await task


async def flood_assign(base: str, token: str, provider_id: int) -> dict:
    statuses: Counter = Counter()
    queue = iter(range(2000))
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=60)) as http:

        async def worker():
            for _ in queue:
                r = await http.post(
                    f"{base}/api/1/profiles/assign-work/",
                    json={"provider_id": provider_id, "service_type": "x", "latitude": 1, "longitude": 1},
                    headers={"Authorization": f"Bearer {token}"},
                )
                statuses[r.status_code] += 1

        await asyncio.gather(*(worker() for _ in range(50)))
    return dict(statuses)


async def flood_pings(ws_base: str, token: str, seconds: float = 20.0) -> dict:
    """A determined flooder: pings as fast as it can, and connects again each time it is closed."""
    sent = answered = connections = 0
    codes: Counter = Counter()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        connections += 1
        try:
            async with connect(f"{ws_base}/ws/work/provider/?token={token}") as socket:

                async def read(socket=socket):
                    nonlocal answered
                    async for _ in socket:
                        answered += 1

                reader = asyncio.create_task(read())
                with contextlib.suppress(ConnectionClosed):
                    while time.monotonic() < deadline:
                        await socket.send('{"type": "ping"}')
                        sent += 1
                await asyncio.wait_for(reader, 10)
        except ConnectionClosed as closed:
            codes[closed.rcvd.code if closed.rcvd else None] += 1
    return {"seconds": seconds, "connections": connections, "sent": sent, "answered": answered,
            "close_codes": dict(codes)}  # fmt: skip


async def connect_burst(ws_base: str, tokens: list[str], at_once: int = 100) -> dict:
    """Thousands of apps connecting at once (an instance came back, a network recovered), 100 at a time."""
    opened, failed, sockets = 0, 0, []

    async def one(token: str) -> None:
        nonlocal opened, failed
        try:
            socket = await connect(f"{ws_base}/ws/work/provider/?token={token}", open_timeout=60)
            while json.loads(await socket.recv())["type"] != "replay_complete":
                pass
            sockets.append(socket)
            opened += 1
        except (OSError, ConnectionClosed, TimeoutError):
            failed += 1

    began = time.perf_counter()
    for start in range(0, len(tokens), at_once):
        await asyncio.gather(*(one(t) for t in tokens[start : start + at_once]))
    seconds = time.perf_counter() - began
    for socket in sockets:
        await socket.close()
    return {"connected": opened, "failed": failed, "seconds": round(seconds, 1)}


def _child(flood, args, results) -> None:
    results.put(asyncio.run(flood(*args)))


async def in_process(flood, *args) -> dict:
    """Run a flood in a process of its own: its client work must not slow the victim's measurements."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    child = context.Process(target=_child, args=(flood, args, results))
    child.start()
    try:
        return await asyncio.to_thread(results.get, True, 600)
    finally:
        await asyncio.to_thread(child.join, 30)


async def run(port: int, providers, seekers) -> dict:
    base, ws_base = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}"
    victim, attacker = seekers[0], seekers[1]
    result: dict = {}
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=200)) as http:

        def victim_assign(stop):
            return assign_latencies(http, base, victim, providers[0]["id"], stop)

        log("baseline: victim assign-work")
        result["assign_victim_baseline"] = percentiles(await measure(victim_assign, 5))

        log("flood: 2,000 assign-work from one seeker, 50 at a time (in its own process)")
        flood = asyncio.create_task(in_process(flood_assign, base, attacker["token"], providers[1]["id"]))
        await asyncio.sleep(1.0)  # the child process starts (imports) before the victim measures
        during = await measure_during(victim_assign, flood)
        result["assign_victim_during_flood"] = percentiles(during)
        result["assign_flooder_statuses"] = await flood

        def victim_ping(stop):
            return ping_latencies(ws_base, providers[2], stop)

        log("baseline: victim socket ping")
        result["ping_victim_baseline"] = percentiles(await measure(victim_ping, 5))

        log("flood: a socket sends pings as fast as it can for 20 s, connecting again when closed (own process)")
        flood = asyncio.create_task(in_process(flood_pings, ws_base, providers[3]["token"]))
        await asyncio.sleep(1.0)
        during = await measure_during(victim_ping, flood)
        result["ping_victim_during_flood"] = percentiles(during)
        result["ping_flooder"] = await flood

        log("a burst of 2,000 connects, 100 at a time, from 2,000 providers (own process)")
        tokens = [p["token"] for p in providers[5:]]
        flood = asyncio.create_task(in_process(connect_burst, ws_base, tokens))
        await asyncio.sleep(1.0)
        result["ping_victim_during_connect_burst"] = percentiles(await measure_during(victim_ping, flood))
        result["connect_burst"] = await flood

        log("one user opens 50 sockets")
        sockets, closed_codes = [], Counter()
        for _ in range(50):
            sockets.append(await connect(f"{ws_base}/ws/work/provider/?token={providers[4]['token']}"))
        await asyncio.sleep(2)
        for socket in sockets:
            if socket.close_code is not None:
                closed_codes[socket.close_code] += 1
            await socket.close()
        result["fifty_sockets_one_user"] = {
            "closed_by_server": dict(closed_codes),
            "left_open": 50 - closed_codes.total(),
        }
    return result


def main() -> None:
    with postgres_server(durable=True) as pg, redis_server() as redis:
        env = {
            "WORKCAST_DATA_DIR": "/tmp/workcast-flood",
            "JWT_SECRET": JWT_SECRET,
            "LOG_LEVEL": "WARNING",
            "PUSH_BACKEND": "log",
            "DATABASE_URL": create_database(pg, "workcast_flood"),
            "REDIS_URL": redis.url,
            "AUTO_MIGRATE": "true",
        }
        providers, seekers = asyncio.run(seed_users(env, 5 + 2000, 2))
        with bench_server(env, "wsproto") as (port, _):
            result = asyncio.run(run(port, providers, seekers))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
