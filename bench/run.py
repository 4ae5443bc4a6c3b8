"""The benchmark harness. One command: ``.venv/bin/python -m bench.run [--quick] [--backend embedded|postgres|both]``.

It starts what it measures (the service under uvicorn, one worker; PostgreSQL and Redis from the
installed binaries for the production backend), creates providers and seekers, opens idle provider
WebSockets from a separate load-generator process, drives assign-work closed-loop and open-loop,
measures end-to-end delivery to the provider's socket, the accept round trip, server memory per idle
socket, the one-INSERT yardstick and FCM push throughput, then prints a table and one JSON summary.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
from tests.fixtures.servers import create_database, free_port, postgres_server, redis_server

JWT_SECRET = "bench-secret-" + "x" * 32
# The load generator is a few seekers sending as fast as they can: the limits stay on (their cost is in
# every figure) but far above what it sends.
UNLIMITED = {
    "RATE_LIMIT_ASSIGN": "1000000/1000000",
    "RATE_LIMIT_WRITE": "1000000/1000000",
    "RATE_LIMIT_READ": "1000000/1000000",
    "RATE_LIMIT_SOCKET_MESSAGES": "1000000/1000000",
    "RATE_LIMIT_SOCKET_CONNECTS": "1000000/1000000",
    "MAX_PENDING_ORDERS_PER_SEEKER": "0",
}


def raise_open_files_limit(wanted: int) -> None:
    """Every idle socket is a file in the server and one in the load generator (both inherit this limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, max(hard, wanted)))  # above the hard limit: root only
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        log(f"open files limited to {hard}: fewer sockets than asked for may open (raise `ulimit -Hn`)")


def log(text: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def infrastructure(backend: str, durable: bool = True):
    """Environment for the server: the embedded default, or PostgreSQL + Redis started here (PostgreSQL
    with its own durable defaults, fsync and synchronous_commit on, unless ``durable`` is false)."""
    data_dir = Path(tempfile.mkdtemp(prefix="workcast-bench-"))
    base = {
        "WORKCAST_DATA_DIR": str(data_dir),
        "JWT_SECRET": JWT_SECRET,
        "LOG_LEVEL": "WARNING",
        "PUSH_BACKEND": "log",
        "WORK_TIME_TO_ANSWER_SECONDS": "3600",
        **UNLIMITED,
    }
    try:
        if backend == "embedded":
            yield base | {"DATABASE_URL": ""}
            return
        with postgres_server(durable=durable) as pg, redis_server() as redis:
            url = create_database(pg, "workcast_bench")
            # The pool is left at its defaults (20 connections, no overflow), as `workcast serve` runs.
            yield base | {"DATABASE_URL": url, "REDIS_URL": redis.url, "AUTO_MIGRATE": "true"}
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


async def seed_users(env: dict[str, str], providers: int, seekers: int) -> tuple[list[dict], list[dict]]:
    """Profiles straight through the use cases (the CLI would take a second per user)."""
    from adapters.sqlalchemy.migrate import upgrade_async
    from bench.server import create_reference_table
    from domain.profiles import Role
    from entrypoints.container import build_container, close, database_settings
    from entrypoints.settings import Settings

    settings = Settings.from_env(env)
    url = database_settings(settings).url
    await upgrade_async(url)
    await create_reference_table(url)
    container = build_container(settings)
    try:
        create, tokens = container.create_profile(), container.tokens()
        made_providers = []
        for i in range(providers):
            p = await create.execute(Role.PROVIDER, f"Provider {i}", "9876543210", True)
            made_providers.append({"id": p.id, "token": tokens.issue(p.id)})
        made_seekers = []
        for i in range(seekers):
            s = await create.execute(Role.SEEKER, f"Seeker {i}", "9000000001")
            made_seekers.append({"id": s.id, "token": tokens.issue(s.id)})
        return made_providers, made_seekers
    finally:
        await close(container)


@contextlib.contextmanager
def bench_server(env: dict[str, str], ws: str):
    port = free_port()
    log_file = open(Path(env["WORKCAST_DATA_DIR"]) / "server.log", "ab")  # noqa: SIM115 (closed below)
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.server", "--port", str(port), "--ws", ws],
        env={**os.environ, **env},
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    try:
        for _ in range(600):
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=0.5).status_code == 200:
                    break
            if process.poll() is not None:
                raise RuntimeError("the server exited; see server.log")
            time.sleep(0.05)
        yield port, process.pid
    finally:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(15)
        if process.poll() is None:
            process.kill()
        log_file.close()


class CpuMeter:
    """CPU used by each part of the system between two readings, in percent of one core.

    PostgreSQL and Redis are summed over their processes (one PostgreSQL backend per connection), so
    the table shows which part was busy: with everything on two cores, that is where the time went.
    """

    def __init__(self, server_pid: int, generator_pid: int) -> None:
        self._pids = {"server": server_pid, "generator": generator_pid}
        self._last, self._at = self._read(), time.perf_counter()

    def _read(self) -> dict[str, float]:
        used = dict.fromkeys(("server", "generator", "postgres", "redis"), 0.0)
        by_pid = {pid: part for part, pid in self._pids.items()}
        for process in psutil.process_iter(["pid", "name"]):
            part = by_pid.get(process.info["pid"]) or {"postgres": "postgres", "redis-server": "redis"}.get(
                process.info["name"] or ""
            )
            if part is not None:
                with contextlib.suppress(psutil.Error):
                    times = process.cpu_times()
                    used[part] += times.user + times.system
        return used

    def percent(self) -> dict[str, float]:
        now, at = self._read(), time.perf_counter()
        elapsed = max(at - self._at, 1e-9)
        shares = {f"{part}_cpu_percent": round((now[part] - self._last[part]) / elapsed * 100, 1) for part in now}
        self._last, self._at = now, at
        return shares


class PostgresActivity:
    """What PostgreSQL did besides our statements between two readings: checkpoints and WAL flushes.

    With fsync on, a checkpoint writes and syncs the changed pages while commits still sync the WAL, on the
    same disk: a phase that shares its time with one pays for it in its tail, without any process using CPU.
    """

    _COUNTERS = """
        SELECT b.checkpoints_timed, b.checkpoints_req, b.checkpoint_write_time, b.checkpoint_sync_time,
               b.buffers_checkpoint, b.buffers_backend_fsync, w.wal_sync, w.wal_write, w.wal_bytes
        FROM pg_stat_bgwriter b, pg_stat_wal w
    """

    def __init__(self, database_url: str) -> None:
        import psycopg

        url = database_url.replace("postgresql+psycopg://", "postgresql://")
        self._connection = psycopg.connect(url, autocommit=True)
        self._last = self._read()

    def _read(self) -> dict[str, float]:
        cursor = self._connection.execute(self._COUNTERS)
        return dict(zip((c.name for c in cursor.description), map(float, cursor.fetchone()), strict=True))

    def since_last(self) -> dict[str, float]:
        now = self._read()
        changed = {name: round(now[name] - self._last[name], 1) for name in now}
        self._last = now
        return changed

    def close(self) -> None:
        self._connection.close()


def gc_pauses(port: int) -> dict:
    """The server's garbage-collector pauses since the last call (bench.server counts them)."""
    return httpx.get(f"http://127.0.0.1:{port}/bench/gc", timeout=10).json()


def stalls(port: int) -> list[dict]:
    """The server's event-loop stalls over 20 ms since the last call, longest first, with the loop's stack at the
    moment each was noticed (the first call starts the watch)."""
    found = httpx.get(f"http://127.0.0.1:{port}/bench/stalls", timeout=10).json()
    return sorted(found, key=lambda stall: -stall.get("ms", 0))[:10]


def rss_kb(pid: int) -> int:
    return psutil.Process(pid).memory_info().rss // 1024


def load_generator(port: int, pid: int, plan: dict[str, Any], timeout: float) -> Iterator[dict[str, Any]]:
    """Run the load generator on the server at ``port`` (process ``pid``) and yield what it reports.

    First ``{"generator_pid": ...}``; at each checkpoint, once the server has settled, the server's
    RSS (``rss_kb``) is added and the generator waits until the caller has taken the item.
    """
    from bench.loadgen import child_main

    plan = {"base_url": f"http://127.0.0.1:{port}", "ws_url": f"ws://127.0.0.1:{port}", **plan}
    context = multiprocessing.get_context("spawn")
    reports, commands = context.Queue(), context.Queue()
    child = context.Process(target=child_main, args=(plan, reports, commands), name="loadgen")
    child.start()
    try:
        yield {"generator_pid": child.pid}
        while True:
            item = reports.get(timeout=timeout)
            if "checkpoint" in item:
                time.sleep(2)  # let the server settle before reading its memory
                yield item | {"rss_kb": rss_kb(pid)}
                commands.put("go")
            elif "error" in item:
                raise RuntimeError(f"load generator failed: {item['error']}")
            elif item.get("done"):
                return
            else:
                yield item
    finally:
        child.join(30)


def compare_websocket_implementations(args) -> dict[str, Any]:
    """Server memory per idle provider socket under each of uvicorn's WebSocket implementations."""
    found: dict[str, Any] = {"sockets": args.ws_compare}
    with infrastructure("embedded") as env:
        providers, seekers = asyncio.run(seed_users(env, args.ws_compare, 1))
        plan = {"providers": providers, "seekers": seekers, "idle_sockets": args.ws_compare, "memory_only": True}
        for implementation in ("wsproto", "websockets", "websockets-sansio"):
            with bench_server(env, implementation) as (port, pid):
                readings = {
                    item["checkpoint"]: item["rss_kb"]
                    for item in load_generator(port, pid, plan, timeout=600)
                    if "checkpoint" in item
                }
                grown = readings["sockets_open"] - readings["before_sockets"]
                found[implementation] = round(grown / args.ws_compare, 1)
                log(f"--ws {implementation}: {found[implementation]} KB per idle socket")
    return found


def run_backend(backend: str, args) -> dict[str, Any]:
    results: dict[str, Any] = {"backend": backend}
    with infrastructure(backend, durable=not args.fsync_off) as env:
        if args.loop_stalls:
            env = env | {"BENCH_STALL_MS": str(args.loop_stalls)}
        total = max(args.providers, args.latency_sockets, args.capacity_sockets)
        log(f"{backend}: creating {total} providers and {args.seekers} seekers")
        providers, seekers = asyncio.run(seed_users(env, total, args.seekers))
        with bench_server(env, args.ws) as (port, pid):
            plan = {
                "providers": providers,
                "seekers": seekers,
                "idle_sockets": args.providers,
                "concurrency": args.concurrency,
                "duration": args.duration,
                "rate": args.rate,
                "round_trips": args.round_trips,
                "closed_loop": not args.skip_closed_loop,
                "ratio_rounds": 0 if args.skip_closed_loop else args.ratio_rounds,
                "ratio_seconds": args.ratio_seconds,
                "latency_sockets": args.latency_sockets,
                "capacity_sockets": args.capacity_sockets if backend == "postgres" else 0,
                # One source address reaches the server's port from ~28,000 ephemeral ports at most.
                "source_addresses": [f"127.0.0.{i}" for i in range(2, 10)] if total > 20_000 else [],
            }
            postgres = PostgresActivity(env["DATABASE_URL"]) if env.get("DATABASE_URL") else None
            try:
                for item in load_generator(port, pid, plan, timeout=max(600, args.duration * 10)):
                    if "generator_pid" in item:
                        cpu = CpuMeter(pid, item["generator_pid"])
                    elif "progress" in item:
                        log(f"{backend}: {item['progress']}")
                        cpu.percent()  # the next phase's figures start from here
                        gc_pauses(port)
                        stalls(port)
                        if postgres:
                            postgres.since_last()
                    elif "checkpoint" in item:
                        results[f"server_rss_kb_{item['checkpoint']}"] = item["rss_kb"]
                    elif "phase" in item:
                        item["result"] |= cpu.percent()
                        item["result"]["gc_pauses"] = gc_pauses(port)
                        item["result"]["loop_stalls"] = stalls(port)
                        if postgres:
                            item["result"]["postgres_activity"] = postgres.since_last()
                        results[item["phase"]] = item["result"]
                        log(f"{backend}: {item['phase']}: {json.dumps(item['result'])}")
            finally:
                if postgres:
                    postgres.close()
        sockets = args.providers + 5  # the idle provider sockets and the seekers' round-trip sockets
        before, after = results.get("server_rss_kb_before_sockets"), results.get("server_rss_kb_sockets_open")
        if before and after:
            results["idle_sockets"] = sockets
            results["kb_per_idle_socket"] = round((after - before) / sockets, 1)
        # The steadier figure: what each further socket adds once the server is warm (the first
        # ones also pay for buffers and pools that grow once), over thousands of sockets.
        counts = sorted(int(k.rsplit("_", 1)[1]) for k in results if k.startswith("server_rss_kb_sockets_open_"))
        steps = [(sockets, after), *((n, results[f"server_rss_kb_sockets_open_{n}"]) for n in counts)]
        if after and len(steps) > 1:
            (low, low_kb), (high, high_kb) = steps[-2], steps[-1]
            results["kb_per_further_socket"] = {
                "from": low,
                "to": high,
                "kb": round((high_kb - low_kb) / (high - low), 1),
            }
        closed = results.get("assign_closed_loop")
        for suffix in ("", "_orm"):
            reference = results.get(f"reference_insert{suffix}")
            if closed and reference and reference["requests_per_second"]:
                ratio = closed["requests_per_second"] / reference["requests_per_second"]
                results[f"assign_vs_reference{suffix}"] = round(ratio, 2)
    return results


# The targets of issue 17, printed beside the figures (they live here, never in the tests).
TARGETS = {
    "assign_vs_reference": ">= 0.8",
    "end_to_end": "p50 <= 5 / p99 <= 25",
    "not_arrived": "0",
    "kb_per_socket": "<= 16",
    "fcm_ratio": ">= 0.8",
    "seed_ratio": ">= 10",
    "embedded_assign": ">= 500",
}


def table(summary: dict[str, Any]) -> str:
    rows: list[tuple[str, str, Any, str]] = []
    for run in summary["runs"]:
        b = run["backend"]
        ref, orm, closed, opened, rtt, capacity = (
            run.get(k, {})
            for k in (
                "reference_insert",
                "reference_insert_orm",
                "assign_closed_loop",
                "assign_open_loop",
                "accept_round_trip",
                "capacity",
            )
        )
        further = run.get("kb_per_further_socket", {})
        interleaved = run.get("interleaved_ratio", {})
        rows += [
            (b, "one-INSERT reference (Core), req/s", ref.get("requests_per_second"), ""),
            (b, "one-INSERT reference (ORM), req/s", orm.get("requests_per_second"), ""),
            (
                b,
                "assign-work closed loop, req/s",
                closed.get("requests_per_second"),
                TARGETS["embedded_assign"] if b == "embedded" else "",
            ),
            (b, "assign-work / reference (Core), phases apart", run.get("assign_vs_reference"), ""),
            (b, "assign-work / reference (ORM), phases apart", run.get("assign_vs_reference_orm"), ""),
            (
                b,
                f"assign-work / reference (Core), interleaved {_turns(interleaved)}",
                interleaved.get("ratios_of_medians", {}).get("assign_vs_core"),
                TARGETS["assign_vs_reference"],
            ),
            (
                b,
                f"assign-work / reference (ORM), interleaved {_turns(interleaved)}",
                interleaved.get("ratios_of_medians", {}).get("assign_vs_orm"),
                "",
            ),
            (b, "assign-work closed loop, CPU % server/PostgreSQL/Redis/generator", _cpu(closed), ""),
            (b, "assign-work closed loop, HTTP p50/p99 ms", _pair(closed.get("http_latency_ms")), ""),
            (
                b,
                f"end-to-end at {opened.get('rate_target')}/s, {opened.get('idle_sockets')} sockets, p50/p99 ms",
                _pair(opened.get("end_to_end_ms")),
                TARGETS["end_to_end"],
            ),
            (b, "end-to-end, not arrived within 5 s", opened.get("not_arrived_within_5s"), TARGETS["not_arrived"]),
            (b, "open loop errors", opened.get("errors"), "0"),
            (b, "accept round trip p50/p99 ms", _pair(rtt.get("round_trip_ms")), ""),
            (
                b,
                f"capacity: {capacity.get('idle_sockets')} sockets, end-to-end p50/p99 ms",
                _pair(capacity.get("end_to_end_ms")),
                TARGETS["end_to_end"] if capacity else "",
            ),
            (
                b,
                "capacity: not arrived within 5 s / errors",
                f"{capacity.get('not_arrived_within_5s')} / {capacity.get('errors')}" if capacity else None,
                "0 / 0" if capacity else "",
            ),
            (b, f"KB per idle socket ({run.get('idle_sockets')} sockets)", run.get("kb_per_idle_socket"), ""),
            (
                b,
                f"KB per further idle socket ({further.get('from')} -> {further.get('to')})",
                further.get("kb"),
                TARGETS["kb_per_socket"],
            ),
        ]
    if "fcm" in summary:
        fcm = summary["fcm"]
        rows += [
            ("fcm", "FCM adapter against the fake, pushes/s", fcm["pushes_per_second"], ""),
            (
                "fcm",
                "  the same with FCM_TRANSPORT=sdk, pushes/s",
                summary["fcm_sdk_transport"]["pushes_per_second"],
                "",
            ),
            ("fcm", "  plain aiohttp, same requests, same fake, pushes/s", fcm["plain_aiohttp_pushes_per_second"], ""),
            ("fcm", "  adapter / plain aiohttp", fcm["ratio_to_plain_aiohttp"], TARGETS["fcm_ratio"]),
        ]
    if seed := summary.get("seed_stack"):
        theirs, ours = seed["seed"], seed["workcast"]
        rows += [
            ("seed", "seed stack (Django + Channels), assign-work req/s", theirs["req_per_s"], ""),
            ("seed", "workcast on the seed's load generator, req/s", ours["req_per_s"], ""),
            ("seed", "workcast / seed stack", seed["ratio"], TARGETS["seed_ratio"]),
            (
                "seed",
                "order -> socket p99 ms, seed / workcast",
                f"{theirs['order_to_socket_p99_ms']} / {ours['order_to_socket_p99_ms']}",
                "",
            ),
            (
                "seed",
                "RSS KB per idle socket, seed / workcast",
                f"{theirs['rss_kb_per_idle_socket']} / {ours['rss_kb_per_idle_socket']}",
                "",
            ),
        ]
    width = max(len(r[1]) for r in rows)
    values = [str(r[2]) for r in rows]
    value_width = max(len(v) for v in values)
    lines = [f"{'backend':<9} {'figure':<{width}}  {'value':<{value_width}}  target", "-" * (width + value_width + 40)]
    lines += [
        f"{b:<9} {name:<{width}}  {value:<{value_width}}  {target}"
        for (b, name, _, target), value in zip(rows, values, strict=True)
    ]
    return "\n".join(lines)


def _turns(interleaved: dict) -> str:
    return f"({interleaved['rounds']} x {interleaved['seconds']} s turns, medians)" if interleaved else ""


def _cpu(phase: dict) -> str | None:
    parts = ("server", "postgres", "redis", "generator")
    return " / ".join(str(phase.get(f"{p}_cpu_percent")) for p in parts) if phase else None


def _pair(p: dict | None) -> str | None:
    return f"{p['p50']} / {p['p99']}" if p and p.get("p50") is not None else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small and short: under a minute")
    parser.add_argument("--backend", choices=["embedded", "postgres", "both"], default="both")
    parser.add_argument("--providers", type=int, default=1000, help="idle provider sockets")
    parser.add_argument("--seekers", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=32, help="closed-loop concurrent seekers")
    parser.add_argument("--rate", type=float, default=200, help="open-loop assignments per second")
    parser.add_argument("--duration", type=float, default=15, help="seconds per load phase")
    parser.add_argument("--round-trips", type=int, default=100)
    parser.add_argument(
        "--ratio-rounds",
        type=int,
        default=4,
        help="rounds of interleaved assign-work / yardstick turns after the closed loop (0: none)",
    )
    parser.add_argument("--ratio-seconds", type=float, default=4.0, help="length of each interleaved turn")
    parser.add_argument("--fcm-pushes", type=int, default=5000)
    parser.add_argument("--skip-closed-loop", action="store_true", help="only the open-loop latency phase")
    parser.add_argument("--latency-sockets", type=int, default=5000, help="idle sockets during the open-loop phase")
    parser.add_argument(
        "--capacity-sockets", type=int, default=10000, help="idle sockets for the capacity phase (PostgreSQL + Redis)"
    )
    parser.add_argument("--ws", default="wsproto", help="uvicorn WebSocket implementation")
    parser.add_argument(
        "--ws-compare",
        type=int,
        metavar="N",
        help="only compare uvicorn's WebSocket implementations: server KB per idle socket over N sockets",
    )
    parser.add_argument(
        "--fsync-off",
        action="store_true",
        help="PostgreSQL with fsync and synchronous_commit off (figures labelled so; the headline is fsync on)",
    )
    parser.add_argument(
        "--loop-stalls",
        type=float,
        metavar="MS",
        help="report the server's event-loop stalls over MS ms per phase, with the loop's stack (a little CPU)",
    )
    parser.add_argument(
        "--seed-stack",
        type=Path,
        help="also run the seed's own stack from this folder (e.g. ../shared/bench) and report workcast / seed",
    )
    parser.add_argument("--json", type=Path, help="also write the JSON summary to this file")
    args = parser.parse_args()
    if args.quick:
        args.providers, args.seekers, args.duration, args.round_trips, args.fcm_pushes = 200, 20, 3, 20, 1000
        args.ratio_rounds, args.ratio_seconds = 2, 1.0
        args.latency_sockets, args.capacity_sockets = 400, 0
    if args.ws_compare:
        print(json.dumps(compare_websocket_implementations(args), indent=2))
        return
    raise_open_files_limit(max(args.providers, args.latency_sockets, args.capacity_sockets) + 10_000)
    backends = ["embedded", "postgres"] if args.backend == "both" else [args.backend]
    summary: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "settings": {k: v for k, v in vars(args).items() if k != "json"}
        | {
            "postgres": "local, fsync=off, synchronous_commit=off (--fsync-off: NOT durable)"
            if args.fsync_off
            else "local, PostgreSQL defaults: fsync=on, synchronous_commit=on (durable)",
        },
        "runs": [run_backend(b, args) for b in backends],
    }
    from bench.fcm_throughput import measure

    log("FCM adapter throughput against the fake FCM server (FCM_TRANSPORT=aiohttp, the default, and sdk)")
    summary["fcm"] = asyncio.run(measure(args.fcm_pushes, 100))
    summary["fcm_sdk_transport"] = asyncio.run(measure(args.fcm_pushes, 100, "sdk"))
    if args.seed_stack:
        from bench.seed_ratio import compare

        log(f"the seed stack from {args.seed_stack}, then workcast, on its PostgreSQL (fsync on) and Redis")
        summary["seed_stack"] = compare(args.seed_stack, args.providers, args.concurrency, max(args.duration, 10))
    print(table(summary))
    print(json.dumps(summary, indent=2, default=str))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2, default=str))


if __name__ == "__main__":
    main()
