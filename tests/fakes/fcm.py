"""The fake FCM (``workcast fake-fcm``) in a thread on a free loopback port, for tests."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import uvicorn

from entrypoints.fake_fcm import FakeFcm
from tests.fixtures.servers import free_port


@contextlib.contextmanager
def fake_fcm_server() -> Iterator[FakeFcm]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    fake = FakeFcm(base_url=base, token_uri=f"{base}/token")
    server = uvicorn.Server(uvicorn.Config(fake, host="127.0.0.1", port=port, log_config=None, lifespan="off"))
    thread = threading.Thread(target=server.run, name="fake-fcm", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("fake FCM did not start")
        time.sleep(0.01)
    try:
        yield fake
    finally:
        server.should_exit = True
        thread.join(10)
