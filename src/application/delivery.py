"""Delivering notifications on both channels at once, and recording what happened.

Every notification reaches this service already saved, with ``attempts`` counted and
``next_attempt_at`` set to the end of a lease. So if the process dies at any point from here on,
the dispatcher finds the notification due when the lease ends and tries again: nothing is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TypeVar

from application.errors import BrokerUnavailable
from application.messages import push_for
from application.policy import DeliveryPolicy
from application.ports import (
    Clock,
    DeliveryMetrics,
    NoDeliveryMetrics,
    PushFailed,
    PushMessage,
    PushResult,
    PushRetryLater,
    PushSender,
    PushSent,
    PushTokenInvalid,
    RealtimeBroker,
    UnitOfWorkFactory,
)
from domain.audit import AttemptOutcome, DeliveryAttempt
from domain.devices import DeviceToken
from domain.notifications import Notification, SocketState

log = logging.getLogger(__name__)
T = TypeVar("T")
RECORD_BATCH = 200  # outcomes written per transaction
# How long the recorder lets outcomes gather before writing them: at 200 assignments/s, writing each
# request's outcome in a transaction of its own took 15 % of the server's CPU (bench/, py-spy); waiting
# 50 ms makes ~10 share one. Nobody waits for this write (a notification keeps its lease until it lands).
RECORD_LINGER_SECONDS = 0.05


@dataclass
class _Attempt:
    """One notification being delivered: its channel tasks and what they reported."""

    notification: Notification
    devices: list[DeviceToken]
    started_at: datetime
    started: float  # the event loop's clock, for durations
    socket_task: asyncio.Task[int] | None = None
    push_task: asyncio.Task[list[PushResult]] | None = None
    retry_after: timedelta | None = None
    next_in: timedelta | None = None  # when the next attempt is due, if not by the backoff (push fallback)
    deferred_push: PushMessage | None = None  # PUSH_POLICY=fallback: the push waits for the socket's outcome
    dead_devices: dict[int, str] = field(default_factory=dict)
    finished: dict[str, float] = field(default_factory=dict)  # channel -> loop time its task ended
    trail: list[DeliveryAttempt] = field(default_factory=list)  # the audit records not yet handed over

    def watch(self, channel: str, task: asyncio.Task) -> asyncio.Task:
        loop = asyncio.get_running_loop()
        task.add_done_callback(lambda _: self.finished.__setitem__(channel, loop.time()))
        return task

    def record(
        self,
        channel: str,
        outcome: AttemptOutcome,
        instance: str,
        detail: str | None = None,
        device_id: int | None = None,
    ) -> None:
        ended = self.finished.get(channel, self.started)
        self.trail.append(
            DeliveryAttempt(
                notification_id=self.notification.id or 0,
                channel=channel,
                at=self.started_at,
                outcome=outcome,
                duration_ms=max(0, round((ended - self.started) * 1000)),
                instance=instance,
                device_id=device_id,
                detail=detail,
            )
        )

    def tasks(self) -> list[asyncio.Task]:
        return [t for t in (self.socket_task, self.push_task) if t is not None]

    def in_flight(self) -> list[asyncio.Task]:
        return [t for t in self.tasks() if not t.done()]


class NotificationDelivery:
    """Sends claimed notifications over socket and push concurrently and records each channel's outcome."""

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        push: PushSender,
        broker: RealtimeBroker,
        clock: Clock,
        policy: DeliveryPolicy,
        metrics: DeliveryMetrics | None = None,
        instance: str = "local",
    ) -> None:
        self._uow_factory = uow_factory
        self._instance = instance
        self._metrics = metrics or NoDeliveryMetrics()
        self._push = push
        self._broker = broker
        self._clock = clock
        self._policy = policy
        self._background: set[asyncio.Task] = set()
        self._unrecorded: list[tuple[Notification, dict[int, str], list[DeliveryAttempt]]] = []
        self._recorded_all = asyncio.Event()
        self._recorded_all.set()
        self._recorder: asyncio.Task | None = None

    def lease_until(self) -> datetime:
        return self._clock.now() + self._policy.lease

    def created(self, notifications: Sequence[Notification]) -> None:
        """Count notifications saved for delivery (by kind)."""
        for n in notifications:
            self._metrics.notification_created(n.kind.value)

    async def deliver(
        self,
        notifications: Sequence[Notification],
        devices: Mapping[int, list[DeviceToken]],
        budget: timedelta | None = None,
    ) -> None:
        """Deliver and record. Waits at most ``budget`` (None: until every channel finished).

        Channels still in flight when the budget runs out keep going in the background and record
        their outcome when they finish; meanwhile the notification reads as pending.
        """
        if not notifications:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + budget.total_seconds() if budget is not None else None
        attempts = [self._start(n, list(devices.get(n.recipient_id, ()))) for n in notifications]
        tasks = [t for a in attempts for t in a.tasks()]
        if tasks:
            await asyncio.wait(tasks, timeout=deadline - loop.time() if deadline is not None else None)
        for attempt in attempts:
            self._apply_finished(attempt)
        if pushes := self._push_unless_on_screen(attempts):
            await asyncio.wait(pushes, timeout=max(0.0, deadline - loop.time()) if deadline is not None else None)
            for attempt in attempts:
                self._apply_finished(attempt)
        self._submit(attempts)
        for attempt in attempts:
            if attempt.in_flight():
                self._track(asyncio.create_task(self._finish_in_background(attempt)))

    async def flush(self) -> None:
        """Wait until every outcome handed over so far is written (tests and shutdown use this)."""
        if self._unrecorded or not self._recorded_all.is_set():
            await self._recorded_all.wait()

    async def drain(self, within: float) -> None:
        """On shutdown: let background deliveries finish and their outcomes be written, for at most ``within`` s.

        Whatever is left is retried by the dispatcher when its lease ends.
        """
        deadline = asyncio.get_running_loop().time() + within
        if self._background:
            await asyncio.wait(set(self._background), timeout=within)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.flush(), max(0.0, deadline - asyncio.get_running_loop().time()))
        if self._recorder is not None:
            self._recorder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._recorder
            self._recorder = None

    # --- internals ----------------------------------------------------------------------------

    def _start(self, n: Notification, devices: list[DeviceToken]) -> _Attempt:
        now = self._clock.now()
        attempt = _Attempt(n, devices, started_at=now, started=asyncio.get_running_loop().time())
        push_pending, socket_pending = n.pending_channels
        if socket_pending:
            publish = self._broker.publish(n.recipient_id, n.message())
            attempt.socket_task = attempt.watch(
                "socket",
                self._track(asyncio.create_task(within(publish, self._policy.socket_timeout.total_seconds()))),
            )
        if push_pending:
            message = push_for(n, now)
            if message is None:
                n.push_failed("offer_expired_before_push")
                attempt.record("push", AttemptOutcome.FAILED, self._instance, "offer_expired_before_push")
                self._metrics.channel_outcome("push", "failed")
            elif not devices:
                n.push_skipped()
                attempt.record("push", AttemptOutcome.SKIPPED, self._instance, "no_active_device")
                self._metrics.channel_outcome("push", "skipped")
            elif socket_pending and n.attempts <= 1 and self._policy.push_fallback is not None:
                attempt.deferred_push = message  # first the socket (see _push_unless_on_screen)
            else:
                self._start_push(attempt, message)
        return attempt

    def _push_unless_on_screen(self, attempts: Sequence[_Attempt]) -> list[asyncio.Task]:
        """PUSH_POLICY=fallback, after the socket's try: a socket took it, so the push waits ``push_fallback``
        for the app's ack (the dispatcher sends it then, unless acknowledged: acknowledged notifications are
        never due); no socket took it, so the push goes now."""
        started = []
        for attempt in attempts:
            message, attempt.deferred_push = attempt.deferred_push, None
            if message is None:
                continue
            if attempt.notification.socket_state is SocketState.SENT and self._policy.push_fallback is not None:
                attempt.next_in = self._policy.push_fallback
                self._metrics.channel_outcome("push", "deferred")
                continue
            started.append(self._start_push(attempt, message))
        return started

    def _start_push(self, attempt: _Attempt, message: PushMessage) -> asyncio.Task:
        send = self._push.send(message, attempt.devices)
        attempt.push_task = attempt.watch(
            "push",
            self._track(asyncio.create_task(within(send, self._policy.push_timeout.total_seconds()))),
        )
        return attempt.push_task

    def _track(self, task: asyncio.Task) -> asyncio.Task:
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    def _apply_finished(self, attempt: _Attempt) -> None:
        if attempt.socket_task is not None and attempt.socket_task.done():
            self._apply_socket(attempt, attempt.socket_task)
            attempt.socket_task = None
        if attempt.push_task is not None and attempt.push_task.done():
            self._apply_push(attempt, attempt.push_task)
            attempt.push_task = None

    def _apply_socket(self, attempt: _Attempt, task: asyncio.Task[int]) -> None:
        n = attempt.notification
        error = _failure_of(task)
        if error is None:
            if task.result() > 0:
                n.socket_sent()
                attempt.record("socket", AttemptOutcome.SENT, self._instance)
                self._metrics.channel_outcome("socket", "sent", self._age(n))
            else:
                n.socket_not_connected()
                attempt.record("socket", AttemptOutcome.NOT_CONNECTED, self._instance)
                self._metrics.channel_outcome("socket", "not_connected")
            return
        reason = "broker_unavailable" if isinstance(error, BrokerUnavailable) else f"socket_error: {error!r}"
        if isinstance(error, TimeoutError):
            reason = "socket_timeout"
        log.warning("socket delivery failed, will retry", extra={"notification_id": n.id, "reason": reason})
        n.socket_retry(reason)
        attempt.record("socket", AttemptOutcome.RETRY, self._instance, reason)
        self._metrics.channel_outcome("socket", "pending")

    def _apply_push(self, attempt: _Attempt, task: asyncio.Task[list[PushResult]]) -> None:
        n = attempt.notification
        error = _failure_of(task)
        if error is not None:
            reason = "push_timeout" if isinstance(error, TimeoutError) else f"push_error: {error!r}"
            log.warning("push delivery failed, will retry", extra={"notification_id": n.id, "reason": reason})
            n.push_retry(reason)
            for device in attempt.devices:
                attempt.record("push", AttemptOutcome.RETRY, self._instance, reason, device.id)
            self._metrics.channel_outcome("push", "pending")
            self._metrics.push_error("TIMEOUT" if isinstance(error, TimeoutError) else "CLIENT_ERROR")
            return
        results = task.result()
        for device, result in zip(attempt.devices, results, strict=True):
            if isinstance(result, PushSent):
                attempt.record("push", AttemptOutcome.SENT, self._instance, result.message_id, device.id)
                self._metrics.push_accepted(device.platform)
                continue
            attempt.record("push", _OUTCOME_OF[type(result)], self._instance, result.reason, device.id)
            self._metrics.push_error(result.reason.split(":", 1)[0])
            if isinstance(result, PushTokenInvalid) and device.id is not None:
                attempt.dead_devices[device.id] = result.reason
        sent = [r for r in results if isinstance(r, PushSent)]
        retry = [r for r in results if isinstance(r, PushRetryLater)]
        failed = [r for r in results if isinstance(r, PushFailed)]
        invalid = [r for r in results if isinstance(r, PushTokenInvalid)]
        self._metrics.channel_outcome(
            "push", "sent" if sent else "pending" if retry else "failed", self._age(n) if sent else None
        )
        if sent:
            n.push_sent(sent[0].message_id)
        elif retry:
            n.push_retry(retry[0].reason)
            hints = [r.retry_after for r in retry if r.retry_after is not None]
            attempt.retry_after = max(hints) if hints else None
        elif failed:
            n.push_failed(failed[0].reason)
        else:
            n.push_failed(f"all_devices_invalid: {invalid[0].reason}" if invalid else "no_result")
        if not sent:
            # One line per push that reached no device (never the tokens): with the request id of what caused it.
            log.info(
                "push not delivered",
                extra={
                    "notification_id": n.id,
                    "push_state": n.push_state.value,
                    "reason": n.push_error,
                    "devices": len(results),
                },
            )

    def _age(self, n: Notification) -> float:
        return max(0.0, (self._clock.now() - n.created_at).total_seconds())

    def _submit(self, attempts: Sequence[_Attempt]) -> None:
        """Schedule what finished and hand the outcomes to the recorder, which writes them in batches.

        The request does not wait for this write: it is the second transaction, and under load many
        requests' outcomes share one. Until it lands the notification still carries its lease, so a
        crash in between only means the dispatcher tries again (at least once, never lost).
        """
        now = self._clock.now()
        for attempt in attempts:
            n = attempt.notification
            if not attempt.in_flight():
                # Still in flight: keep the lease as next_attempt_at until the background task records it.
                delay = attempt.next_in or self._policy.retry_delay(n.attempts, attempt.retry_after)
                n.schedule(now + delay, self._policy.max_attempts)
            self._unrecorded.append((replace(n), dict(attempt.dead_devices), attempt.trail))
            attempt.dead_devices.clear()
            attempt.trail = []
        self._recorded_all.clear()
        if self._recorder is None or self._recorder.done():
            # In a context of its own: it outlives the request that started it, whose request id must not
            # stick to every later line it logs.
            self._recorder = asyncio.create_task(
                self._record_until_idle(), name="delivery-outcome-recorder", context=contextvars.Context()
            )

    async def _record_until_idle(self) -> None:
        """Writes what was handed over, in batches, and ends once nothing is left: the next outcome starts a
        new one. No task waits forever, so none is left pending when a loop closes."""
        while self._unrecorded:
            if len(self._unrecorded) < RECORD_BATCH:
                await asyncio.sleep(RECORD_LINGER_SECONDS)
            while self._unrecorded:
                batch = self._unrecorded[:RECORD_BATCH]
                del self._unrecorded[:RECORD_BATCH]
                try:
                    await self._write(batch)
                except Exception:
                    # The work itself is committed; an unrecorded outcome only means the dispatcher
                    # tries these again when their lease ends (a possible duplicate, never a loss).
                    log.exception(
                        "could not record delivery outcomes", extra={"notification_ids": [n.id for n, _, _ in batch]}
                    )
        self._recorded_all.set()

    async def _write(self, batch: list[tuple[Notification, dict[int, str], list[DeliveryAttempt]]]) -> None:
        dead: dict[int, str] = {}
        trail: list[DeliveryAttempt] = []
        for _, devices, attempts in batch:
            dead.update(devices)
            trail.extend(attempts)
        async with self._uow_factory() as uow:
            await uow.notifications.save_deliveries([n for n, _, _ in batch])
            if dead:
                await uow.devices.invalidate(dead, self._clock.now())
            if trail:
                await uow.attempts.add_many(trail)
            await uow.commit()

    async def _finish_in_background(self, attempt: _Attempt) -> None:
        await asyncio.wait(attempt.in_flight())
        self._apply_finished(attempt)
        self._submit([attempt])


_OUTCOME_OF = {
    PushTokenInvalid: AttemptOutcome.INVALID_DEVICE,
    PushRetryLater: AttemptOutcome.RETRY,
    PushFailed: AttemptOutcome.FAILED,
}


async def within(awaitable: Awaitable[T], seconds: float) -> T:
    """``asyncio.wait_for`` without its task: on Python 3.11 wait_for runs the awaitable in a task of its own,
    a second task for every delivery on the hot path; ``asyncio.timeout`` cancels the caller's task instead."""
    async with asyncio.timeout(seconds):
        return await awaitable


def _failure_of(task: asyncio.Task) -> BaseException | None:
    if task.cancelled():
        return TimeoutError("cancelled")
    return task.exception()
