"""CORS for a Flutter web build: only the configured origins, and nothing at all by default."""

from __future__ import annotations

import httpx

from tests.e2e.conftest import running_server

PREFLIGHT = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type"}


async def test_configured_origins_get_cors_headers_and_others_do_not(tmp_path):
    env = {"WORKCAST_DATA_DIR": str(tmp_path), "CORS_ALLOW_ORIGINS": "https://app.example.com"}
    with running_server(env) as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
            ok = await http.options(
                "/api/1/profiles/assign-work/", headers=PREFLIGHT | {"Origin": "https://app.example.com"}
            )
            assert ok.status_code in (200, 204)
            assert ok.headers["access-control-allow-origin"] == "https://app.example.com"
            assert "authorization" in ok.headers["access-control-allow-headers"].lower()
            other = await http.options(
                "/api/1/profiles/assign-work/", headers=PREFLIGHT | {"Origin": "https://evil.example"}
            )
            assert other.headers.get("access-control-allow-origin") is None
            r = await http.get("/api/1/profiles/work-orders/", headers={"Origin": "https://app.example.com"})
            assert r.status_code == 401 and r.headers["access-control-allow-origin"] == "https://app.example.com"


async def test_without_the_setting_there_are_no_cors_headers(http):
    r = await http.options("/api/1/profiles/assign-work/", headers=PREFLIGHT | {"Origin": "https://app.example.com"})
    assert r.headers.get("access-control-allow-origin") is None
