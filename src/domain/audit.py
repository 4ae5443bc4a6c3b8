"""The audit trail: what happened on each delivery attempt, kept for troubleshooting.

A notification's own fields say only where it stands now; these records say how it got there
(each try on each channel and device, when, how long it took, what FCM answered, which instance).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

DETAIL_MAX = 500  # characters of an FCM message id or error kept per attempt


class AttemptOutcome(enum.StrEnum):
    SENT = "sent"  # push: FCM accepted it (detail: message id); socket: a live socket got it
    NOT_CONNECTED = "not_connected"  # socket: the user had no live socket
    RETRY = "retry"  # a passing failure; another attempt is scheduled (detail: why)
    FAILED = "failed"  # will not be retried on this device/channel (detail: FCM's code and message)
    INVALID_DEVICE = "invalid_device"  # push: FCM says the token is dead; the device is invalidated
    SKIPPED = "skipped"  # push: nothing to send to (no active device)


@dataclass(frozen=True)
class DeliveryAttempt:
    notification_id: int
    channel: str  # "push" or "socket"
    at: datetime  # when the attempt started
    outcome: AttemptOutcome
    duration_ms: int
    instance: str
    device_id: int | None = None  # push attempts: which device
    detail: str | None = None  # FCM message id, or the error code and message
    id: int | None = None
