"""Import rate: ``workcast import`` of N NDJSON lines (half providers with a location and an FCM token),
on the embedded default and on PostgreSQL with its durable defaults (fsync on), in one run.

    .venv/bin/python -m bench.import_rate [--lines 100000] [--backend embedded|postgres|both]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.fixtures.servers import create_database, postgres_server

TARGET_SECONDS = 60.0  # 100,000 lines in under a minute (the identity issue's target)


def write_lines(path: Path, lines: int) -> None:
    with path.open("w") as out:
        for i in range(lines):
            record = {"external_id": f"firebase-uid-{i:08d}", "role": "seeker", "name": f"Name {i}", "mobile": "+34600"}
            if i % 2:
                record |= {
                    "role": "provider",
                    "is_active_for_work": True,
                    "latitude": 40 + (i % 1000) / 1000,
                    "longitude": -3.7,
                    "fcm_token": f"fcm-{i:08d}-" + "x" * 150,
                }
            out.write(json.dumps(record) + "\n")


def run_import(path: Path, env: dict[str, str]) -> dict:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "entrypoints.cli", "import", str(path)],
        env={**os.environ, "LOG_LEVEL": "WARNING", **env},
        capture_output=True,
        text=True,
        check=True,
    )
    seconds = time.perf_counter() - started
    report = json.loads(done.stdout)
    return {
        "lines": report["lines"],
        "created": report["created"],
        "rejected": report["rejected"],
        "seconds_with_start": round(seconds, 1),
        "lines_per_second": round(report["lines"] / seconds),
        "target": f"< {TARGET_SECONDS:.0f} s for 100,000",
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--backend", choices=["embedded", "postgres", "both"], default="both")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="workcast-import-"))
    source = work / "profiles.ndjson"
    write_lines(source, args.lines)
    results = {"file_mb": round(source.stat().st_size / 2**20, 1)}
    if args.backend in ("embedded", "both"):
        results["embedded"] = run_import(source, {"WORKCAST_DATA_DIR": str(work / "embedded"), "DATABASE_URL": ""})
    if args.backend in ("postgres", "both"):
        with postgres_server(durable=True) as pg:
            url = create_database(pg, "workcast_import")
            migrate = [sys.executable, "-m", "entrypoints.cli", "migrate"]
            subprocess.run(migrate, env={**os.environ, "DATABASE_URL": url},
                           check=True, capture_output=True)  # fmt: skip
            results["postgres_fsync_on"] = run_import(source, {"DATABASE_URL": url, "JWT_SECRET": "b" * 40})
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
