"""Retention at volume (PostgreSQL, fsync on): do the hot queries keep their speed with 10 million
notifications, and does the sweep hurt assign-work while it deletes a day's worth?

    .venv/bin/python -m bench.retention_volume [--notifications 10000000] [--seconds 15]

1. A fresh database: time the replay query on connect, a user's history page, the dispatcher's due
   query and assign-work (HTTP, closed loop, 4 at a time).
2. Bulk-load N notifications over 1,000,000 closed orders, created 27 to 31 days ago (90% acknowledged),
   VACUUM ANALYZE, and time the same again (target: within 1.5x of the fresh figures).
3. With NOTIFICATION_RETENTION_DAYS=30 the oldest day is past retention: run the sweep in a loop until it
   is gone while assign-work runs, and time assign-work meanwhile (target p99 within 2x).
Table and index sizes before and after are reported. Query timings are the repositories' own calls.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta

import httpx
import psycopg

from bench.run import bench_server, infrastructure, log, seed_users

ASSIGN_CONCURRENCY = 4


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered), 2),
        "p99_ms": round(ordered[max(0, int(len(ordered) * 0.99) - 1)], 2),
        "n": len(ordered),
    }


async def assign_load(port: int, seeker: dict, provider: dict, seconds: float) -> dict:
    body = {"provider_id": provider["id"], "service_type": "worker", "latitude": 40.4, "longitude": -3.7}
    headers = {"Authorization": f"Bearer {seeker['token']}"}
    latencies: list[float] = []
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=60) as http:
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                answer = await http.post("/api/1/profiles/assign-work/", json=body)
                assert answer.status_code == 201, answer.text
                latencies.append((time.perf_counter() - started) * 1000)

        await asyncio.gather(*(worker() for _ in range(ASSIGN_CONCURRENCY)))
    return percentiles(latencies) | {"per_second": round(len(latencies) / seconds)}


async def query_timings(env: dict, user_id: int, rounds: int = 200) -> dict:
    from entrypoints.container import build_container, close
    from entrypoints.settings import Settings

    container = build_container(Settings.from_env(env))
    uow_factory = container.unit_of_work
    now = datetime.now(UTC)
    timings: dict[str, list[float]] = {"replay_on_connect": [], "history_page": [], "dispatcher_due": []}
    try:
        for _ in range(rounds):
            for name, query in (
                (
                    "replay_on_connect",
                    lambda uow: uow.notifications.replay_for_user(user_id, now - timedelta(hours=24), now, 101),
                ),
                ("history_page", lambda uow: uow.notifications.list_for_user(user_id, 20, None)),
                ("dispatcher_due", lambda uow: uow.notifications.claim_due(now, 100)),  # rolled back: nothing claimed
            ):
                async with uow_factory() as uow:
                    started = time.perf_counter()
                    await query(uow)
                    timings[name].append((time.perf_counter() - started) * 1000)
    finally:
        await close(container)
    return {name: percentiles(samples) for name, samples in timings.items()}


def sizes(dsn: str) -> dict:
    with psycopg.connect(dsn) as db:
        row = db.execute(
            "SELECT count(*), pg_table_size('notifications'), pg_indexes_size('notifications') FROM notifications"
        ).fetchone()
    return {"notifications": row[0], "table_mb": round(row[1] / 2**20), "indexes_mb": round(row[2] / 2**20)}


def bulk_load(dsn: str, notifications: int, seeker_id: int, provider_ids: list[int]) -> float:
    started = time.perf_counter()
    orders = max(1, notifications // 10)
    first, last = min(provider_ids), max(provider_ids)
    with psycopg.connect(dsn, autocommit=True) as db:
        db.execute(
            """
            INSERT INTO work_orders (seeker_id, provider_id, service_type, message, distance, latitude, longitude,
                                     status, created_at, expires_at, responded_at, closed_at)
            SELECT %s, %s + (i %% (%s - %s + 1)), 'worker', '', '', 40.4, -3.7, 'completed',
                   now() - interval '31 days' + (i * interval '4 days' / %s),
                   now() - interval '31 days' + (i * interval '4 days' / %s) + interval '10 minutes', NULL,
                   now() - interval '31 days' + (i * interval '4 days' / %s) + interval '1 hour'
            FROM generate_series(1, %s) AS i
            """,
            (seeker_id, first, last, first, orders, orders, orders, orders),
        )
        low = db.execute("SELECT min(id) FROM work_orders WHERE status = 'completed'").fetchone()[0]
        db.execute(
            """
            INSERT INTO notifications (recipient_id, kind, work_id, payload, created_at, push_state, socket_state,
                                       attempts, delivered_at)
            SELECT %s + (i %% (%s - %s + 1)), 'work_assigned', %s + (i / 10),
                   '{"work_id": 1, "service_type": "worker", "status": "completed"}'::json,
                   now() - interval '31 days' + (i * interval '4 days' / %s), 'sent', 'sent', 1,
                   CASE WHEN i %% 10 = 0 THEN NULL
                        ELSE now() - interval '31 days' + (i * interval '4 days' / %s) + interval '2 seconds' END
            FROM generate_series(0, %s - 1) AS i
            """,
            (first, last, first, low, notifications, notifications, notifications),
        )
        db.execute("VACUUM ANALYZE notifications")
        db.execute("VACUUM ANALYZE work_orders")
    return time.perf_counter() - started


async def sweep_until_done(env: dict) -> tuple[int, float]:
    from entrypoints.container import build_container, close
    from entrypoints.settings import Settings

    container = build_container(Settings.from_env(env))
    started, deleted = time.perf_counter(), 0
    try:
        sweep = container.sweep_old_records()
        while True:
            count, backlog = await sweep.execute()
            deleted += count
            if not backlog:
                return deleted, time.perf_counter() - started
    finally:
        await close(container)


async def during_sweep(env: dict, port: int, seeker: dict, provider: dict) -> tuple[dict, int, float]:
    sweeping = asyncio.create_task(sweep_until_done(env))
    samples: list[dict] = []
    while not sweeping.done():
        samples.append(await assign_load(port, seeker, provider, 5))
    deleted, seconds = await sweeping
    return samples, deleted, seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--notifications", type=int, default=10_000_000)
    parser.add_argument("--seconds", type=float, default=15)
    args = parser.parse_args()
    result: dict = {}
    with infrastructure("postgres") as env:
        env |= {"NOTIFICATION_RETENTION_DAYS": "30", "DISPATCHER_ENABLED": "false"}
        providers, (seeker,) = asyncio.run(seed_users(env, 200, 1))
        dsn = env["DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://")
        user = providers[1]["id"]
        with bench_server(env, "wsproto") as (port, _):
            result["fresh"] = {
                "queries": asyncio.run(query_timings(env, user)),
                "assign_work": asyncio.run(assign_load(port, seeker, providers[0], args.seconds)),
                "sizes": sizes(dsn),
            }
            log(json.dumps(result["fresh"]))
            log(f"loading {args.notifications:,} notifications")
            loaded = bulk_load(dsn, args.notifications, seeker["id"], [p["id"] for p in providers])
            result["load_seconds"] = round(loaded)
            result["loaded"] = {
                "queries": asyncio.run(query_timings(env, user)),
                "assign_work": asyncio.run(assign_load(port, seeker, providers[0], args.seconds)),
                "sizes": sizes(dsn),
            }
            log(json.dumps(result["loaded"]))
            samples, deleted, seconds = asyncio.run(during_sweep(env, port, seeker, providers[0]))
            result["sweep"] = {
                "deleted_rows": deleted,
                "seconds": round(seconds),
                "assign_work_during": samples,
                "sizes_after": sizes(dsn),
            }
            log(json.dumps(result["sweep"]))
    fresh, loaded = result["fresh"], result["loaded"]
    print("| figure | fresh | 10M rows | ratio (target) |")
    print("| --- | --- | --- | --- |")
    for name in fresh["queries"]:
        a, b = fresh["queries"][name]["p99_ms"], loaded["queries"][name]["p99_ms"]
        print(f"| {name} p99 | {a} ms | {b} ms | {b / a:.2f}x (<= 1.5x) |")
    a, b = fresh["assign_work"]["p99_ms"], loaded["assign_work"]["p99_ms"]
    print(f"| assign-work p99 | {a} ms | {b} ms | {b / a:.2f}x (<= 1.5x) |")
    worst = max(s["p99_ms"] for s in result["sweep"]["assign_work_during"])
    print(f"| assign-work p99 during the sweep (worst 5 s) | {b} ms | {worst} ms | {worst / b:.2f}x (<= 2x) |")
    print(json.dumps(result), file=sys.stderr)


if __name__ == "__main__":
    main()
