"""Notifications: one message to one user, with its delivery tracked per channel.

A notification travels on two channels: a push through FCM (the phone rings even when the app is
closed) and a WebSocket message (any open app sees it at once). Each channel has its own state;
the overall ``delivery_status`` is derived from them and never stored by hand.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any


class NotificationKind(enum.StrEnum):
    WORK_ASSIGNED = "work_assigned"
    WORK_ACCEPTED = "work_accepted"
    WORK_REJECTED = "work_rejected"
    WORK_CANCELLED = "work_cancelled"
    WORK_EXPIRED = "work_expired"
    WORK_COMPLETED = "work_completed"
    WORK_TAKEN = "work_taken"  # a broadcast another provider accepted first


class PushState(enum.StrEnum):
    PENDING = "pending"  # not tried yet, or a retry is scheduled at next_attempt_at
    SENT = "sent"  # FCM accepted it for at least one device (push_message_id holds its id)
    FAILED = "failed"  # will not be retried; push_error says why
    SKIPPED = "skipped"  # the user has no active device


class SocketState(enum.StrEnum):
    PENDING = "pending"  # not tried yet, or a retry is scheduled at next_attempt_at
    SENT = "sent"  # at least one live socket of the user received it
    NOT_CONNECTED = "not_connected"  # no live socket; the app gets it by replay when it connects
    FAILED = "failed"  # gave up; socket_error says why (a later connect still replays it)


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"


@dataclass
class Notification:
    """One message to one user. ``payload`` is what the app receives, besides ``type`` and ``notification_id``."""

    recipient_id: int
    kind: NotificationKind
    work_id: int
    payload: dict[str, Any]
    created_at: datetime
    push_state: PushState = PushState.PENDING
    push_message_id: str | None = None
    push_error: str | None = None
    socket_state: SocketState = SocketState.PENDING
    socket_error: str | None = None
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_attempt_at: datetime | None = None
    delivered_at: datetime | None = None
    opened_at: datetime | None = None  # the user tapped the push or the in-app item (analytics)
    push_silent: bool = False  # quiet hours when it was created: the push goes without sound or alert
    id: int | None = None

    @property
    def delivery_status(self) -> DeliveryStatus:
        if self.delivered_at is not None:
            return DeliveryStatus.DELIVERED
        if self.push_state is PushState.SENT or self.socket_state is SocketState.SENT:
            return DeliveryStatus.SENT
        if self.push_state is PushState.PENDING or self.socket_state is SocketState.PENDING:
            return DeliveryStatus.PENDING
        return DeliveryStatus.FAILED

    @property
    def pending_channels(self) -> tuple[bool, bool]:
        """(push, socket): which channels still need an attempt."""
        return self.push_state is PushState.PENDING, self.socket_state is SocketState.PENDING

    @property
    def needs_attempt(self) -> bool:
        return any(self.pending_channels)

    def message(self) -> dict[str, Any]:
        """What a socket receives: the payload with its type and notification id."""
        return {"type": self.kind.value, "notification_id": self.id, **self.payload}

    # --- recording delivery outcomes -------------------------------------------------------------

    def start_attempt(self, now: datetime, lease_until: datetime) -> None:
        """Claim the notification for one delivery attempt.

        ``next_attempt_at`` moves to the end of the lease: if the process dies mid-attempt, the
        dispatcher finds the notification due again once the lease runs out, so nothing is lost.
        """
        self.attempts += 1
        self.last_attempt_at = now
        self.next_attempt_at = lease_until

    def push_sent(self, message_id: str) -> None:
        self.push_state, self.push_message_id, self.push_error = PushState.SENT, message_id, None

    def push_skipped(self) -> None:
        self.push_state, self.push_error = PushState.SKIPPED, "no_active_device"

    def push_turned_off(self) -> None:
        """The recipient turned pushes of this kind off: no push is tried (socket and history as usual)."""
        self.push_state, self.push_error = PushState.SKIPPED, "turned_off_by_user"

    def push_failed(self, reason: str) -> None:
        self.push_state, self.push_error = PushState.FAILED, reason

    def push_retry(self, reason: str) -> None:
        self.push_state, self.push_error = PushState.PENDING, reason

    def socket_sent(self) -> None:
        self.socket_state, self.socket_error = SocketState.SENT, None

    def socket_not_connected(self) -> None:
        self.socket_state, self.socket_error = SocketState.NOT_CONNECTED, None

    def socket_retry(self, reason: str) -> None:
        self.socket_state, self.socket_error = SocketState.PENDING, reason

    def schedule(self, next_attempt_at: datetime | None, max_attempts: int) -> None:
        """After an attempt: schedule the next one, or give up on channels that used all attempts."""
        if not self.needs_attempt:
            self.next_attempt_at = None
            return
        if self.attempts >= max_attempts:
            if self.push_state is PushState.PENDING:
                self.push_failed(f"gave_up_after_{self.attempts}_attempts: {self.push_error or 'unknown'}")
            if self.socket_state is SocketState.PENDING:
                self.socket_state = SocketState.FAILED
                self.socket_error = f"gave_up_after_{self.attempts}_attempts: {self.socket_error or 'unknown'}"
            self.next_attempt_at = None
            return
        self.next_attempt_at = next_attempt_at

    def reopen(self, now: datetime) -> bool:
        """An operator asks for another try: channels that failed or found nothing get a fresh set of attempts,
        due now. Channels already sent, and acknowledged notifications, are left alone (returns False)."""
        if self.delivered_at is not None:
            return False
        reopened = False
        if self.push_state in (PushState.FAILED, PushState.SKIPPED, PushState.PENDING):
            self.push_state, reopened = PushState.PENDING, True
        if self.socket_state in (SocketState.FAILED, SocketState.NOT_CONNECTED, SocketState.PENDING):
            self.socket_state, reopened = SocketState.PENDING, True
        if reopened:
            self.attempts = 0
            self.next_attempt_at = now
        return reopened

    def mark_seen_on_socket(self) -> None:
        """A replay on connect put it on a live socket."""
        self.socket_sent()
        if not self.needs_attempt:
            self.next_attempt_at = None

    def mark_opened(self, now: datetime) -> None:
        """The user opened it: that implies it was delivered. Opening twice keeps the first time."""
        self.acknowledge(now)
        if self.opened_at is None:
            self.opened_at = now

    def acknowledge(self, now: datetime) -> None:
        """The app displayed it: never sent again, on any channel. Acknowledging twice keeps the first time."""
        if self.delivered_at is None:
            self.delivered_at = now
        self.next_attempt_at = None
