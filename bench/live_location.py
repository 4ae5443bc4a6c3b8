"""Live location at volume: N connected providers send their position over the socket, and the batch writer
must keep up while assign-work is still served.

    .venv/bin/python -m bench.live_location [--providers 10000] [--rate 20000] [--seconds 20]

PostgreSQL (fsync on) + Redis. A load-generator process opens the provider sockets and sends ``location``
messages at ``--rate`` per second in all (each provider in turn, a new random point of a 100 km city each
time); meanwhile this process sends assign-work at 20/s and times it. Reported: the rate the generator
reached, what the server read (``workcast_locations_received_total``) and wrote after coalescing, the age
of written batches, the end-to-end staleness a search sees (a probe provider sends a new position every
2 s and a search polls until it shows; target <= 2 s), and assign-work's p50/p99 during the storm beside a
quiet baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import httpx

from bench.run import bench_server, infrastructure, log, seed_users

TARGET_RATE = 20_000
TARGET_STALENESS_P99 = 2.0
ASSIGN_RATE = 20


def metric(text: str, name: str) -> float:
    return sum(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith(name + " ") or line.startswith(name + "{")
    )


def staleness_p99(text: str) -> float | None:
    """The p99 bucket bound of the staleness histogram (Prometheus buckets: an upper bound)."""
    buckets = []
    for line in text.splitlines():
        if line.startswith("workcast_location_staleness_seconds_bucket"):
            bound = line.split('le="')[1].split('"')[0]
            buckets.append((float("inf") if bound == "+Inf" else float(bound), float(line.split()[-1])))
    if not buckets or buckets[-1][1] == 0:
        return None
    total = buckets[-1][1]
    return next(bound for bound, count in sorted(buckets) if count >= 0.99 * total)


async def drain(ws) -> None:
    async for _ in ws:
        pass


def generator(ws_url: str, tokens: list[str], rate: int, seconds: float, reports) -> None:
    async def main() -> None:
        rng = random.Random(17)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            sockets = []
            for start in range(0, len(tokens), 200):
                sockets += await asyncio.gather(
                    *(
                        session.ws_connect(f"{ws_url}/ws/work/provider/?token={t}", heartbeat=None, compress=0)
                        for t in tokens[start : start + 200]
                    )
                )
            # Read every socket: aiohttp answers the server's pings only while reading (else 40 s later: closed).
            readers = [asyncio.create_task(drain(ws)) for ws in sockets]
            reports.put({"open": len(sockets)})
            tick, sent, turn = 0.05, 0, 0
            started = time.perf_counter()
            while (elapsed := time.perf_counter() - started) < seconds:
                due = int(rate * elapsed) - sent
                for _ in range(due):
                    ws = sockets[turn % len(sockets)]
                    turn += 1
                    lat, lon = 40.4168 + rng.uniform(-0.45, 0.45), -3.7038 + rng.uniform(-0.59, 0.59)
                    await ws.send_str(f'{{"type":"location","latitude":{lat:.6f},"longitude":{lon:.6f}}}')
                sent += due
                await asyncio.sleep(tick)
            reports.put({"sent": sent, "seconds": time.perf_counter() - started})
            await asyncio.sleep(3)  # the last batches are written
            for reader in readers:
                reader.cancel()
            for ws in sockets:
                await ws.close()

    asyncio.run(main())


PROBE_ANSWERS: dict[str, int] = {}  # what the probe's searches answered (status, or found/not yet)


async def visibility_probe(port: int, seeker: dict, probe: dict, seconds: float) -> list[float]:
    """End to end: a provider's new position sent on its socket, until a nearby search returns it there.
    Includes every queue on the way (TCP buffers, the server's loop, the batch writer, the HTTP request)."""
    samples = []
    headers = {"Authorization": f"Bearer {seeker['token']}"}
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session,
        session.ws_connect(f"ws://127.0.0.1:{port}/ws/work/provider/?token={probe['token']}", heartbeat=None) as ws,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=60) as http,
    ):
        reader = asyncio.create_task(drain(ws))
        started, step = time.perf_counter(), 0
        while time.perf_counter() - started < seconds:
            step += 1
            spot = {"latitude": -45.0 + step * 0.01, "longitude": 170.0}  # far from the storm: only the probe
            sent = time.perf_counter()
            await ws.send_str(json.dumps({"type": "location", **spot}))
            while True:
                found = await http.get(
                    "/api/1/profiles/active-providers/", params={**spot, "radius_km": 0.1, "limit": 1}
                )
                seen = found.status_code == 200 and found.json()["data"]["count"]
                answer = "found" if seen else "not yet" if found.status_code == 200 else str(found.status_code)
                PROBE_ANSWERS[answer] = PROBE_ANSWERS.get(answer, 0) + 1
                if seen:
                    samples.append(time.perf_counter() - sent)
                    break
                if time.perf_counter() - sent > 60:
                    samples.append(float("inf"))
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(max(0.0, 2.0 - (time.perf_counter() - sent)))
        reader.cancel()
    return samples


async def during_storm(port: int, seeker: dict, provider: dict, probe: dict, seconds: float):
    return await asyncio.gather(
        assign_latencies(port, seeker, provider, seconds), visibility_probe(port, seeker, probe, seconds)
    )


async def assign_latencies(port: int, seeker: dict, provider: dict, seconds: float) -> list[float]:
    body = {
        "provider_id": provider["id"],
        "service_type": "worker",
        "message": "",
        "distance": "",
        "latitude": 40.4,
        "longitude": -3.7,
    }
    latencies = []
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {seeker['token']}"}, timeout=30
    ) as http:
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            sent = time.perf_counter()
            answer = await http.post("/api/1/profiles/assign-work/", json=body)
            assert answer.status_code == 201, answer.text
            latencies.append((time.perf_counter() - sent) * 1000)
            await asyncio.sleep(max(0.0, 1 / ASSIGN_RATE - (time.perf_counter() - sent)))
    return latencies


# Where a stack's leaf frames live, to say what the server spent its time on.
PROFILE_BUCKETS = (
    ("websocket frames (wsproto)", "wsproto"),
    ("websocket frames (websockets)", "websockets"),
    ("HTTP parsing and ASGI (uvicorn, httptools, h11)", ("uvicorn", "httptools", "h11")),
    ("workcast socket handling", ("entrypoints/http/sockets", "socket_protocol")),
    ("live locations", "live_locations"),
    ("database driver (psycopg, sqlalchemy)", ("psycopg", "sqlalchemy")),
    ("redis", "redis"),
    ("litestar", "litestar"),
    ("msgspec", "msgspec"),
    ("asyncio / uvloop (scheduling, I/O)", ("asyncio", "uvloop")),
)


def where_the_time_goes(path: Path) -> dict[str, str]:
    """Shares of the sampled time by the library of each stack's innermost frame (py-spy's raw format)."""
    totals: dict[str, int] = {}
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        leaf = stack.rsplit(";", 1)[-1]
        name = next(
            (
                label
                for label, marks in PROFILE_BUCKETS
                if any(m in leaf for m in ((marks,) if isinstance(marks, str) else marks))
            ),
            "other",
        )
        totals[name] = totals.get(name, 0) + int(count)
    whole = sum(totals.values()) or 1
    return {name: f"{count / whole:.0%}" for name, count in sorted(totals.items(), key=lambda kv: -kv[1])}


def summary(latencies: list[float]) -> dict:
    latencies = sorted(latencies)
    return {
        "p50_ms": round(statistics.median(latencies), 1),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--providers", type=int, default=10_000)
    parser.add_argument("--rate", type=int, default=TARGET_RATE)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--ws", default="wsproto", help="uvicorn's WebSocket implementation (workcast serve --ws)")
    parser.add_argument(
        "--profile", type=Path, help="record the server with py-spy during the storm (collapsed stacks to this file)"
    )
    args = parser.parse_args()
    with infrastructure("postgres") as env:
        log(f"creating {args.providers:,} providers")
        providers, (seeker,) = asyncio.run(seed_users(env, args.providers, 1))
        with bench_server(env, args.ws) as (port, server_pid):
            baseline = summary(asyncio.run(assign_latencies(port, seeker, providers[0], 5)))
            log(f"assign-work, quiet: {baseline}")
            context = multiprocessing.get_context("spawn")
            reports = context.Queue()
            child = context.Process(
                target=generator,
                # Not providers[0] (assigned to) nor providers[1] (the visibility probe): the storm is everyone else.
                args=(f"ws://127.0.0.1:{port}", [p["token"] for p in providers[2:]], args.rate, args.seconds, reports),
            )
            child.start()
            log(f"sockets open: {reports.get(timeout=600)['open']}")
            before = httpx.get(f"http://127.0.0.1:{port}/metrics").text
            profiler = None
            if args.profile:
                spy = [str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(server_pid)]
                spy += ["--duration", str(int(args.seconds) - 5), "--format", "raw", "-o", str(args.profile)]
                profiler = subprocess.Popen(
                    [*spy, "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                )
            assigned, visible = asyncio.run(during_storm(port, seeker, providers[0], providers[1], args.seconds - 1))
            storm = summary(assigned)
            if profiler is not None:
                profiler.wait(60)
                result_profile = where_the_time_goes(args.profile)
            sent = reports.get(timeout=600)
            time.sleep(3)
            after = httpx.get(f"http://127.0.0.1:{port}/metrics").text
            child.join(60)
        # The server's log goes with the data directory: keep it for a look.
        shutil.copy(
            Path(env["WORKCAST_DATA_DIR"]) / "server.log", Path(tempfile.gettempdir()) / "live_location_server.log"
        )
    written = metric(after, "workcast_locations_written_total") - metric(before, "workcast_locations_written_total")
    received = metric(after, "workcast_locations_received_total") - metric(before, "workcast_locations_received_total")
    result = {
        "ws": args.ws,
        **({"profile": result_profile} if args.profile else {}),
        "providers": args.providers,
        "sent_per_second": round(sent["sent"] / sent["seconds"]),
        "target_per_second": args.rate,
        # What the server read while the generator sent (and 3 s after): below the sent rate, messages queue.
        "received_by_server_per_second": round(received / sent["seconds"]),
        "received_of_sent": f"{received / max(1, sent['sent']):.0%}",
        "written_positions": int(written),
        "batch_age_p99_s_at_most": staleness_p99(after),
        "visible_in_search_s": {
            "p50": round(statistics.median(visible), 2),
            "max": round(max(visible), 2),
            "samples": len(visible),
            "search_answers": PROBE_ANSWERS,
        },
        "staleness_target_s": TARGET_STALENESS_P99,
        "assign_work_quiet": baseline,
        "assign_work_during": storm,
    }
    print(json.dumps(result, indent=2))
    print(json.dumps(result), file=sys.stderr)


if __name__ == "__main__":
    main()
