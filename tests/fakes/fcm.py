"""The fake FCM (``workcast fake-fcm``) in a thread on a free loopback port, for tests."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from entrypoints.fake_fcm import FakeFcm
from tests.fixtures.servers import asgi_in_thread, free_port


@contextlib.contextmanager
def fake_fcm_server() -> Iterator[FakeFcm]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    fake = FakeFcm(base_url=base, token_uri=f"{base}/token")
    with asgi_in_thread(fake, port, "fake-fcm"):
        yield fake
