"""Nearby search at scale: active providers spread over a 100 km x 100 km city, asked through the HTTP API.

    .venv/bin/python -m bench.geo_search [--sizes 10000,100000,1000000] [--embedded-size 100000]
                                          [--requests 300] [--compare-postgis]

For each size: bulk-load the providers, build the spatial index (timed, with its size), then ask
``GET /api/1/profiles/active-providers/?latitude=..&longitude=..&limit=20`` (no radius) and the same with
``radius_km=5`` from random points of the city, one request at a time, and report p50/p99. PostgreSQL runs
with its durable defaults. ``--compare-postgis`` (needs postgresql-15-postgis-3) also times PostGIS
``geography`` + GiST KNN on the same points in SQL, beside ``cube``'s, to back the choice in docs/geo.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import sqlite3
import statistics
import sys
import time
from pathlib import Path

import httpx
import psycopg

from bench.run import bench_server, infrastructure, log, seed_users

CENTRE = (40.4168, -3.7038)  # Madrid
HALF_SIDE_KM = 50.0
TARGETS = {"postgres": 15.0, "embedded": 30.0}  # p99 ms (the geo issue)
BEFORE = {  # main before the spatial index, PostgreSQL (from the issue): nearest 20, within 5 km
    10_000: (171, 8),
    100_000: (2020, 30),
    1_000_000: (1749, 216),
}


def city_span() -> tuple[float, float]:
    dlat = math.degrees(HALF_SIDE_KM / 6371.0088)
    dlon = dlat / math.cos(math.radians(CENTRE[0]))
    return dlat, dlon


def random_point(rng: random.Random) -> tuple[float, float]:
    dlat, dlon = city_span()
    return CENTRE[0] + rng.uniform(-dlat, dlat), CENTRE[1] + rng.uniform(-dlon, dlon)


def load_postgres(url: str, size: int) -> dict:
    dlat, dlon = city_span()
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as db:
        db.execute("DELETE FROM profiles WHERE role = 'provider'")
        db.execute("DROP INDEX IF EXISTS ix_profiles_provider_position")
        started = time.perf_counter()
        db.execute(
            """
            INSERT INTO profiles (role, name, mobile, is_active_for_work, latitude, longitude)
            SELECT 'provider', 'P' || i, '900', true, %s + (random() * 2 - 1) * %s, %s + (random() * 2 - 1) * %s
            FROM generate_series(1, %s) AS i
            """,
            (CENTRE[0], dlat, CENTRE[1], dlon, size),
        )
        db.execute(
            "UPDATE profiles SET geo_x = cos(radians(latitude)) * cos(radians(longitude)), "
            "geo_y = cos(radians(latitude)) * sin(radians(longitude)), geo_z = sin(radians(latitude)), "
            "external_id = id::text WHERE role = 'provider'"
        )
        loaded = time.perf_counter() - started
        started = time.perf_counter()
        db.execute(
            "CREATE INDEX ix_profiles_provider_position ON profiles USING gist (cube(ARRAY[geo_x, geo_y, geo_z])) "
            "WHERE role = 'provider' AND is_active_for_work AND geo_x IS NOT NULL"
        )
        built = time.perf_counter() - started
        db.execute("VACUUM ANALYZE profiles")
        size_bytes = db.execute("SELECT pg_relation_size('ix_profiles_provider_position')").fetchone()[0]
    return {"load_s": round(loaded, 1), "index_build_s": round(built, 2), "index_mb": round(size_bytes / 2**20, 1)}


def load_sqlite(path: Path, size: int, rng: random.Random) -> dict:
    db = sqlite3.connect(path)
    rows = []
    for i in range(size):
        lat, lon = random_point(rng)
        rlat, rlon = math.radians(lat), math.radians(lon)
        vector = (math.cos(rlat) * math.cos(rlon), math.cos(rlat) * math.sin(rlon), math.sin(rlat))
        rows.append(("provider", f"P{i}", "900", 1, lat, lon, *vector, f"p{i}"))
    started = time.perf_counter()
    with db:
        db.executemany(
            "INSERT INTO profiles (role, name, mobile, is_active_for_work, latitude, longitude, geo_x, geo_y, geo_z,"
            " external_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    loaded = time.perf_counter() - started
    started = time.perf_counter()
    with db:  # the index alone, rebuilt from the table: what the migration does on an existing database
        db.execute("DELETE FROM provider_positions")
        db.execute(
            "INSERT INTO provider_positions SELECT id, geo_x, geo_x, geo_y, geo_y, geo_z, geo_z FROM profiles "
            "WHERE role = 'provider' AND is_active_for_work AND geo_x IS NOT NULL"
        )
    built = time.perf_counter() - started
    pages = sum(
        db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        for table in ("provider_positions_node",)  # one row per R*Tree node, each one page of the file
    )
    page_size = db.execute("PRAGMA page_size").fetchone()[0]
    db.execute("ANALYZE")
    db.close()
    return {
        "load_s": round(loaded, 1),
        "index_build_s": round(built, 2),
        "index_mb": round(pages * page_size / 2**20, 1),
    }


def measure(port: int, token: str, requests: int, rng: random.Random, radius: float | None) -> dict:
    latencies = []
    found = []
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"}) as http:
        for i in range(requests + 20):
            lat, lon = random_point(rng)
            params = {"latitude": lat, "longitude": lon, "limit": 20} | ({"radius_km": radius} if radius else {})
            started = time.perf_counter()
            answer = http.get("/api/1/profiles/active-providers/", params=params)
            elapsed = (time.perf_counter() - started) * 1000
            assert answer.status_code == 200, answer.text
            if i >= 20:  # the first ones warm the caches and the connection pool
                latencies.append(elapsed)
                found.append(answer.json()["data"]["count"])
    latencies.sort()
    return {
        "p50_ms": round(statistics.median(latencies), 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1], 2),
        "mean_found": round(statistics.mean(found), 1),
    }


def compare_postgis(url: str, rng: random.Random, queries: int = 300) -> dict:
    """The same providers, indexed by PostGIS geography + GiST, nearest 20 by KNN: SQL only, both engines, the
    bare KNN query (no tie-break by id: a second ORDER BY key defeats either index's KNN scan)."""
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as db:
        db.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        db.execute("DROP TABLE IF EXISTS postgis_positions")
        db.execute(
            "CREATE TABLE postgis_positions AS SELECT id, geography(ST_MakePoint(longitude, latitude)) AS place "
            "FROM profiles WHERE role = 'provider' AND is_active_for_work"
        )
        started = time.perf_counter()
        db.execute("CREATE INDEX ON postgis_positions USING gist (place)")
        built = time.perf_counter() - started
        db.execute("VACUUM ANALYZE postgis_positions")
        index_bytes = db.execute("SELECT pg_indexes_size('postgis_positions')").fetchone()[0]
        timings: dict[str, list[float]] = {"postgis": [], "cube": []}
        for _ in range(queries):
            lat, lon = random_point(rng)
            rlat, rlon = math.radians(lat), math.radians(lon)
            x, y, z = math.cos(rlat) * math.cos(rlon), math.cos(rlat) * math.sin(rlon), math.sin(rlat)
            for name, sql, params in (
                (
                    "postgis",
                    "SELECT id FROM postgis_positions ORDER BY place <-> geography(ST_MakePoint(%s, %s)) LIMIT 20",
                    (lon, lat),
                ),
                (
                    "cube",
                    "SELECT id FROM profiles WHERE role = 'provider' AND is_active_for_work AND geo_x IS NOT NULL "
                    "ORDER BY cube(ARRAY[geo_x, geo_y, geo_z]) <-> cube(ARRAY[%s, %s, %s]::float8[]) LIMIT 20",
                    (x, y, z),
                ),
            ):
                started = time.perf_counter()
                db.execute(sql, params).fetchall()
                timings[name].append((time.perf_counter() - started) * 1000)
        db.execute("DROP TABLE postgis_positions")
    result = {"postgis_index_build_s": round(built, 2), "postgis_index_mb": round(index_bytes / 2**20, 1)}
    for name, samples in timings.items():
        samples.sort()
        result[f"{name}_sql_p50_ms"] = round(statistics.median(samples), 3)
        result[f"{name}_sql_p99_ms"] = round(samples[int(len(samples) * 0.99) - 1], 3)
    return result


def run_backend(backend: str, sizes: list[int], requests: int, postgis: bool) -> list[dict]:
    rng = random.Random(14)
    rows = []
    with infrastructure(backend) as env:
        _, (seeker,) = asyncio.run(seed_users(env, 0, 1))
        for size in sizes:
            log(f"{backend}: loading {size:,} active providers")
            if backend == "postgres":
                built = load_postgres(env["DATABASE_URL"], size)
            else:
                built = load_sqlite(Path(env["WORKCAST_DATA_DIR"]) / "workcast.sqlite3", size, rng)
            row = {"backend": backend, "providers": size, **built}
            with bench_server(env, "wsproto") as (port, _):
                row["nearest_20"] = measure(port, seeker["token"], requests, rng, None)
                row["within_5_km"] = measure(port, seeker["token"], requests, rng, 5.0)
            if postgis and backend == "postgres":
                row["postgis_comparison"] = compare_postgis(env["DATABASE_URL"], rng)
            row["target_p99_ms"] = TARGETS[backend]
            if backend == "postgres" and size in BEFORE:
                row["before_ms"] = dict(zip(("nearest_20", "within_5_km"), BEFORE[size], strict=True))
            log(json.dumps(row))
            rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    lines = [
        "| backend | active providers | nearest 20 p50 / p99 | within 5 km p50 / p99 | target p99 "
        "| before (nearest, 5 km) | index build | index size |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        before = r.get("before_ms")
        before_text = f"{before['nearest_20']} / {before['within_5_km']} ms" if before else "-"
        lines.append(
            f"| {r['backend']} | {r['providers']:,} | {r['nearest_20']['p50_ms']} / {r['nearest_20']['p99_ms']} ms "
            f"| {r['within_5_km']['p50_ms']} / {r['within_5_km']['p99_ms']} ms | {r['target_p99_ms']:g} ms "
            f"| {before_text} "
            f"| {r['index_build_s']} s | {r['index_mb']} MB |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--embedded-size", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--compare-postgis", action="store_true")
    parser.add_argument("--backend", choices=["postgres", "embedded", "both"], default="both")
    args = parser.parse_args()
    rows = []
    if args.backend in ("postgres", "both"):
        sizes = [int(s) for s in args.sizes.split(",")]
        rows += run_backend("postgres", sizes, args.requests, args.compare_postgis)
    if args.backend in ("embedded", "both"):
        rows += run_backend("embedded", [args.embedded_size], args.requests, False)
    print(table(rows))
    print(json.dumps(rows), file=sys.stderr)


if __name__ == "__main__":
    main()
