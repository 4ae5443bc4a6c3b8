"""Push senders that do not talk to FCM: one that logs (the embedded default), one that records (tests)."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from application.ports import PushFailed, PushMessage, PushResult, PushSender, PushSent
from domain.devices import DeviceToken

log = logging.getLogger(__name__)


class LoggingPushSender(PushSender):
    """Logs each push instead of sending it, and reports it sent. For running without Firebase."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)

    async def send(self, message: PushMessage, devices: Sequence[DeviceToken]) -> list[PushResult]:
        results: list[PushResult] = []
        for device in devices:
            message_id = f"log-{next(self._ids)}"
            log.info(
                "push (logged, not sent)",
                extra={
                    "user_id": device.user_id,
                    "device_id": device.id,
                    "platform": device.platform,
                    "title": message.title,
                    "data": dict(message.data),
                    "message_id": message_id,
                },
            )
            results.append(PushSent(message_id))
        return results


class DisabledPushSender(PushSender):
    """PUSH_BACKEND=none: pushes are switched off; each one is recorded as failed with that reason."""

    async def send(self, message: PushMessage, devices: Sequence[DeviceToken]) -> list[PushResult]:
        return [PushFailed("push_disabled") for _ in devices]


@dataclass(frozen=True)
class RecordedPush:
    message: PushMessage
    device: DeviceToken
    result: PushResult


class RecordingPushSender(PushSender):
    """Remembers every push it was asked to send. ``outcome`` decides each device's result (default: sent)."""

    def __init__(self) -> None:
        self.sent: list[RecordedPush] = []
        self.outcome: Callable[[DeviceToken], PushResult] | None = None
        self._ids = itertools.count(1)

    async def send(self, message: PushMessage, devices: Sequence[DeviceToken]) -> list[PushResult]:
        results: list[PushResult] = []
        for device in devices:
            result = self.outcome(device) if self.outcome else PushSent(f"projects/test/messages/{next(self._ids)}")
            self.sent.append(RecordedPush(message, device, result))
            results.append(result)
        return results

    def to_user(self, user_id: int) -> list[RecordedPush]:
        return [p for p in self.sent if p.device.user_id == user_id]
