"""Every use case and rule, with in-memory adapters."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

import pytest

from application.policy import WorkPolicy
from application.ports import PushRetryLater, PushSent, PushTokenInvalid
from domain.devices import AddressKind
from domain.errors import (
    AlreadyAnswered,
    InvalidInput,
    InvalidLocation,
    InvalidTransition,
    NotAProvider,
    NotASeeker,
    NotificationNotFound,
    NotYourOrder,
    ProfileNotFound,
    ProviderUnavailable,
    TooManyPendingOrders,
    UnknownProvider,
    WorkOrderNotFound,
)
from domain.geo import GeoPoint
from domain.notifications import DeliveryStatus, PushState, SocketState
from domain.work_orders import WorkStatus


async def count_rows(world):
    t = world.store.tables
    return len(t.work_orders), len(t.notifications)


# --- assign work --------------------------------------------------------------------------------


async def test_assign_work_checks_who_asks_and_whom(world):
    seeker, provider = await world.seeker(), await world.provider()
    resting = await world.provider("Resting", active=False)
    with pytest.raises(NotASeeker):
        await world.assign(provider, provider)
    with pytest.raises(UnknownProvider) as unknown:
        await world.assign(seeker, provider, provider_id=999)
    assert unknown.value.field == "provider_id"
    with pytest.raises(ProviderUnavailable):
        await world.assign(seeker, resting)
    with pytest.raises(ProviderUnavailable):
        await world.assign(seeker, seeker, provider_id=seeker.id)
    with pytest.raises(InvalidInput) as empty:
        await world.assign(seeker, provider, service_type="  ")
    assert empty.value.field == "service_type"
    assert await count_rows(world) == (0, 0)  # no half-written record


async def test_an_assignment_decides_on_remembered_parties_and_reads_again_when_they_changed(world, monkeypatch):
    """After the first order the parties are remembered and the next ones need no read; the write saves only if
    they still read the same, so another instance's change (a new name, off duty, the cap) is never missed."""
    from adapters.memory.store import MemoryWorkOrderRepository

    reads = []
    read = MemoryWorkOrderRepository.read_for_assignment
    monkeypatch.setattr(
        MemoryWorkOrderRepository, "read_for_assignment", lambda self, *a: reads.append(a[:2]) or read(self, *a)
    )
    world = replace(world, work_policy=replace(world.work_policy, max_pending_per_seeker=4))
    seeker, provider = await world.seeker(), await world.provider()
    assert (await world.assign(seeker, provider)).provider_name == "John Doe"
    assert (await world.assign(seeker, provider)).provider_name == "John Doe"
    assert len(reads) == 1  # the second one was decided on what the first read

    stored = world.store.tables.profiles[provider.id]
    stored.name = "Johnny"  # as another instance would
    assert (await world.assign(seeker, provider)).provider_name == "Johnny"
    assert len(reads) == 2
    stored.is_active_for_work = False
    with pytest.raises(ProviderUnavailable):
        await world.assign(seeker, provider)
    stored.is_active_for_work = True
    await world.assign(seeker, provider)
    with pytest.raises(TooManyPendingOrders):  # the cap holds for remembered parties too
        await world.assign(seeker, provider)
    assert await count_rows(world) == (4, 4)


async def test_who_just_connected_a_socket_is_remembered_so_the_first_order_to_them_needs_no_read(world, monkeypatch):
    """A socket's connect reads its user's profile anyway; the order that follows (a provider comes online, a
    seeker picks them) is decided on that read and saved by the one conditional write, which still refuses a
    profile that changed since."""
    from adapters.memory.store import MemoryWorkOrderRepository

    reads = []
    read = MemoryWorkOrderRepository.read_for_assignment
    monkeypatch.setattr(
        MemoryWorkOrderRepository, "read_for_assignment", lambda self, *a: reads.append(a[:2]) or read(self, *a)
    )
    seeker, first, second = await world.seeker(), await world.provider(), await world.provider()
    for user in (seeker, first, second):
        await world.replay.on_connect(user.id)
    await world.assign(seeker, first)
    await world.assign(seeker, second)
    assert reads == []

    world.store.tables.profiles[second.id].is_active_for_work = False  # as another instance would
    with pytest.raises(ProviderUnavailable):
        await world.assign(seeker, second)
    assert len(reads) == 1 and await count_rows(world) == (2, 2)


async def test_sockets_users_erased_lately_are_found_by_a_small_read_and_all_of_them_now_and_then(world):
    """The first check asks about every user, later ones only who was erased since the last one (with a minute's
    overlap for clocks that differ between instances); a row removed by hand is found by the next full check, every
    FULL_CHECK_EVERY-th."""
    from application.use_cases.find_unknown_users import FULL_CHECK_EVERY, FindUnknownUsers

    find = FindUnknownUsers(world.uow, world.clock)
    keep, erased, skewed, removed, gone = [await world.provider() for _ in range(5)]
    users = [p.id for p in (keep, erased, skewed, removed, gone)]
    del world.store.tables.profiles[gone.id]
    assert await find.execute(users) == {gone.id}  # the first check: every user
    world.clock.advance(timedelta(seconds=5))
    world.store.tables.profiles[erased.id].erase(world.clock.now())
    world.store.tables.profiles[skewed.id].erase(world.clock.now() - timedelta(seconds=40))  # a clock behind
    del world.store.tables.profiles[removed.id]
    assert await find.execute(users) == {erased.id, skewed.id}
    for _ in range(FULL_CHECK_EVERY - 2):
        world.clock.advance(timedelta(seconds=5))
        assert removed.id not in await find.execute(users)
    world.clock.advance(timedelta(seconds=5))
    assert await find.execute(users) == {erased.id, skewed.id, removed.id, gone.id}  # the next full check


def test_locations_out_of_range_are_refused():
    for lat, lon in ((91, 0), (0, 181), (float("nan"), 0), (0, float("inf"))):
        with pytest.raises(InvalidLocation):
            GeoPoint(lat, lon)


async def test_a_provider_without_devices_is_still_reached_by_socket(world):
    seeker, provider = await world.seeker(), await world.provider()
    socket = await world.connect(provider)
    assignment = await world.assign(seeker, provider)
    assert (assignment.fcm_sent, assignment.websocket_sent) == (False, True)
    stored = await world.notification(assignment.notification_id)
    assert stored.push_state is PushState.SKIPPED and socket.types() == ["work_assigned"]


async def test_every_device_and_every_socket_of_the_provider_hears_it(world):
    seeker, provider = await world.seeker(), await world.provider()
    phone = await world.register_device.execute(provider.id, "phone", "android")
    await world.register_device.execute(provider.id, "tablet-fid", "ios", AddressKind.INSTALLATION_ID)
    world.push.outcome = lambda d: PushTokenInvalid("UNREGISTERED") if d.id == phone.device.id else PushSent("m-1")
    app_one, app_two = await world.connect(provider), await world.connect(provider)

    assignment = await world.assign(seeker, provider)

    assert assignment.fcm_sent and assignment.websocket_sent
    assert {p.device.token for p in world.push.sent} == {"phone", "tablet-fid"}
    assert app_one.types() == app_two.types() == ["work_assigned"]
    await world.settle()
    assert not world.store.tables.devices[phone.device.id].is_active
    assert (await world.notification(assignment.notification_id)).push_message_id == "m-1"


async def test_a_broken_socket_does_not_count_as_delivered(world):
    seeker, provider = await world.seeker(), await world.provider()
    socket = await world.connect(provider)
    socket.broken = True
    assignment = await world.assign(seeker, provider)
    assert not assignment.websocket_sent


# --- answering ----------------------------------------------------------------------------------


async def test_only_the_assigned_provider_can_answer(world):
    seeker, provider, other = await world.seeker(), await world.provider(), await world.provider("Other")
    assignment = await world.assign(seeker, provider)
    # Another provider's order reads exactly like a missing one; the role is checked before the order.
    with pytest.raises(WorkOrderNotFound):
        await world.respond.execute(other.id, assignment.order.id, True)
    with pytest.raises(WorkOrderNotFound):
        await world.respond.execute(provider.id, 12345, True)
    with pytest.raises(NotAProvider):
        await world.respond.execute(seeker.id, assignment.order.id, True)
    with pytest.raises(NotAProvider):
        await world.respond.execute(seeker.id, 12345, True)
    with pytest.raises(ProfileNotFound):
        await world.respond.execute(10**9, assignment.order.id, True)
    rejected = await world.respond.execute(provider.id, assignment.order.id, False)
    assert rejected.order.status is WorkStatus.REJECTED
    with pytest.raises(AlreadyAnswered):
        await world.respond.execute(provider.id, assignment.order.id, True)


async def test_two_concurrent_answers_have_exactly_one_winner(world):
    seeker, provider = await world.seeker(), await world.provider()
    assignment = await world.assign(seeker, provider)
    outcomes = await asyncio.gather(
        world.respond.execute(provider.id, assignment.order.id, True),
        world.respond.execute(provider.id, assignment.order.id, False),
        return_exceptions=True,
    )
    assert sum(isinstance(o, AlreadyAnswered) for o in outcomes) == 1
    winner = next(o for o in outcomes if not isinstance(o, Exception))
    stored = world.store.tables.work_orders[assignment.order.id]
    assert stored.status is winner.order.status
    answers = [n for n in world.store.tables.notifications.values() if n.recipient_id == seeker.id]
    assert len(answers) == 1


# --- cancelling and expiring ----------------------------------------------------------------------


async def test_the_seeker_cancels_and_the_provider_hears_it(world):
    seeker, provider, stranger = await world.seeker(), await world.provider(), await world.seeker("Eve")
    socket = await world.connect(provider)
    assignment = await world.assign(seeker, provider)
    with pytest.raises(WorkOrderNotFound):
        await world.cancel.execute(stranger.id, assignment.order.id)
    with pytest.raises(NotYourOrder):
        await world.cancel.execute(provider.id, assignment.order.id)
    cancelled = await world.cancel.execute(seeker.id, assignment.order.id)
    assert cancelled.status is WorkStatus.CANCELLED
    assert socket.types() == ["work_assigned", "work_cancelled"]
    with pytest.raises(InvalidTransition):
        await world.cancel.execute(seeker.id, assignment.order.id)
    with pytest.raises(AlreadyAnswered):
        await world.respond.execute(provider.id, assignment.order.id, True)


async def test_unanswered_orders_expire_and_both_parties_hear_it(world):
    seeker, provider = await world.seeker(), await world.provider()
    seeker_socket, provider_socket = await world.connect(seeker), await world.connect(provider)
    assignment = await world.assign(seeker, provider)
    assert await world.expire.execute() == 0
    world.clock.advance(world.work_policy.time_to_answer)
    with pytest.raises(AlreadyAnswered):
        await world.respond.execute(provider.id, assignment.order.id, True)
    assert await world.expire.execute() == 1
    assert world.store.tables.work_orders[assignment.order.id].status is WorkStatus.EXPIRED
    assert seeker_socket.types() == ["work_expired"]
    assert provider_socket.types() == ["work_assigned", "work_expired"]
    assert await world.expire.execute() == 0


# --- retries and durability -----------------------------------------------------------------------


async def test_a_passing_push_failure_is_retried_after_the_hint_and_then_sent(world):
    seeker, provider = await world.seeker(), await world.provider()
    await world.register_device.execute(provider.id, "phone")
    world.push.outcome = lambda d: PushRetryLater("QUOTA_EXCEEDED", timedelta(seconds=90))
    assignment = await world.assign(seeker, provider)
    stored = await world.notification(assignment.notification_id)
    assert stored.push_state is PushState.PENDING and stored.push_error == "QUOTA_EXCEEDED"
    assert stored.next_attempt_at >= world.clock.now() + timedelta(seconds=90)

    world.push.outcome = None
    world.clock.advance(timedelta(seconds=60))
    assert await world.dispatch.execute() == 0  # not due yet: Retry-After is honoured
    world.clock.advance(timedelta(seconds=31))
    assert await world.dispatch.execute() == 1
    stored = await world.notification(assignment.notification_id)
    assert stored.push_state is PushState.SENT and stored.attempts == 2 and stored.next_attempt_at is None


async def test_retries_stop_after_the_configured_attempts_with_the_reason(world):
    seeker, provider = await world.seeker(), await world.provider()
    await world.register_device.execute(provider.id, "phone")
    world.push.outcome = lambda d: PushRetryLater("UNAVAILABLE")
    world.assign_work._work_policy = WorkPolicy(time_to_answer=timedelta(days=1))
    assignment = await world.assign(seeker, provider)
    for _ in range(20):
        world.clock.advance(world.delivery_policy.max_retry_delay)  # also past each lease:
        await world.dispatch.execute()
        await world.settle()  # so the outcome is written before the next run, as real time between runs ensures
    stored = await world.notification(assignment.notification_id)
    assert stored.attempts == world.delivery_policy.max_attempts
    assert stored.push_state is PushState.FAILED and "UNAVAILABLE" in stored.push_error
    assert stored.delivery_status is DeliveryStatus.FAILED and stored.next_attempt_at is None


async def test_an_offer_is_not_pushed_after_it_expired(world):
    seeker, provider = await world.seeker(), await world.provider()
    await world.register_device.execute(provider.id, "phone")
    world.push.outcome = lambda d: PushRetryLater("UNAVAILABLE")
    assignment = await world.assign(seeker, provider)
    world.clock.advance(world.work_policy.time_to_answer)
    await world.dispatch.execute()
    stored = await world.notification(assignment.notification_id)
    assert stored.push_state is PushState.FAILED and stored.push_error == "offer_expired_before_push"
    assert len(world.push.sent) == 1


async def test_backoff_grows_and_is_capped():
    from application.policy import DeliveryPolicy

    policy = DeliveryPolicy()
    delays = [policy.retry_delay(a) for a in range(1, 12)]
    assert all(policy.first_retry_delay / 2 <= d <= policy.max_retry_delay for d in delays)
    assert delays[-1] >= policy.max_retry_delay / 2
    assert policy.retry_delay(1, timedelta(minutes=3)) == timedelta(minutes=3)


async def test_socket_outage_is_retried_by_the_dispatcher(world):
    seeker, provider = await world.seeker(), await world.provider()
    socket = await world.connect(provider)
    world.broker.down = True
    assignment = await world.assign(seeker, provider)
    assert not assignment.websocket_sent
    stored = await world.notification(assignment.notification_id)
    assert stored.socket_state is SocketState.PENDING and stored.socket_error == "broker_unavailable"
    world.broker.down = False
    world.clock.advance(world.delivery_policy.max_retry_delay)
    await world.dispatch.execute()
    assert socket.types() == ["work_assigned"]
    assert (await world.notification(assignment.notification_id)).socket_state is SocketState.SENT


async def test_a_crash_between_saving_and_sending_loses_nothing(world):
    seeker, provider = await world.seeker(), await world.provider()
    await world.register_device.execute(provider.id, "phone")

    async def crash(*args, **kwargs):
        raise SystemExit("process died after commit")

    world.delivery.deliver = crash
    with pytest.raises(SystemExit):
        await world.assign(seeker, provider)
    del world.delivery.deliver  # the restarted process
    (saved,) = world.store.tables.notifications.values()
    assert saved.delivery_status is DeliveryStatus.PENDING and world.push.sent == []

    assert await world.dispatch.execute() == 0  # still leased to the dead process
    world.clock.advance(world.delivery_policy.lease)
    assert await world.dispatch.execute() == 1
    assert [p.device.user_id for p in world.push.sent] == [provider.id]


async def test_a_slow_push_does_not_hold_the_request(world):
    seeker, provider = await world.seeker(), await world.provider()
    await world.register_device.execute(provider.id, "phone")
    release = asyncio.Event()
    real_send = world.push.send

    async def slow_send(message, devices):
        await release.wait()
        return await real_send(message, devices)

    world.push.send = slow_send
    world.delivery._policy = world.delivery_policy.__class__(request_budget=timedelta(milliseconds=20))
    world.assign_work._delivery_policy = world.delivery._policy
    socket = await world.connect(provider)

    assignment = await world.assign(seeker, provider)

    assert (assignment.fcm_sent, assignment.websocket_sent) == (False, True)
    stored = await world.notification(assignment.notification_id)
    assert stored.push_state is PushState.PENDING and stored.socket_state is SocketState.SENT
    release.set()
    await world.delivery.drain(within=1)
    assert (await world.notification(assignment.notification_id)).push_state is PushState.SENT
    assert socket.types() == ["work_assigned"]


# --- devices, availability, lists -------------------------------------------------------------------


async def test_registering_a_known_token_moves_it_to_the_caller_and_revives_it(world):
    first, second = await world.provider("A"), await world.provider("B")
    registered = await world.register_device.execute(first.id, "shared-phone", "android")
    async with world.uow() as uow:
        await uow.devices.invalidate({registered.device.id: "UNREGISTERED"}, world.clock.now())
        await uow.commit()
    again = await world.register_device.execute(second.id, "shared-phone", "Android")
    assert again.device.id == registered.device.id and again.device.user_id == second.id
    assert again.device.is_active and again.device.platform == "android"
    assert again.profile.id == second.id
    with pytest.raises(InvalidInput) as bad:
        await world.register_device.execute(first.id, "has space")
    assert bad.value.field == "fcm_token"


async def test_active_providers_near_a_point_nearest_first(world):
    near, far, off = await world.provider("Near"), await world.provider("Far"), await world.provider("Off")
    unplaced = await world.provider("Unplaced")
    await world.set_availability.execute(near.id, True, GeoPoint(12.35, 67.89))
    await world.set_availability.execute(far.id, True, GeoPoint(12.60, 67.89))
    await world.set_availability.execute(off.id, False, GeoPoint(12.345, 67.890))
    with pytest.raises(NotAProvider):
        await world.set_availability.execute((await world.seeker()).id, True)

    asker = (await world.seeker()).id
    with pytest.raises(ProfileNotFound):
        await world.list_active_providers.execute(10**9)
    everyone = await world.list_active_providers.execute(asker)
    assert [a.profile.name for a in everyone] == ["Near", "Far", "Unplaced"]
    assert unplaced.id in {a.profile.id for a in everyone}

    nearby = await world.list_active_providers.execute(asker, GeoPoint(12.345, 67.890), radius_km=10)
    assert [a.profile.name for a in nearby] == ["Near"] and nearby[0].distance_km < 1
    ordered = await world.list_active_providers.execute(asker, GeoPoint(12.345, 67.890), radius_km=100)
    assert [a.profile.name for a in ordered] == ["Near", "Far"]
    with pytest.raises(InvalidInput):
        await world.list_active_providers.execute(asker, None, radius_km=5)


async def test_work_orders_are_listed_per_role_newest_first_with_a_cursor(world):
    seeker, other_seeker, provider = await world.seeker(), await world.seeker("Other"), await world.provider()
    ids = [(await world.assign(seeker, provider)).order.id for _ in range(5)]
    await world.assign(other_seeker, provider)
    await world.respond.execute(provider.id, ids[0], True)

    first = await world.list_work_orders.execute(seeker.id, limit=3)
    assert [o.id for o in first.items] == ids[::-1][:3] and first.next_cursor == ids[2]
    rest = await world.list_work_orders.execute(seeker.id, limit=3, before_id=first.next_cursor)
    assert [o.id for o in rest.items] == [ids[1], ids[0]] and rest.next_cursor is None
    accepted = await world.list_work_orders.execute(seeker.id, status=WorkStatus.ACCEPTED)
    assert [o.id for o in accepted.items] == [ids[0]]
    assert len((await world.list_work_orders.execute(provider.id)).items) == 6
    with pytest.raises(InvalidInput):
        await world.list_work_orders.execute(seeker.id, limit=0)


async def test_notifications_are_private_to_their_recipient(world):
    seeker, provider = await world.seeker(), await world.provider()
    assignment = await world.assign(seeker, provider)
    with pytest.raises(NotificationNotFound):
        await world.acknowledge.execute(seeker.id, assignment.notification_id)
    assert (await world.list_notifications.execute(seeker.id)).items == []
    history = await world.list_notifications.execute(provider.id)
    assert [n.id for n in history.items] == [assignment.notification_id]
    first = await world.acknowledge.execute(provider.id, assignment.notification_id)
    world.clock.advance(timedelta(minutes=1))
    again = await world.acknowledge.execute(provider.id, assignment.notification_id)
    assert first.delivered_at == again.delivered_at


def test_percentiles_take_the_nearest_rank():
    from application.use_cases.get_delivery_stats import percentiles

    assert percentiles([]) == {"p50": None, "p90": None, "p99": None, "samples": 0}
    found = percentiles([float(i) for i in range(1, 101)])
    assert (found["p50"], found["p90"], found["p99"], found["samples"]) == (50.0, 90.0, 99.0, 100)
    assert percentiles([3.0])["p99"] == 3.0
