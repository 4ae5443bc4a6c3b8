"""The access log: one structured line per request, with the request id every line of the request carries."""

from __future__ import annotations

import logging

from tests.e2e.conftest import seed_assignment


def access_lines(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "workcast.access"]


async def test_each_request_is_logged_once_with_its_id_route_status_and_user(admin, http, caplog):
    caplog.set_level(logging.INFO)
    seeker, provider = await admin.seeker(), await admin.provider()
    r = await http.post(
        "/api/1/profiles/assign-work/",
        json=seed_assignment(provider.id),
        headers=seeker.headers | {"X-Request-ID": "req-42.a"},
    )
    assert r.status_code == 201 and r.headers["x-request-id"] == "req-42.a"
    work_id = r.json()["data"]["work_order_id"]
    refused = await http.post(
        f"/api/1/profiles/work-orders/{work_id}/respond/", json={"accepted": 1}, headers=provider.headers
    )
    assert refused.status_code == 422 and len(refused.headers["x-request-id"]) == 32  # generated when not given
    bad_id = await http.get("/health", headers={"X-Request-ID": "has spaces\r"[:10]})
    assert bad_id.headers["x-request-id"] != "has spaces"  # only visible ASCII is echoed

    (assigned,) = [x for x in access_lines(caplog) if getattr(x, "request_id", None) == "req-42.a"]
    assert (assigned.method, assigned.route, assigned.status, assigned.user_id) == (
        "POST",
        "/api/1/profiles/assign-work",
        201,
        seeker.id,
    )
    assert assigned.levelno == logging.INFO and assigned.duration_ms > 0 and assigned.client == "127.0.0.1"
    (client_error,) = [x for x in access_lines(caplog) if x.request_id == refused.headers["x-request-id"]]
    assert client_error.levelno == logging.INFO and client_error.status == 422
    assert client_error.route == "/api/1/profiles/work-orders/{work_id}/respond"  # the template, not the id
    # Secrets never reach a log line: not the tokens, whatever logged them.
    everything = " ".join(str(r.__dict__) for r in caplog.records)
    assert seeker.token not in everything and provider.token not in everything
