"""The real firebase-admin SDK against the local fake of the FCM v1 API: messages, errors, addressing."""

from __future__ import annotations

import time
import warnings
from datetime import UTC, datetime, timedelta

import pytest

from adapters.fcm.sender import TRANSPORTS, FcmConfigurationError, FcmPushSender, load_credentials
from application.ports import PushFailed, PushMessage, PushRetryLater, PushSent, PushTokenInvalid
from domain.devices import AddressKind, DeviceToken
from tests.fakes.fcm import fake_fcm_server


@pytest.fixture(scope="module")
def fcm():
    with fake_fcm_server() as fake:
        yield fake


@pytest.fixture
def fresh(fcm):
    fcm.failures.clear()
    fcm.sent.clear()
    fcm.requests.clear()
    fcm.delay = 0.0
    return fcm


@pytest.fixture(params=TRANSPORTS)
async def sender(fresh, tmp_path, request):
    """Every behaviour holds with both HTTP transports (FCM_TRANSPORT)."""
    key = load_credentials(fresh.service_account(tmp_path), "FIREBASE_CREDENTIALS_PATH")
    # A generous HTTP timeout: these tests check what is sent, not how fast; 520 concurrent requests on a
    # loaded 2-core machine took longer than the default 10 s with the SDK's transport.
    made = FcmPushSender(key, fresh.base_url, http_timeout=120.0, transport=request.param)
    yield made
    await made.aclose()


def device(token: str, kind: AddressKind = AddressKind.REGISTRATION_TOKEN, device_id: int = 1) -> DeviceToken:
    registered = datetime(2026, 1, 1, tzinfo=UTC)
    return DeviceToken(user_id=1, token=token, kind=kind, platform="android", registered_at=registered, id=device_id)


OFFER = PushMessage(
    title="New worker job",
    body="Need help with painting work (2.5km away)",
    data={"type": "work_assigned", "work_id": "17", "notification_id": "42"},
    time_to_live=timedelta(minutes=9, seconds=30),
)


async def test_a_job_offer_is_posted_as_google_expects(sender, fresh):
    before = int(time.time())
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # nothing leaks to the logs
        results = await sender.send(
            OFFER, [device("phone-token"), device("tablet-fid", AddressKind.INSTALLATION_ID, 2)]
        )
    after = int(time.time()) + 1

    assert [type(r) for r in results] == [PushSent, PushSent]
    assert all(r.message_id.startswith("projects/workcast-test/messages/") for r in results)
    (request, _) = fresh.requests
    assert request["project"] == "workcast-test"
    assert request["headers"]["authorization"].startswith("Bearer fake-access-token-")
    message = fresh.messages_to("phone-token")[0]
    assert message["notification"] == {"title": "New worker job", "body": "Need help with painting work (2.5km away)"}
    assert message["data"] == {"type": "work_assigned", "work_id": "17", "notification_id": "42"}
    assert message["android"]["priority"] == "high" and message["android"]["ttl"] == "570s"
    apns_headers = message["apns"]["headers"]
    assert apns_headers["apns-priority"] == "10" and apns_headers["apns-push-type"] == "alert"
    assert before + 570 <= int(apns_headers["apns-expiration"]) <= after + 570  # the order's time to answer
    assert fresh.messages_to("tablet-fid")[0]["fid"] == "tablet-fid"
    assert "token" not in fresh.messages_to("tablet-fid")[0]


async def test_the_access_token_is_fetched_once_and_reused(sender, fresh):
    before = fresh.token_requests
    for _ in range(3):
        await sender.send(OFFER, [device("phone-token")])
    assert fresh.token_requests - before == 1


@pytest.mark.parametrize(
    ("error_code", "retry_after", "expected"),
    [
        ("UNREGISTERED", None, PushTokenInvalid("UNREGISTERED")),
        ("SENDER_ID_MISMATCH", None, PushTokenInvalid("SENDER_ID_MISMATCH")),
        ("QUOTA_EXCEEDED", 120, PushRetryLater("QUOTA_EXCEEDED", timedelta(seconds=120))),
        ("QUOTA_EXCEEDED", 5, PushRetryLater("QUOTA_EXCEEDED", timedelta(seconds=60))),  # Google: at least a minute
        ("UNAVAILABLE", 30, PushRetryLater("UNAVAILABLE", timedelta(seconds=30))),
        ("INTERNAL", None, PushRetryLater("INTERNAL", None)),
        ("THIRD_PARTY_AUTH_ERROR", None, PushFailed("THIRD_PARTY_AUTH_ERROR")),
    ],
)
async def test_each_fcm_error_becomes_the_right_result(sender, fresh, error_code, retry_after, expected):
    fresh.fail("bad", error_code, retry_after)
    results = await sender.send(OFFER, [device("good"), device("bad", device_id=2)])
    assert isinstance(results[0], PushSent)
    assert results[1] == expected


async def test_invalid_argument_about_the_token_invalidates_but_about_the_payload_does_not(sender, fresh):
    fresh.fail("garbled", "INVALID_ARGUMENT")
    fresh.fail("fine-token", "INVALID_ARGUMENT", payload_error=True)
    garbled, payload = await sender.send(OFFER, [device("garbled"), device("fine-token", device_id=2)])
    assert isinstance(garbled, PushTokenInvalid) and "not a valid FCM registration token" in garbled.reason
    assert isinstance(payload, PushFailed) and payload.reason.startswith("INVALID_ARGUMENT")


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_an_unreachable_fcm_is_retried_later(fresh, tmp_path, transport):
    from tests.fixtures.servers import free_port

    dead_end = FcmPushSender(
        load_credentials(fresh.service_account(tmp_path), "FIREBASE_CREDENTIALS_PATH"),
        f"http://127.0.0.1:{free_port()}",
        transport=transport,
    )
    try:
        (result,) = await dead_end.send(OFFER, [device("phone")])
    finally:
        await dead_end.aclose()
    assert isinstance(result, PushRetryLater)


async def test_the_default_transport_honours_the_environment_proxy_as_no_proxy_says(fresh, tmp_path, monkeypatch):
    """(The SDK's own transport does not: firebase-admin mounts its transports over httpx's proxy ones.)"""
    from tests.fixtures.servers import free_port

    key = load_credentials(fresh.service_account(tmp_path), "FIREBASE_CREDENTIALS_PATH")
    fcm_by_name = fresh.base_url.replace("127.0.0.1", "localhost")  # the token endpoint stays on 127.0.0.1
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    for no_proxy, expected in (("127.0.0.1", PushRetryLater), ("127.0.0.1,localhost", PushSent)):
        monkeypatch.setenv("NO_PROXY", no_proxy)
        sender = FcmPushSender(key, fcm_by_name, transport="aiohttp")
        try:
            (result,) = await sender.send(OFFER, [device("phone")])
        finally:
            await sender.aclose()
        assert isinstance(result, expected), (no_proxy, result)
    assert len(fresh.requests) == 1  # only the direct one reached FCM


async def test_a_token_endpoint_that_refuses_the_key_fails_with_the_reason(fresh, tmp_path):
    import json

    path = fresh.service_account(tmp_path)
    account = json.loads(path.read_text())
    account["token_uri"] = fresh.base_url + "/nowhere"  # answers 404 like a wrong endpoint
    path.write_text(json.dumps(account))
    refused = FcmPushSender(load_credentials(path, "FIREBASE_CREDENTIALS_PATH"), fresh.base_url)
    try:
        (result,) = await refused.send(OFFER, [device("phone")])
    finally:
        await refused.aclose()
    assert isinstance(result, PushFailed | PushRetryLater)
    assert fresh.sent == []


def test_an_unknown_transport_is_refused(fresh, tmp_path):
    key = load_credentials(fresh.service_account(tmp_path), "FIREBASE_CREDENTIALS_PATH")
    with pytest.raises(FcmConfigurationError, match="unknown FCM transport 'h3'"):
        FcmPushSender(key, fresh.base_url, transport="h3")


def test_unreadable_or_broken_credentials_name_the_setting_and_not_the_secret(tmp_path):
    with pytest.raises(FcmConfigurationError, match="FIREBASE_CREDENTIALS_PATH: cannot read"):
        load_credentials(tmp_path / "missing.json", "FIREBASE_CREDENTIALS_PATH")
    broken = tmp_path / "broken.json"
    broken.write_text('{"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----SECRETSTUFF"}')
    with pytest.raises(FcmConfigurationError) as caught:
        load_credentials(broken, "GOOGLE_APPLICATION_CREDENTIALS")
    assert "GOOGLE_APPLICATION_CREDENTIALS" in str(caught.value) and "SECRETSTUFF" not in str(caught.value)


async def test_more_than_500_devices_go_in_batches(sender, fresh):
    devices = [device(f"t{i}", device_id=i + 1) for i in range(520)]
    results = await sender.send(OFFER, devices)
    assert len(results) == 520 and all(isinstance(r, PushSent) for r in results)
    assert len(fresh.sent) == 520
