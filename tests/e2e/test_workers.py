"""``workcast serve --workers N``: several uvicorn worker processes on PostgreSQL + Redis, with /metrics
adding up every worker's counts; refused on the embedded default."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import BASE_ENV
from tests.fixtures.servers import free_port


def health_count(text: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "workcast_http_requests_total" and sample.labels.get("route") == "/health":
                return sample.value
    return 0.0


def test_several_workers_is_refused_on_the_embedded_default(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "entrypoints.cli", "serve", "--workers", "2", "--port", str(free_port())],
        env={**os.environ, **BASE_ENV, "WORKCAST_DATA_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "DATABASE_URL" in done.stderr and "REDIS_URL" in done.stderr


@pytest.mark.postgres
def test_two_workers_serve_and_metrics_add_up_across_them(postgres_url, redis_url, tmp_path):
    port = free_port()
    env = {
        **os.environ,
        **BASE_ENV,
        "DATABASE_URL": postgres_url,
        "REDIS_URL": redis_url,
        "REDIS_KEY_PREFIX": f"workers{port}",
        "JWT_SECRET": "w" * 40,
        "AUTO_MIGRATE": "false",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
    }
    log = open(tmp_path / "serve.log", "wb")  # noqa: SIM115 (closed below)
    process = subprocess.Popen(
        [sys.executable, "-m", "entrypoints.cli", "serve", "--workers", "2", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.1)
        before = health_count(httpx.get(f"{base}/metrics", timeout=10).text)
        for _ in range(30):  # a new connection each: the kernel spreads them over the workers
            assert httpx.get(f"{base}/health", timeout=10).status_code == 200
        # Whichever worker answers the scrape, it reports the sum over both.
        for _ in range(6):
            assert health_count(httpx.get(f"{base}/metrics", timeout=10).text) >= before + 30
        workers = {p.name for p in (tmp_path / "metrics").glob("counter_*.db")}
        assert len(workers) == 2, workers  # two worker processes, each writing its own values
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
