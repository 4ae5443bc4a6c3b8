"""Many idle authenticated sockets on one instance, with the API serving meanwhile.

    .venv/bin/python -m bench.capacity [--sockets 50000] [--workers 4] [--generators 4] [--rate 100] [--duration 15]

One instance is one ``workcast serve --workers N`` (one port) on PostgreSQL (fsync on, its defaults) and Redis,
both started here. Several workers, because this machine lets a process hold at most 20,000 open files
(``ulimit -Hn``, and no CAP_SYS_RESOURCE to raise it): 50,000 sockets cannot be one process's here, while a
worker of a several-worker instance holds a share. The load generator is split the same way: ``--generators``
processes, each opening its share of the provider sockets from its own source address (127.0.0.2, .3, ...; one
address reaches one port from ~28,000 ephemeral ports), 200 at a time.

The providers and seekers are taken in with ``workcast import`` (the existing-users import), their tokens signed
with the instance's key. Once every socket has answered a ping (so each is authenticated, subscribed and past its
replay), assign-work runs open-loop at ``--rate`` for ``--duration`` seconds, each order to a random connected
provider, and every order is timed from just before its POST to the moment its provider's socket receives it.
Prints one JSON summary: sockets opened and live, connect time, RSS of the instance (all its processes) and per
socket, HTTP and end-to-end latency, orders not delivered within 5 s, errors.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import psutil
import psycopg
from tests.fixtures.servers import free_port

from bench.loadgen import percentiles
from bench.run import infrastructure, log, raise_open_files_limit

BATCH = 200  # sockets opened at once by each generator
DELIVERY_DEADLINE = 5.0  # seconds an order may take to reach its provider's socket


def write_users(path: Path, providers: int, seekers: int) -> None:
    with path.open("w") as out:
        for i in range(providers):
            record = {"external_id": f"cap-p-{i}", "role": "provider", "name": f"P {i}", "mobile": "+34600"}
            out.write(json.dumps(record | {"is_active_for_work": True, "latitude": 40.4, "longitude": -3.7}) + "\n")
        for i in range(seekers):
            out.write(
                json.dumps({"external_id": f"cap-s-{i}", "role": "seeker", "name": f"S {i}", "mobile": "+34"}) + "\n"
            )


def take_in_users(env: dict[str, str], providers: int, seekers: int) -> tuple[list[dict], list[dict]]:
    """Import them, then read their ids and sign a token for each (``sub`` = the external id)."""
    from entrypoints.auth import TokenService
    from entrypoints.settings import Settings

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "users.ndjson"
        write_users(path, providers, seekers)
        subprocess.run(
            [sys.executable, "-m", "entrypoints.cli", "import", str(path)],
            env={**os.environ, **env},
            check=True,
            capture_output=True,
        )
    url = env["DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url) as connection:
        rows = connection.execute(
            "SELECT id, external_id, role FROM profiles WHERE external_id LIKE 'cap-%'"
        ).fetchall()
    tokens = TokenService(Settings.from_env(env))
    people = [{"id": i, "token": tokens.issue(external), "role": role} for i, external, role in rows]
    return [p for p in people if p["role"] == "provider"], [p for p in people if p["role"] == "seeker"]


def generator_main(ws_url: str, address: str, providers: list[dict], reports, commands) -> None:
    """One load-generator process: holds its share of the sockets and reports what they receive."""
    asyncio.run(_generate(ws_url, address, providers, reports, commands))


async def _generate(ws_url: str, address: str, providers: list[dict], reports, commands) -> None:
    arrived: dict[int, float] = {}
    pongs = 0

    async def listen(ws) -> None:
        nonlocal pongs
        async for frame in ws:
            if frame.type != aiohttp.WSMsgType.TEXT:
                break
            message = json.loads(frame.data)
            if message.get("type") == "work_assigned":
                arrived.setdefault(message["work_id"], time.monotonic())  # CLOCK_MONOTONIC: one clock for all
            elif message.get("type") == "pong":
                pongs += 1

    connector = aiohttp.TCPConnector(limit=0, local_addr=(address, 0))
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as session:
        sockets, listeners, failed = [], [], Counter()
        for start in range(0, len(providers), BATCH):
            opened = await asyncio.gather(
                *(
                    session.ws_connect(f"{ws_url}/ws/work/provider/?token={p['token']}", heartbeat=None, compress=0)
                    for p in providers[start : start + BATCH]
                ),
                return_exceptions=True,
            )
            for ws in opened:
                if isinstance(ws, BaseException):
                    failed[type(ws).__name__] += 1
                else:
                    sockets.append(ws)
                    listeners.append(asyncio.create_task(listen(ws)))
        for ws in sockets:  # answered after the replay: a pong means authenticated, subscribed and live
            with contextlib.suppress(aiohttp.ClientError):
                await ws.send_str('{"type":"ping"}')
        deadline = time.monotonic() + 300
        while pongs + sum(ws.closed for ws in sockets) < len(sockets) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.5)
        closed = Counter(ws.close_code for ws in sockets if ws.closed)
        reports.put({"opened": len(sockets), "failed": failed, "live": pongs, "closed_by_code": dict(closed)})
        await asyncio.get_running_loop().run_in_executor(None, commands.get)  # the orders were sent
        await asyncio.sleep(DELIVERY_DEADLINE)
        reports.put({"arrived": arrived})
        for ws in sockets:
            with contextlib.suppress(Exception):
                await ws.close()


def instance_rss_kb(process: psutil.Process) -> int:
    return sum(p.memory_info().rss for p in [process, *process.children(recursive=True)]) // 1024


async def assign_open_loop(base_url: str, seekers: list[dict], providers: list[dict], rate: float, duration: float):
    """Orders at a steady rate (latency counted from each order's planned send time); (work id, sent at) pairs."""
    rng = random.Random(11)
    sent: list[tuple[int | None, float, float, int]] = []  # work id, planned at, HTTP latency, status

    async def one(session, planned: float) -> None:
        provider = rng.choice(providers)
        body = {"provider_id": provider["id"], "service_type": "worker", "latitude": 40.4, "longitude": -3.7}
        headers = {"Authorization": f"Bearer {rng.choice(seekers)['token']}"}
        status, work_id = 0, None
        try:
            async with session.post(f"{base_url}/api/1/profiles/assign-work/", json=body, headers=headers) as r:
                status = r.status
                if status == 201:
                    work_id = (await r.json())["data"]["work_order_id"]
        except aiohttp.ClientError:
            pass
        sent.append((work_id, planned, time.monotonic() - planned, status))

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        began = time.monotonic()
        tasks = []
        for n in range(int(rate * duration)):
            planned = began + n / rate
            await asyncio.sleep(max(0.0, planned - time.monotonic()))
            tasks.append(asyncio.create_task(one(session, planned)))
        await asyncio.gather(*tasks)
    return sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sockets", type=int, default=50_000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--generators", type=int, default=4)
    parser.add_argument("--seekers", type=int, default=100)
    parser.add_argument("--rate", type=float, default=100.0, help="assign-work orders per second meanwhile")
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    raise_open_files_limit(20_000)
    result: dict[str, Any] = {"sockets_asked": args.sockets, "workers": args.workers, "generators": args.generators}
    with infrastructure("postgres") as env:
        env = env | {"DB_POOL_SIZE": "10"}  # per worker: PostgreSQL's max_connections is shared by all
        log(f"importing {args.sockets} providers and {args.seekers} seekers")
        providers, seekers = take_in_users(env, args.sockets, args.seekers)
        port = free_port()
        server_log = open(Path(env["WORKCAST_DATA_DIR"]) / "server.log", "wb")  # noqa: SIM115 (closed below)
        serve = subprocess.Popen(
            [sys.executable, "-m", "entrypoints.cli", "serve", "--port", str(port), "--workers", str(args.workers)],
            env={**os.environ, **env},
            stdout=server_log,
            stderr=subprocess.STDOUT,
        )
        instance = psutil.Process(serve.pid)
        try:
            for _ in range(600):
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"http://127.0.0.1:{port}/health", timeout=0.5).status_code == 200:
                        break
                time.sleep(0.1)
            time.sleep(2)  # every worker up
            rss_before = instance_rss_kb(instance)
            context = multiprocessing.get_context("spawn")
            reports, commands = context.Queue(), context.Queue()
            shares = [providers[i :: args.generators] for i in range(args.generators)]
            generators = [
                context.Process(
                    target=generator_main,
                    args=(f"ws://127.0.0.1:{port}", f"127.0.0.{2 + i}", share, reports, commands),
                )
                for i, share in enumerate(shares)
            ]
            log(f"opening {args.sockets} sockets from {args.generators} generators")
            started = time.monotonic()
            for generator in generators:
                generator.start()
            opened = [reports.get(timeout=1800) for _ in generators]
            result |= {
                "sockets_opened": sum(o["opened"] for o in opened),
                "sockets_failed": sum((Counter(o["failed"]) for o in opened), Counter()),
                "sockets_closed_by_code": sum((Counter(o["closed_by_code"]) for o in opened), Counter()),
                "sockets_live": sum(o["live"] for o in opened),
                "connect_seconds": round(time.monotonic() - started, 1),
            }
            log(f"sockets: {result}")
            time.sleep(3)
            rss_after = instance_rss_kb(instance)
            result["instance_rss_mb"] = {"before": rss_before // 1024, "sockets_open": rss_after // 1024}
            result["kb_per_socket"] = round((rss_after - rss_before) / max(result["sockets_live"], 1), 1)
            log(f"assign-work at {args.rate}/s for {args.duration} s")
            sent = asyncio.run(
                assign_open_loop(f"http://127.0.0.1:{port}", seekers, providers, args.rate, args.duration)
            )
            for _ in generators:
                commands.put("sent")
            arrived: dict[int, float] = {}
            for _ in generators:
                arrived |= reports.get(timeout=120)["arrived"]
            for generator in generators:
                generator.join(60)
        finally:
            serve.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                serve.wait(30)
            server_log.close()
            lines = (Path(env["WORKCAST_DATA_DIR"]) / "server.log").read_text(errors="replace").splitlines()
            warnings = Counter(line[:160] for line in lines if "WARNING" in line or "ERROR" in line)
            result["server_warnings"] = dict(warnings.most_common(10))  # the instance's own account
    created = [(w, planned) for w, planned, _, status in sent if status == 201]
    result |= {
        "orders": len(sent),
        "errors": sum(1 for *_, status in sent if status != 201),
        "http_latency_ms": percentiles([latency for _, _, latency, _ in sent]),  # (seconds in, ms out)
        "end_to_end_ms": percentiles([arrived[w] - planned for w, planned in created if w in arrived]),
        "not_arrived_within_5s": sum(1 for w, planned in created if w not in arrived or arrived[w] - planned > 5),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
