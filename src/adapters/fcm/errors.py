"""firebase-admin exceptions to push results: what to invalidate, what to retry, what to record as failed."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from firebase_admin import exceptions, messaging

from application.ports import PushFailed, PushResult, PushRetryLater, PushTokenInvalid

log = logging.getLogger(__name__)

# Google asks for at least a minute before retrying QUOTA_EXCEEDED.
QUOTA_MIN_RETRY = timedelta(seconds=60)
# Words FCM uses when INVALID_ARGUMENT is about the token rather than the message.
_TOKEN_WORDS = ("registration token", "registration-token", "fid", "installation")


def result_of(error: BaseException) -> PushResult:
    """Map one per-device failure of ``send_each_async`` to a push result."""
    if isinstance(error, messaging.UnregisteredError):
        return PushTokenInvalid("UNREGISTERED")
    if isinstance(error, messaging.SenderIdMismatchError):
        return PushTokenInvalid("SENDER_ID_MISMATCH")
    if isinstance(error, exceptions.InvalidArgumentError):
        text = str(error)
        if any(word in text.lower() for word in _TOKEN_WORDS):
            return PushTokenInvalid(f"INVALID_ARGUMENT: {text}"[:200])
        # A rejected payload is our bug, not the device's: keep the token, record the reason.
        log.error("FCM rejected the message payload", extra={"reason": text})
        return PushFailed(f"INVALID_ARGUMENT: {text}"[:300])
    if isinstance(error, messaging.QuotaExceededError):
        return PushRetryLater("QUOTA_EXCEEDED", max(retry_after(error) or QUOTA_MIN_RETRY, QUOTA_MIN_RETRY))
    if isinstance(error, messaging.ThirdPartyAuthError):
        log.error(
            "FCM: APNs or Web Push credentials are rejected; fix them in the Firebase console",
            extra={"reason": str(error)},
        )
        return PushFailed("THIRD_PARTY_AUTH_ERROR")
    if isinstance(error, exceptions.UnauthenticatedError | exceptions.PermissionDeniedError):
        log.error(
            "FCM refused our credentials; check the service account and its project",
            extra={"code": getattr(error, "code", None), "reason": str(error)},
        )
        return PushFailed(f"{getattr(error, 'code', 'UNAUTHENTICATED')}: {error}"[:300])
    if isinstance(
        error,
        exceptions.UnavailableError
        | exceptions.InternalError
        | exceptions.DeadlineExceededError
        | exceptions.UnknownError
        | exceptions.ResourceExhaustedError,
    ):
        return PushRetryLater(str(getattr(error, "code", type(error).__name__)), retry_after(error))
    if isinstance(error, exceptions.FirebaseError):
        return PushRetryLater(f"{error.code}: {error}"[:300], retry_after(error))
    return PushRetryLater(f"transport: {type(error).__name__}: {error}"[:300])


def retry_after(error: BaseException) -> timedelta | None:
    """The Retry-After of the HTTP answer behind the error (seconds or an HTTP date), if any."""
    response = getattr(error, "http_response", None)
    value = response.headers.get("retry-after") if response is not None else None
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return timedelta(seconds=int(value))
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(moment - datetime.now(UTC), timedelta(0))
