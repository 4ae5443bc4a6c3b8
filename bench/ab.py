"""Two builds of workcast side by side, interleaved: which one spends less CPU per assign-work request.

    .venv/bin/python -m bench.ab --base /tmp/old [--rounds 8] [--seconds 4] [--sockets 500] [--concurrency 32]

``--base`` is another checkout (``git worktree add /tmp/old <commit>``) sharing this one's database schema. Both
builds run at once as one server process each (the bench server, ``workcast serve``'s options) on the same
PostgreSQL (fsync on, its defaults) and Redis, each holding its own half of the providers' sockets. The load
generator then drives assign-work closed-loop against one, then the other, for ``--seconds`` each, swapping the
order every round, and reads each server's CPU time around its turn.

Why: this machine's speed drifts by up to 3x within minutes, far more than most changes are worth, so two runs
one after the other compare the hours, not the builds. Turns of a few seconds, interleaved, see the same machine;
the medians over the rounds and their ratio are the figures.

``--fresh``: every order goes to a provider who has not had one yet (their socket connected at the start, as a
provider comes online and then gets picked); the first ``WARM_UP_PROVIDERS`` of each build take the warm-up's
orders. A turn needs about its seconds x the build's req/s fresh providers, so e.g. ``--sockets 4500 --seconds 1
--rounds 6``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import httpx
import psutil
from tests.fixtures.servers import free_port

from bench.loadgen import Inbox, closed_loop, open_sockets, post_assign
from bench.run import infrastructure, log, raise_open_files_limit, seed_users


def start_server(source: Path, env: dict[str, str], port: int, prefix: str) -> subprocess.Popen:
    """The bench server of the checkout at ``source`` (its own code first on the path)."""
    path = os.pathsep.join([str(source / "src"), str(source)])
    return subprocess.Popen(
        [sys.executable, "-m", "bench.server", "--port", str(port)],
        cwd=source,
        env={**os.environ, **env, "PYTHONPATH": path, "REDIS_KEY_PREFIX": prefix},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_until_up(port: int, process: subprocess.Popen) -> None:
    for _ in range(600):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=0.5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            raise RuntimeError("a server exited at start")
        time.sleep(0.1)
    raise RuntimeError("a server did not start")


WARM_UP_PROVIDERS = 300


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


async def drive(builds: dict[str, dict], seekers: list[dict], args) -> dict[str, list[dict]]:
    rng = random.Random(7)
    turns: dict[str, list[dict]] = {name: [] for name in builds}
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:
        for name, build in builds.items():
            tokens = [p["token"] for p in build["providers"]]
            build["sockets"] = await open_sockets(
                session,
                build["ws"],
                "/ws/work/provider/",
                tokens,
                Inbox(),
                lambda text, name=name: log(f"{name}: {text}"),
            )

        def assigning(build, warming_up=False):
            def provider_id() -> int:
                if not args.fresh:
                    return rng.choice(build["providers"])["id"]
                if warming_up:
                    return rng.choice(build["providers"][:WARM_UP_PROVIDERS])["id"]
                if not build["fresh"]:
                    raise SystemExit("--fresh: the providers ran out; more --sockets or shorter --seconds")
                return build["fresh"].pop()["id"]

            return lambda: post_assign(
                session, f"{build['base']}/api/1/profiles/assign-work/", rng.choice(seekers)["token"], provider_id()
            )

        names = list(builds)
        for name in names:  # warm-up: parties remembered, statements prepared, pools full
            builds[name]["fresh"] = builds[name]["providers"][WARM_UP_PROVIDERS:]
            await closed_loop(assigning(builds[name], warming_up=True), args.concurrency, 2.0)
        for round_number in range(args.rounds):
            for name in names if round_number % 2 == 0 else reversed(names):
                build = builds[name]
                before = cpu_seconds(build["process"])
                records, elapsed = await closed_loop(assigning(build), args.concurrency, args.seconds)
                used = cpu_seconds(build["process"]) - before
                created = sum(1 for r in records if r.status == 201)
                turns[name].append(
                    {
                        "requests_per_second": created / elapsed,
                        "cpu_ms_per_request": 1000 * used / max(created, 1),
                        "errors": len(records) - created,
                    }
                )
            log(f"round {round_number + 1}: " + ", ".join(f"{n} {turns[n][-1]}" for n in names))
        for build in builds.values():
            for ws in build["sockets"]:
                await ws.close()
    return turns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", type=Path, required=True, help="the other checkout (e.g. a git worktree)")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each turn")
    parser.add_argument("--sockets", type=int, default=500, help="idle provider sockets per build")
    parser.add_argument("--seekers", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--fresh", action="store_true", help="each order to a provider who has had none yet")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    raise_open_files_limit(4 * args.sockets + 1000)
    here = Path(__file__).resolve().parent.parent
    sources = {"base": args.base.resolve(), "this": here}
    with infrastructure("postgres") as env:
        providers, seekers = asyncio.run(seed_users(env, 2 * args.sockets, args.seekers))
        builds: dict[str, dict] = {}
        try:
            for index, (name, source) in enumerate(sources.items()):
                port = free_port()
                process = start_server(source, env, port, f"ab{index}")
                builds[name] = {
                    "port": port,
                    "popen": process,
                    "base": f"http://127.0.0.1:{port}",
                    "ws": f"ws://127.0.0.1:{port}",
                    "providers": providers[index * args.sockets : (index + 1) * args.sockets],
                }
            for build in builds.values():
                wait_until_up(build["port"], build["popen"])
                build["process"] = psutil.Process(build["popen"].pid)
            turns = asyncio.run(drive(builds, seekers, args))
        finally:
            for build in builds.values():
                build["popen"].terminate()
                build["popen"].wait(30)
    summary = {
        name: {
            "cpu_ms_per_request_median": round(statistics.median(t["cpu_ms_per_request"] for t in turns[name]), 3),
            "requests_per_second_median": round(statistics.median(t["requests_per_second"] for t in turns[name]), 1),
            "errors": sum(t["errors"] for t in turns[name]),
            "turns": turns[name],
        }
        for name in sources
    }
    base, this = summary["base"], summary["this"]
    summary["this_vs_base"] = {
        "cpu_per_request": round(this["cpu_ms_per_request_median"] / base["cpu_ms_per_request_median"], 3),
        "requests_per_second": round(this["requests_per_second_median"] / base["requests_per_second_median"], 3),
    }
    for name in sources:
        print(
            f"{name:5}  CPU per assign-work {summary[name]['cpu_ms_per_request_median']:.3f} ms  "
            f"{summary[name]['requests_per_second_median']:.1f} req/s  errors {summary[name]['errors']}"
        )
    print(
        f"this / base: CPU per request {summary['this_vs_base']['cpu_per_request']}, "
        f"req/s {summary['this_vs_base']['requests_per_second']}"
    )
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
