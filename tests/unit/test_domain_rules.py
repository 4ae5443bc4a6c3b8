"""Rules of the domain objects themselves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain.errors import (
    AlreadyAnswered,
    InvalidInput,
    InvalidTransition,
    NotASeeker,
    NotYourOrder,
    ProviderUnavailable,
)
from domain.geo import GeoPoint
from domain.notifications import DeliveryStatus, Notification, NotificationKind, PushState, SocketState
from domain.profiles import Profile, Role
from domain.work_orders import TERMINAL_STATUSES, WorkOrder, WorkStatus

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def people():
    seeker = Profile(Role.SEEKER, "S", "1", id=1)
    provider = Profile(Role.PROVIDER, "P", "2", is_active_for_work=True, id=2)
    return seeker, provider


def order(**overrides) -> WorkOrder:
    seeker, provider = people()
    fields = dict(service_type="worker", message="m", distance="1km", location=GeoPoint(0, 0), now=NOW)
    fields.update(overrides)
    made = WorkOrder.assign(seeker, provider, time_to_answer=timedelta(minutes=10), **fields)
    made.id = 7
    return made


def offer(seeker: Profile, provider: Profile) -> WorkOrder:
    return WorkOrder.assign(
        seeker,
        provider,
        service_type="x",
        message="",
        distance="",
        location=GeoPoint(0, 0),
        now=NOW,
        time_to_answer=timedelta(1),
    )


def test_only_seekers_assign_and_only_to_active_providers():
    seeker, provider = people()
    with pytest.raises(NotASeeker):
        offer(provider, provider)
    provider.is_active_for_work = False
    with pytest.raises(ProviderUnavailable):
        offer(seeker, provider)
    with pytest.raises(ProviderUnavailable):
        offer(seeker, seeker)


@pytest.mark.parametrize(
    ("field", "value"),
    [("service_type", ""), ("service_type", "x" * 65), ("message", "m" * 2001), ("distance", "d" * 33)],
)
def test_order_text_limits_name_the_field(field, value):
    with pytest.raises(InvalidInput) as caught:
        order(**{field: value})
    assert caught.value.field == field


def test_only_the_assigned_provider_answers_and_only_once():
    o = order()
    with pytest.raises(NotYourOrder):
        o.answer(99, True, NOW)
    o.answer(2, False, NOW)
    assert o.status is WorkStatus.REJECTED and o.responded_at == NOW
    with pytest.raises(AlreadyAnswered):
        o.answer(2, True, NOW)


def test_an_order_answered_after_its_time_counts_as_expired():
    o = order()
    with pytest.raises(AlreadyAnswered):
        o.answer(2, True, NOW + timedelta(minutes=10))
    assert o.is_overdue(NOW + timedelta(minutes=10))


def test_only_the_seeker_cancels_and_accepted_work_can_still_be_cancelled_or_completed():
    o = order()
    with pytest.raises(NotYourOrder):
        o.cancel(2, NOW)
    o.answer(2, True, NOW)
    o.cancel(1, NOW)
    assert o.status is WorkStatus.CANCELLED
    with pytest.raises(InvalidTransition):
        o.cancel(1, NOW)
    done = order()
    done.answer(2, True, NOW)
    done.complete(2, NOW)
    assert done.status is WorkStatus.COMPLETED


@pytest.mark.parametrize("terminal", sorted(TERMINAL_STATUSES))
def test_terminal_orders_never_change(terminal):
    o = order()
    o.status = terminal
    for change in (
        lambda: o.answer(2, True, NOW),
        lambda: o.cancel(1, NOW),
        lambda: o.expire(NOW + timedelta(days=1)),
        lambda: o.complete(1, NOW),
    ):
        with pytest.raises((AlreadyAnswered, InvalidTransition)):
            change()
        assert o.status is terminal


def test_only_overdue_pending_orders_expire():
    o = order()
    with pytest.raises(InvalidTransition):
        o.expire(NOW)
    o.expire(NOW + timedelta(minutes=10))
    assert o.status is WorkStatus.EXPIRED


def note(**states) -> Notification:
    return Notification(1, NotificationKind.WORK_ASSIGNED, 7, {}, NOW, **states)


@pytest.mark.parametrize(
    ("push", "socket", "expected"),
    [
        (PushState.PENDING, SocketState.PENDING, DeliveryStatus.PENDING),
        (PushState.SENT, SocketState.NOT_CONNECTED, DeliveryStatus.SENT),
        (PushState.FAILED, SocketState.SENT, DeliveryStatus.SENT),
        (PushState.SKIPPED, SocketState.PENDING, DeliveryStatus.PENDING),
        (PushState.SKIPPED, SocketState.NOT_CONNECTED, DeliveryStatus.FAILED),
        (PushState.FAILED, SocketState.FAILED, DeliveryStatus.FAILED),
    ],
)
def test_delivery_status_is_derived_from_the_channels(push, socket, expected):
    assert note(push_state=push, socket_state=socket).delivery_status is expected
    acknowledged = note(push_state=push, socket_state=socket, delivered_at=NOW)
    assert acknowledged.delivery_status is DeliveryStatus.DELIVERED


def test_giving_up_fails_the_pending_channels_with_the_last_reason():
    n = note()
    n.start_attempt(NOW, NOW + timedelta(seconds=30))
    n.push_retry("QUOTA_EXCEEDED")
    n.socket_sent()
    n.schedule(NOW + timedelta(minutes=1), max_attempts=1)
    assert n.push_state is PushState.FAILED and "QUOTA_EXCEEDED" in n.push_error and "gave_up" in n.push_error
    assert n.next_attempt_at is None and n.delivery_status is DeliveryStatus.SENT


def test_profiles_validate_their_fields():
    with pytest.raises(InvalidInput) as caught:
        Profile.register(Role.SEEKER, "  ", "1")
    assert caught.value.field == "name"
    with pytest.raises(InvalidInput):
        Profile.register(Role.SEEKER, "n", "1" * 33)
