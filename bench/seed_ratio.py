"""workcast against the seed's own stack (Django + Channels + channels_redis), side by side in one run.

    .venv/bin/python -m bench.seed_ratio --seed-stack ../shared/bench [--providers 1000] [--concurrency 32]
                                         [--duration 20]

Both run as one server process on the same PostgreSQL 15 (fsync on, its defaults) and the same Redis,
started by the seed stack's ``infra.sh``, and are driven by the seed stack's own contract load generator
(``loadgen.py``: idle provider sockets, closed-loop assign-work, end-to-end latency to the provider's
socket, RSS per idle socket). The two run one after the other (``workcast serve``, uvloop and httptools as it
picks them), ``--rounds`` times each in the order seed, workcast, workcast, seed: the machine's speed drifts
within minutes, and alternating weighs the drift on both alike. Prints both and the ratio of the medians; the
target is >= 10x the seed per process (issue 17).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
from tests.fixtures.servers import free_port

from bench.run import JWT_SECRET, UNLIMITED, log, seed_users

TARGET_RATIO = 10.0


def sh(*command: str, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command, check=True, text=True, env={**os.environ, **(env or {})}, **kwargs)


def last_json_line(text: str) -> dict:
    return json.loads([line for line in text.splitlines() if line.startswith("{")][-1])


def load_shape(args) -> list[str]:
    """The load generator's arguments both stacks are driven with."""
    return [
        "--providers",
        str(args.providers),
        "--concurrency",
        str(args.concurrency),
        "--duration",
        str(args.duration),
    ]


def run_seed(stack: Path, bench_dir: Path, args) -> dict:
    log("seed stack: migrate, users, run")
    sh(str(stack / "infra.sh"), "reset-db", env={"BENCH_DIR": str(bench_dir)})
    sh(str(stack / "seed_django" / "serve.sh"), "migrate", env={"BENCH_DIR": str(bench_dir)}, capture_output=True)
    sh(
        str(stack / "seed_django" / "serve.sh"),
        "users",
        str(args.providers),
        "100",
        str(bench_dir / "users.json"),
        env={"BENCH_DIR": str(bench_dir)},
        capture_output=True,
    )
    done = sh(
        str(stack / "run_baseline.sh"),
        "uvicorn",
        "seed-ratio",
        *load_shape(args),
        env={"BENCH_DIR": str(bench_dir)},
        capture_output=True,
    )
    return last_json_line(done.stdout)


def run_workcast(stack: Path, bench_dir: Path, args) -> dict:
    database = "workcast_ratio"
    pg = ["runuser", "-u", "postgres", "--", "/usr/lib/postgresql/15/bin/psql", "-h", "127.0.0.1", "-p", "54341"]
    sh(*pg, "-U", "postgres", "-qc", f"DROP DATABASE IF EXISTS {database}", capture_output=True)
    sh(*pg, "-U", "postgres", "-qc", f"CREATE DATABASE {database}", capture_output=True)
    subprocess.run(["redis-cli", "-p", "6380", "flushall"], check=True, capture_output=True)
    data_dir = bench_dir / "workcast"
    data_dir.mkdir(exist_ok=True)
    env = {
        "DATABASE_URL": f"postgresql+psycopg://postgres@127.0.0.1:54341/{database}",
        "REDIS_URL": "redis://127.0.0.1:6380/0",
        "WORKCAST_DATA_DIR": str(data_dir),
        "JWT_SECRET": JWT_SECRET,
        "LOG_LEVEL": "WARNING",
        "PUSH_BACKEND": "none",
        "WORK_TIME_TO_ANSWER_SECONDS": "3600",
        "AUTO_MIGRATE": "true",
        **UNLIMITED,
    }
    log("workcast: users")
    providers, seekers = asyncio.run(seed_users(env, args.providers, 100))
    users = [{"user_id": p["id"], "user_type": "provider", "token": p["token"]} for p in providers]
    users += [{"user_id": s["id"], "user_type": "seeker", "token": s["token"]} for s in seekers]
    users_file = bench_dir / "workcast-users.json"
    users_file.write_text(json.dumps(users))
    port = free_port()
    with open(bench_dir / "workcast-server.log", "ab") as server_log:
        server = subprocess.Popen(
            [sys.executable, "-m", "entrypoints.cli", "serve", "--port", str(port), "--workers", str(args.workers)],
            env={**os.environ, **env},
            stdout=server_log,
            stderr=subprocess.STDOUT,
        )
    try:
        for _ in range(300):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=0.5).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        pg_pid = (bench_dir / "pg" / "data" / "postmaster.pid").read_text().split()[0]
        redis_pid = (bench_dir / "redis" / "redis.pid").read_text().strip()
        log("workcast: run")
        done = sh(
            str(bench_dir / "venv-loadgen" / "bin" / "python"),
            str(stack / "loadgen.py"),
            "--base-url",
            f"http://127.0.0.1:{port}",
            "--users",
            str(users_file),
            "--server-pid",
            str(server.pid),
            "--watch-pid",
            f"postgres={pg_pid}",
            "--watch-pid",
            f"redis={redis_pid}",
            "--label",
            "workcast",
            *load_shape(args),
            capture_output=True,
        )
        return last_json_line(done.stdout)
    finally:
        server.terminate()
        server.wait(30)


def figures(summary: dict) -> dict:
    memory = summary.get("server_memory", {})
    return {
        "req_per_s": summary["http"]["rps"],
        "errors": summary["http"]["errors"],
        "order_to_socket_p99_ms": summary["e2e_work_assigned"]["latency_ms"].get("p99"),
        "not_within_5s": summary["e2e_work_assigned"]["not_within_ws_timeout"],
        "rss_kb_per_idle_socket": memory.get("rss_kb_per_idle_socket"),
    }


def compare(
    stack: Path,
    providers: int,
    concurrency: int,
    duration: float,
    workers: int = 1,
    seed: bool = True,
    rounds: int = 2,
) -> dict:
    """Run the seed stack and workcast on the seed stack's infrastructure, ``rounds`` times each in the order
    seed, workcast, workcast, seed, ... (so a drift of the machine's speed within the run weighs on both alike);
    each one's figures with its median req/s, and the ratio of the medians."""
    stack = stack.resolve()
    bench_dir = Path(os.environ.get("BENCH_DIR", "/tmp/bench"))
    args = argparse.Namespace(providers=providers, concurrency=concurrency, duration=duration, workers=workers)
    sh(str(stack / "infra.sh"), "setup", env={"BENCH_DIR": str(bench_dir)}, capture_output=True)
    sh(str(stack / "infra.sh"), "start", env={"BENCH_DIR": str(bench_dir)}, capture_output=True)
    runs: dict[str, list[dict]] = {"seed": [], "workcast": []}
    try:
        for round_number in range(rounds):
            order = ["seed", "workcast"] if round_number % 2 == 0 else ["workcast", "seed"]
            for who in order:
                if who == "seed" and not seed:
                    continue
                run = run_seed if who == "seed" else run_workcast
                runs[who].append(figures(run(stack, bench_dir, args)))
                log(f"{who}, round {round_number + 1}: {runs[who][-1]}")
    finally:
        sh(str(stack / "infra.sh"), "stop", env={"BENCH_DIR": str(bench_dir)}, capture_output=True)
    theirs, ours = _median_run(runs["seed"]), _median_run(runs["workcast"])
    ratio = round(ours["req_per_s"] / theirs["req_per_s"], 2) if theirs and theirs["req_per_s"] else None
    return {
        "seed": theirs,
        "workcast": ours,
        "ratio": ratio,
        "workers": workers,
        "target_ratio": TARGET_RATIO,
        "rounds": runs,
    }


def _median_run(runs: list[dict]) -> dict | None:
    """The run's figures, its req/s the median of the rounds' (``median_of`` how many)."""
    if not runs:
        return None
    return runs[0] | {
        "req_per_s": round(statistics.median(r["req_per_s"] for r in runs), 1),
        "median_of": len(runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed-stack", type=Path, required=True, help="the folder with infra.sh and loadgen.py")
    parser.add_argument("--providers", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--duration", type=float, default=20)
    parser.add_argument("--workers", type=int, default=1, help="workcast serve --workers (the seed runs one)")
    parser.add_argument("--skip-seed", action="store_true", help="workcast only (e.g. to compare --workers)")
    parser.add_argument(
        "--rounds", type=int, default=2, help="runs of each, alternating (seed, workcast, workcast, ...)"
    )
    args = parser.parse_args()
    found = compare(
        args.seed_stack, args.providers, args.concurrency, args.duration, args.workers, not args.skip_seed, args.rounds
    )
    seed, ours = found["seed"], found["workcast"]
    if seed is None:
        print(json.dumps({"workcast": ours, "workers": args.workers}))
        return
    print("| | seed stack | workcast | ratio |")
    print("| --- | --- | --- | --- |")
    target = f"target >= {TARGET_RATIO:g}x"
    print(f"| assign-work req/s | {seed['req_per_s']} | {ours['req_per_s']} | {found['ratio']}x ({target}) |")
    print(f"| order -> socket p99 | {seed['order_to_socket_p99_ms']} ms | {ours['order_to_socket_p99_ms']} ms | |")
    print(f"| RSS per idle socket | {seed['rss_kb_per_idle_socket']} KB | {ours['rss_kb_per_idle_socket']} KB | |")
    lost = (f"{who['errors']} / {who['not_within_5s']}" for who in (seed, ours))
    print("| errors / not within 5 s | {} | {} | |".format(*lost))
    print(json.dumps(found), file=sys.stderr)


if __name__ == "__main__":
    main()
