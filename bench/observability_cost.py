"""What metrics, the audit trail and rate limits cost assign-work: ``python -m bench.observability_cost``.

One run, one machine, the variants interleaved round by round (the machine's speed drifts between
hours, not between neighbouring rounds): the full service; metric recording switched off; the audit
trail's INSERTs switched off (``BENCH_WITHOUT``, bench/server.py); the per-user rate limits off (in the
other variants they are on, far above the load: what is measured is the check itself). Reported:
closed-loop assign-work req/s per variant (median of the rounds) and each as a ratio to the full one.
PostgreSQL runs durable (fsync and synchronous_commit on), with Redis, as in production.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import statistics
import tempfile
import timeit
from pathlib import Path

from tests.fixtures.servers import create_database, postgres_server, redis_server

from bench.run import JWT_SECRET, UNLIMITED, CpuMeter, bench_server, load_generator, log, seed_users

LIMITS_OFF = {name: "off" for name in ("RATE_LIMIT_ASSIGN", "RATE_LIMIT_WRITE", "RATE_LIMIT_READ")}
# name -> (parts switched off in bench/server.py, settings changed)
VARIANTS: dict[str, tuple[str, dict[str, str]]] = {
    "full": ("", {}),
    "metrics off": ("metrics", {}),
    "audit off": ("audit", {}),
    "rate limits off": ("", LIMITS_OFF),
}


@contextlib.contextmanager
def durable_postgres():
    data_dir = Path(tempfile.mkdtemp(prefix="workcast-obs-"))
    try:
        with postgres_server(durable=True) as pg, redis_server() as redis:
            yield {
                "WORKCAST_DATA_DIR": str(data_dir),
                "JWT_SECRET": JWT_SECRET,
                "LOG_LEVEL": "WARNING",
                "PUSH_BACKEND": "log",
                "WORK_TIME_TO_ANSWER_SECONDS": "3600",
                **UNLIMITED,
                "DATABASE_URL": create_database(pg, "workcast_obs"),
                "REDIS_URL": redis.url,
                "AUTO_MIGRATE": "true",
            }
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def one_round(env: dict, variant: tuple[str, dict[str, str]], providers, seekers, args) -> tuple[float, float]:
    """(assign-work req/s, server CPU microseconds per request) for one variant."""
    plan = {
        "providers": providers,
        "seekers": seekers,
        "idle_sockets": args.sockets,
        "concurrency": args.concurrency,
        "duration": args.duration,
        "rate": 1,
        "round_trips": 0,
        "closed_loop": True,
        "latency_sockets": 0,
        "capacity_sockets": 0,
    }
    without, settings = variant
    with bench_server(env | settings | {"BENCH_WITHOUT": without}, "wsproto") as (port, pid):
        for item in load_generator(port, pid, plan, timeout=600):
            if "generator_pid" in item:
                cpu = CpuMeter(pid, item["generator_pid"])
            elif "progress" in item:
                cpu.percent()  # the assign phase's figures start here
            elif item.get("phase") == "assign_closed_loop":
                rps = item["result"]["requests_per_second"]
                return rps, cpu.percent()["server_cpu_percent"] / 100 / rps * 1e6
    raise RuntimeError("the load generator reported no assign-work phase")


def recording_cost_us() -> float:
    """Microseconds of metric recording one assign-work causes: the calls it makes, timed in a loop."""
    from adapters.prometheus.metrics import PrometheusMetrics

    metrics = PrometheusMetrics()

    def one_assign_work() -> None:
        metrics.http_request("POST", "/api/1/profiles/assign-work", 201, 0.004)
        metrics.notification_created("work_assigned")
        metrics.channel_outcome("socket", "sent", 0.002)
        metrics.channel_outcome("push", "sent", 0.05)

    n = 50_000
    return timeit.timeit(one_assign_work, number=n) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--sockets", type=int, default=200, help="idle provider sockets (offers go to them)")
    args = parser.parse_args()
    found: dict[str, list[float]] = {name: [] for name in VARIANTS}
    cpu_per_request: dict[str, list[float]] = {name: [] for name in VARIANTS}
    with durable_postgres() as env:
        providers, seekers = asyncio.run(seed_users(env, args.sockets, 50))
        for round_number in range(args.rounds):
            names = list(VARIANTS)
            names = names[round_number % len(names) :] + names[: round_number % len(names)]  # rotate the order
            for name in names:
                rps, cpu_us = one_round(env, VARIANTS[name], providers, seekers, args)
                found[name].append(rps)
                cpu_per_request[name].append(cpu_us)
                log(f"round {round_number + 1}: {name}: {rps:.0f} req/s, server {cpu_us:.0f} us CPU per request")
    full = statistics.median(found["full"])
    summary = {
        name: {"rounds_req_per_s": [round(r) for r in runs], "median": round(statistics.median(runs)),
               "ratio_to_full": round(statistics.median(runs) / full, 3),
               "server_cpu_us_per_request": round(statistics.median(cpu_per_request[name]))}
        for name, runs in found.items()
    }  # fmt: skip
    recording = recording_cost_us()
    full_cpu = statistics.median(cpu_per_request["full"])
    print(
        json.dumps(
            {
                "postgres": "durable (fsync on)",
                "settings": vars(args),
                "assign_work": summary,
                "metric_recording_us_per_assign_work": round(recording, 2),
                "metric_recording_share_of_server_cpu": round(recording / full_cpu, 4),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
