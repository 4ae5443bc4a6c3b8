"""``FcmPushSender``: the PushSender port on firebase-admin's async API.

Verified with firebase-admin 7.5 to 7.7 (see pyproject.toml). Private parts of the SDK are used,
here and nowhere else:
- the messaging service's ``_fcm_url``, to honour ``FCM_BASE_URL`` (tests, egress proxies);
- its ``_async_client``, replaced by one without the SDK's own 500/503 retries (0-7 s of sleeping
  that ignore Retry-After: our dispatcher retries with backoff and honours Retry-After instead) and
  without a per-message auth flow;
- its ``_fcm_headers``, which carry our access token (refreshed ahead of expiry, in a thread);
- with ``transport="aiohttp"`` (the default), its encoder and error parser around our own POSTs on
  aiohttp's HTTP/1.1 pool (``direct.py``: the sender's CPU per push was the limit, and most of it went to
  the SDK's per-device objects and httpx/httpcore around the request). ``transport="sdk"`` sends through
  the SDK's ``send_each_async`` on its own HTTP/2 client.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import urllib.parse
import urllib.request
import warnings
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import firebase_admin
import google.auth.exceptions
import google.auth.transport.requests
from firebase_admin import credentials, messaging

from adapters.fcm.direct import DirectPoster
from adapters.fcm.errors import result_of
from application.ports import PushFailed, PushMessage, PushResult, PushRetryLater, PushSender, PushSent
from domain.devices import AddressKind, DeviceToken

log = logging.getLogger(__name__)

MAX_BATCH = 500  # FCM's limit per send_each call
MAX_CONNECTIONS = 100  # HTTP/1.1 connections to FCM with the aiohttp transport
TRANSPORTS = ("aiohttp", "sdk")
MAX_TTL = timedelta(days=28)  # FCM's limit
_app_names = itertools.count(1)


class FcmConfigurationError(Exception):
    """The credentials cannot be used. The message names the setting, never the secret."""


def load_credentials(path: Path, setting: str) -> credentials.Certificate:
    try:
        return credentials.Certificate(str(path))
    except OSError as error:
        raise FcmConfigurationError(f"{setting}: cannot read {path}: {error.strerror}") from None
    except ValueError as error:
        # The SDK's message describes the problem without echoing the key.
        raise FcmConfigurationError(f"{setting}: {path} is not a usable service-account key ({error})") from None


class FcmPushSender(PushSender):
    def __init__(
        self,
        certificate: credentials.Certificate,
        base_url: str = "https://fcm.googleapis.com",
        http_timeout: float = 10.0,
        transport: str = "aiohttp",
    ) -> None:
        if transport not in TRANSPORTS:
            raise FcmConfigurationError(f"unknown FCM transport {transport!r}; known: {', '.join(TRANSPORTS)}")
        self._transport = transport
        self._app = firebase_admin.initialize_app(
            certificate, options={"httpTimeout": http_timeout}, name=f"workcast-{next(_app_names)}"
        )
        self._project_id = certificate.project_id
        self._base_url = base_url.rstrip("/")
        self._credential = certificate.get_credential()
        self._refresh_lock = asyncio.Lock()
        self._service = None
        self._direct: DirectPoster | None = None

    @property
    def project_id(self) -> str:
        return self._project_id

    async def send(self, message: PushMessage, devices: Sequence[DeviceToken]) -> list[PushResult]:
        try:
            await self._fresh_access_token()
        except google.auth.exceptions.RefreshError as error:
            log.error(
                "FCM: the service account cannot get an access token; check the key", extra={"reason": str(error)}
            )
            return [PushFailed(f"CREDENTIALS: {error}"[:300]) for _ in devices]
        except google.auth.exceptions.TransportError as error:
            return [PushRetryLater(f"token endpoint unreachable: {type(error).__name__}") for _ in devices]
        service = self._messaging_service()
        service._fcm_headers["Authorization"] = f"Bearer {self._credential.token}"
        expires = int(time.time() + _ttl(message).total_seconds())
        if self._direct is not None:
            headers = {**service._fcm_headers, "Content-Type": "application/json"}
            return await self._direct.send(_encoded_without_target(message, expires), devices, headers)
        fcm_messages = [_fcm_message(message, device, expires) for device in devices]
        results: list[PushResult] = []
        for start in range(0, len(fcm_messages), MAX_BATCH):
            batch = await service.send_each_async(fcm_messages[start : start + MAX_BATCH], dry_run=False)
            for response in batch.responses:
                if response.success:
                    results.append(PushSent(response.message_id))
                else:
                    results.append(result_of(response.exception))
        return results

    async def aclose(self) -> None:
        """Release the HTTP connections on this loop, then the SDK app.

        ``delete_app`` closes the async client with ``asyncio.run``, which fails inside a running loop
        (and would meet connections of this loop in another): close them here, delete in a thread.
        """
        if self._service is not None:
            await self._service._async_client.aclose()
        if self._direct is not None:
            await self._direct.aclose()
        await asyncio.to_thread(firebase_admin.delete_app, self._app)

    async def _fresh_access_token(self) -> None:
        """Refresh the OAuth2 token in a thread ahead of expiry, so the SDK never refreshes it on the loop.

        (The SDK refreshes through the synchronous ``requests`` library inside its async send.)
        """
        if self._usable(self._credential):
            return
        async with self._refresh_lock:
            if not self._usable(self._credential):
                await asyncio.to_thread(self._credential.refresh, google.auth.transport.requests.Request())

    @staticmethod
    def _usable(credential) -> bool:
        expiry = credential.expiry  # naive UTC in google-auth
        if not credential.token or expiry is None:
            return False
        return expiry - timedelta(minutes=5) > datetime.now(UTC).replace(tzinfo=None)

    def _messaging_service(self):
        if self._service is None:
            from firebase_admin import _http_client, _retry

            service = messaging._get_messaging_service(self._app)
            service._fcm_url = f"{self._base_url}/v1/projects/{self._project_id}/messages:send"
            # No credential on the client: its auth flow builds a requests.Session per message (a
            # measured 10 % of the sender's CPU). The token, refreshed ahead in a thread, travels
            # in the service's per-request headers instead (see send()).
            client = _http_client.HttpxAsyncClient(
                credential=None,
                timeout=self._app.options.get("httpTimeout"),
                retry_config=_retry.HttpxRetry(max_retries=0),
            )
            if self._transport == "aiohttp":
                self._direct = DirectPoster(
                    service._fcm_url,
                    _proxy_from_environment(self._base_url),
                    self._app.options.get("httpTimeout"),
                    MAX_CONNECTIONS,
                    service._handle_fcm_httpx_error,
                )
            service._async_client = client
            self._service = service
        return self._service


def _proxy_from_environment(url: str) -> str | None:
    """The proxy HTTPS_PROXY/HTTP_PROXY/NO_PROXY give for this URL (egress proxies are common where
    this runs; the SDK's own transport ignores them, its mounts override httpx's proxy ones).

    Read once: aiohttp's own ``trust_env`` looks the environment up on every request, which cost
    ~45 % of the pushes per second (bench/).
    """
    parts = urllib.parse.urlsplit(url)
    if urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return urllib.request.getproxies().get(parts.scheme)


def _ttl(message: PushMessage) -> timedelta:
    return max(timedelta(seconds=1), min(message.time_to_live, MAX_TTL))


def _encoded_without_target(message: PushMessage, expires_at_epoch: int) -> dict:
    """The message as the SDK encodes (and validates) it, without the target, which is per device."""
    common = _silent(message, expires_at_epoch) if message.silent else _alert(message, expires_at_epoch)
    encoded = messaging._MessagingService.encode_message(messaging.Message(fid="target", **common))
    del encoded["fid"]
    return encoded


def _fcm_message(message: PushMessage, device: DeviceToken, expires_at_epoch: int) -> messaging.Message:
    common = _silent(message, expires_at_epoch) if message.silent else _alert(message, expires_at_epoch)
    if device.kind is AddressKind.INSTALLATION_ID:
        return messaging.Message(fid=device.token, **common)
    with warnings.catch_warnings():
        # The seed's app sends registration tokens; Message.token is deprecated in 7.x but still served.
        warnings.simplefilter("ignore", DeprecationWarning)
        return messaging.Message(token=device.token, **common)


def _silent(message: PushMessage, expires_at_epoch: int) -> dict:
    """Quiet hours: a data-only message on Android and a background (content-available) one on APNs, so the
    app can update itself without waking the user."""
    return dict(
        data=dict(message.data),
        android=messaging.AndroidConfig(priority="normal", ttl=_ttl(message)),
        apns=messaging.APNSConfig(
            headers={
                "apns-priority": "5",  # APNs requires 5 for background pushes
                "apns-expiration": str(expires_at_epoch),
                "apns-push-type": "background",
            },
            payload=messaging.APNSPayload(aps=messaging.Aps(content_available=True)),
        ),
    )


def _alert(message: PushMessage, expires_at_epoch: int) -> dict:
    ttl = _ttl(message)
    return dict(
        notification=messaging.Notification(title=message.title, body=message.body),
        data=dict(message.data),
        android=messaging.AndroidConfig(
            priority="high" if message.high_priority else "normal",
            ttl=ttl,
            notification=messaging.AndroidNotification(
                channel_id="work",
                sound="default",
                title_loc_key=message.title_loc_key,
                title_loc_args=list(message.loc_args) if message.title_loc_key else None,
                body_loc_key=message.body_loc_key,
                body_loc_args=list(message.loc_args) if message.body_loc_key else None,
            ),
        ),
        apns=messaging.APNSConfig(
            headers={
                "apns-priority": "10" if message.high_priority else "5",
                "apns-expiration": str(expires_at_epoch),
                "apns-push-type": "alert",
            },
            payload=messaging.APNSPayload(
                aps=messaging.Aps(
                    sound="default",
                    alert=messaging.ApsAlert(
                        title=message.title,
                        body=message.body,
                        title_loc_key=message.title_loc_key,
                        title_loc_args=list(message.loc_args) if message.title_loc_key else None,
                        loc_key=message.body_loc_key,
                        loc_args=list(message.loc_args) if message.body_loc_key else None,
                    ),
                )
            ),
        ),
    )
