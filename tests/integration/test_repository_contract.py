"""One contract for every store: memory, SQLite and PostgreSQL must behave the same."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.exc import IntegrityError

from domain.devices import AddressKind, DeviceToken
from domain.geo import GeoPoint
from domain.notifications import Notification, NotificationKind, PushState, SocketState
from domain.profiles import Profile, Role
from domain.work_orders import WorkOrder, WorkStatus

T0 = datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=UTC)


async def add_people(uow_factory, providers=2):
    async with uow_factory() as uow:
        seeker = await uow.profiles.add(Profile(Role.SEEKER, "Sam", "900"))
        found = [
            await uow.profiles.add(
                Profile(Role.PROVIDER, f"P{i}", "800", is_active_for_work=True, location=GeoPoint(12 + i, 67))
            )
            for i in range(providers)
        ]
        await uow.commit()
    return seeker, found


def new_order(seeker, provider, at=T0) -> WorkOrder:
    return WorkOrder(
        seeker_id=seeker.id,
        provider_id=provider.id,
        service_type="worker",
        message="Paint the wall ✓",
        distance="2.5km",
        location=GeoPoint(12.345, 67.89),
        status=WorkStatus.PENDING,
        created_at=at,
        expires_at=at + timedelta(minutes=10),
    )


def new_notification(recipient, order, at=T0, kind=NotificationKind.WORK_ASSIGNED, **fields) -> Notification:
    return Notification(
        recipient_id=recipient.id,
        kind=kind,
        work_id=order.id,
        payload={"work_id": order.id, "latitude": 12.345, "nested": {"a": [1, "b"]}, "text": "ünïcode"},
        created_at=at,
        **fields,
    )


async def test_profiles_round_trip_and_commit_or_roll_back_as_one(uow_factory):
    seeker, (provider, _) = await add_people(uow_factory)
    async with uow_factory() as uow:
        assert await uow.profiles.get(seeker.id) == seeker
        assert await uow.profiles.get(999) is None
        people, _ = await uow.profiles.get_many_with_devices([seeker.id, provider.id, 999])
        assert set(people) == {seeker.id, provider.id}
        assert await uow.profiles.existing_ids([seeker.id, 999, provider.id]) == {seeker.id, provider.id}
        assert await uow.profiles.existing_ids([]) == set()
        provider.set_availability(False, GeoPoint(-33.9, 151.2), T0)
        await uow.profiles.save(provider)
        await uow.profiles.add(Profile(Role.SEEKER, "Ghost", "1"))
        # no commit: everything above is undone
    async with uow_factory() as uow:
        stored = await uow.profiles.get(provider.id)
        assert stored.is_active_for_work and stored.location == GeoPoint(12, 67)
        assert await uow.profiles.get(seeker.id + 3) is None
        provider.set_availability(False, GeoPoint(-33.9, 151.2), T0)
        await uow.profiles.save(provider)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.profiles.get(provider.id) == provider
        assert (await uow.profiles.get(provider.id)).location_updated_at == T0


async def test_active_providers_listed_and_found_near_a_point(uow_factory):
    _, providers = await add_people(uow_factory, providers=4)
    async with uow_factory() as uow:
        everyone = await uow.profiles.list_active_providers(10)
        assert [p.id for p in everyone] == [p.id for p in providers]
        near = await uow.nearby.nearest(GeoPoint(13.6, 67), 10, within_km=150)
        assert [n.profile.name for n in near] == ["P2", "P1"]
        assert len(await uow.profiles.list_active_providers(2)) == 2


async def test_devices_register_list_and_invalidate(uow_factory):
    seeker, (provider, other) = await add_people(uow_factory)
    async with uow_factory() as uow:
        phone = await uow.devices.add(DeviceToken.register(provider.id, "tok-1", "android", T0))
        tablet = await uow.devices.add(
            DeviceToken.register(provider.id, "fid-2", "ios", T0 + timedelta(seconds=1), AddressKind.INSTALLATION_ID)
        )
        await uow.devices.add(DeviceToken.register(other.id, "tok-3", None, T0))
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.devices.get_by_token("fid-2") == tablet
        active = await uow.devices.active_for_users([provider.id, seeker.id])
        assert list(active) == [provider.id] and active[provider.id] == [phone, tablet]
        people, devices = await uow.profiles.get_many_with_devices([seeker.id, provider.id, other.id, 999])
        assert people == {p.id: p for p in (seeker, provider, other)}
        assert devices == {provider.id: [phone, tablet], other.id: [await uow.devices.get_by_token("tok-3")]}
        await uow.devices.invalidate({phone.id: "UNREGISTERED"}, T0)
        await uow.devices.invalidate({phone.id: "LATER"}, T0 + timedelta(hours=1))
        await uow.commit()
    async with uow_factory() as uow:
        dead = await uow.devices.get_by_token("tok-1")
        assert dead.invalidated_at == T0 and dead.invalid_reason == "UNREGISTERED"
        assert (await uow.devices.active_for_users([provider.id]))[provider.id] == [tablet]
        assert (await uow.profiles.get_many_with_devices([provider.id]))[1] == {provider.id: [tablet]}
        dead.reregister(other.id, "web", T0)
        await uow.devices.save(dead)
        await uow.commit()
    async with uow_factory() as uow:
        assert [d.token for d in (await uow.devices.active_for_users([other.id]))[other.id]] == ["tok-1", "tok-3"]


async def test_work_orders_round_trip_and_guarded_transitions(uow_factory):
    seeker, (provider, _) = await add_people(uow_factory)
    async with uow_factory() as uow:
        order = await uow.work_orders.add(new_order(seeker, provider))
        await uow.commit()
    async with uow_factory() as uow:
        stored = await uow.work_orders.get(order.id)
        assert stored == order and stored.created_at.tzinfo is not None
        stored.answer(provider.id, True, T0 + timedelta(seconds=5))
        assert await uow.work_orders.save_transition(stored, WorkStatus.PENDING)
        stale = await uow.work_orders.get(order.id)
        assert stale.status is WorkStatus.ACCEPTED
        order.status = WorkStatus.REJECTED
        assert not await uow.work_orders.save_transition(order, WorkStatus.PENDING)
        await uow.commit()
    async with uow_factory() as uow:
        final = await uow.work_orders.get(order.id)
        assert final.status is WorkStatus.ACCEPTED and final.responded_at == T0 + timedelta(seconds=5)


async def test_work_orders_listed_per_role_with_filter_and_cursor(uow_factory):
    seeker, (provider, other) = await add_people(uow_factory)
    async with uow_factory() as uow:
        ids = [(await uow.work_orders.add(new_order(seeker, provider, T0 + timedelta(seconds=i)))).id for i in range(4)]
        await uow.work_orders.add(new_order(seeker, other))
        done = await uow.work_orders.get(ids[1])
        done.status = WorkStatus.REJECTED
        await uow.work_orders.save_transition(done, WorkStatus.PENDING)
        await uow.commit()
    async with uow_factory() as uow:
        mine = await uow.work_orders.list_for_user(provider.id, Role.PROVIDER, None, 10, None)
        assert [o.id for o in mine] == ids[::-1]
        page = await uow.work_orders.list_for_user(provider.id, Role.PROVIDER, None, 2, ids[3])
        assert [o.id for o in page] == [ids[2], ids[1]]
        rejected = await uow.work_orders.list_for_user(seeker.id, Role.SEEKER, WorkStatus.REJECTED, 10, None)
        assert [o.id for o in rejected] == [ids[1]]
        assert len(await uow.work_orders.list_for_user(seeker.id, Role.SEEKER, None, 10, None)) == 5


async def test_overdue_orders_oldest_first(uow_factory):
    seeker, (provider, _) = await add_people(uow_factory)
    async with uow_factory() as uow:
        late = await uow.work_orders.add(new_order(seeker, provider, T0 - timedelta(hours=1)))
        later = await uow.work_orders.add(new_order(seeker, provider, T0 - timedelta(minutes=30)))
        await uow.work_orders.add(new_order(seeker, provider, T0))
        await uow.commit()
    async with uow_factory() as uow:
        assert [o.id for o in await uow.work_orders.overdue(T0, 10)] == [late.id, later.id]
        assert [o.id for o in await uow.work_orders.overdue(T0, 1)] == [late.id]


async def test_notifications_round_trip_claim_replay_and_history(uow_factory):
    seeker, (provider, _) = await add_people(uow_factory)
    async with uow_factory() as uow:
        order = await uow.work_orders.add(new_order(seeker, provider))
        first = new_notification(provider, order, next_attempt_at=T0 + timedelta(seconds=30), attempts=1)
        second = new_notification(provider, order, T0 + timedelta(seconds=1))
        third = new_notification(seeker, order, next_attempt_at=T0)
        await uow.notifications.add_many([first, second, third])
        await uow.commit()
    assert first.id < second.id < third.id
    async with uow_factory() as uow:
        assert await uow.notifications.get(first.id) == first
        assert [n.id for n in await uow.notifications.get_many([third.id, first.id, 999])] == [first.id, third.id]
        assert [n.id for n in await uow.notifications.claim_due(T0, 10)] == [third.id]
        due = await uow.notifications.claim_due(T0 + timedelta(minutes=1), 10)
        assert [n.id for n in due] == [third.id, first.id]
        first.push_sent("projects/p/messages/1")
        first.socket_not_connected()
        first.schedule(None, 8)
        first.acknowledge(T0 + timedelta(minutes=2))
        await uow.notifications.save_delivery(first)
        await uow.commit()
    async with uow_factory() as uow:
        stored = await uow.notifications.get(first.id)
        assert stored == first and stored.push_state is PushState.SENT
        assert stored.socket_state is SocketState.NOT_CONNECTED and stored.next_attempt_at is None
        assert stored.payload == {"work_id": order.id, "latitude": 12.345, "nested": {"a": [1, "b"]}, "text": "ünïcode"}
        replay = await uow.notifications.replay_for_user(provider.id, T0, T0, 10)
        assert [(n.id, status) for n, status in replay] == [(second.id, WorkStatus.PENDING)]
        assert await uow.notifications.replay_for_user(provider.id, T0 + timedelta(seconds=2), T0, 10) == []
        # An acknowledged notification is never due again, whatever a late outcome write says.
        first.next_attempt_at = T0
        await uow.notifications.save_delivery(first)
        assert first.id not in [n.id for n in await uow.notifications.claim_due(T0 + timedelta(hours=1), 10)]
        history = await uow.notifications.list_for_user(provider.id, 10, None)
        assert [n.id for n in history] == [second.id, first.id]
        assert [n.id for n in await uow.notifications.list_for_user(provider.id, 10, second.id)] == [first.id]


async def test_replay_is_newest_first_with_current_status_and_no_dead_offers(uow_factory):
    seeker, (provider, _) = await add_people(uow_factory)
    async with uow_factory() as uow:
        live = await uow.work_orders.add(new_order(seeker, provider))
        taken = await uow.work_orders.add(new_order(seeker, provider))
        stale = await uow.work_orders.add(new_order(seeker, provider, T0 - timedelta(minutes=20)))
        # 'live' is pending and can be taken; 'taken' was accepted; 'stale' is past its time to answer.
        live_offer = new_notification(provider, live)
        taken_offer = new_notification(provider, taken)
        stale_offer = new_notification(provider, stale)
        told = new_notification(provider, taken, kind=NotificationKind.WORK_CANCELLED)
        await uow.notifications.add_many([live_offer, taken_offer, stale_offer, told])
        taken.answer(provider.id, True, T0)
        await uow.work_orders.save_transition(taken, WorkStatus.PENDING)
        await uow.commit()
    now = T0 + timedelta(seconds=1)
    async with uow_factory() as uow:
        rows = await uow.notifications.replay_for_user(provider.id, T0, now, 10)
        assert [(n.id, s) for n, s in rows] == [(told.id, WorkStatus.ACCEPTED), (live_offer.id, WorkStatus.PENDING)]
        later = T0 + timedelta(minutes=10, seconds=1)  # past every order's expiry: offers drop out
        assert [n.id for n, _ in await uow.notifications.replay_for_user(provider.id, T0, later, 10)] == [told.id]
        assert len(await uow.notifications.replay_for_user(provider.id, T0, now, 1)) == 1
        await uow.notifications.acknowledge_offers(live.id, provider.id, now)
        await uow.notifications.acknowledge_offers(taken.id, seeker.id, now)  # not the recipient: nothing
        await uow.commit()
    async with uow_factory() as uow:
        assert (await uow.notifications.get(live_offer.id)).delivered_at == now
        assert (await uow.notifications.get(taken_offer.id)).delivered_at is None
        assert (await uow.notifications.get(told.id)).delivered_at is None  # only offers are acknowledged
        assert live_offer.id not in [n.id for n, _ in await uow.notifications.replay_for_user(provider.id, T0, now, 10)]


async def test_after_a_broker_outage_what_sockets_missed_is_due_again(uow_factory):
    seeker, (provider, other) = await add_people(uow_factory)
    later = T0 + timedelta(hours=1)
    async with uow_factory() as uow:
        open_order = await uow.work_orders.add(new_order(seeker, provider))
        taken = await uow.work_orders.add(new_order(seeker, provider))
        missed = new_notification(provider, open_order, socket_state=SocketState.NOT_CONNECTED)
        elsewhere = new_notification(other, open_order, socket_state=SocketState.NOT_CONNECTED)
        too_old = new_notification(
            provider, open_order, T0 - timedelta(hours=1), socket_state=SocketState.NOT_CONNECTED
        )
        dead_offer = new_notification(provider, taken, socket_state=SocketState.NOT_CONNECTED)
        backing_off = new_notification(
            seeker,
            open_order,
            kind=NotificationKind.WORK_ACCEPTED,
            socket_state=SocketState.PENDING,
            socket_error="broker_unavailable",
            next_attempt_at=later,
        )
        acked = new_notification(provider, open_order, socket_state=SocketState.NOT_CONNECTED, delivered_at=T0)
        await uow.notifications.add_many([missed, elsewhere, too_old, dead_offer, backing_off, acked])
        taken.answer(provider.id, True, T0)
        await uow.work_orders.save_transition(taken, WorkStatus.PENDING)
        await uow.commit()
    now = T0 + timedelta(minutes=1)
    async with uow_factory() as uow:
        assert await uow.notifications.retry_sockets_now([provider.id], T0, now) == 2
        await uow.commit()
    async with uow_factory() as uow:
        due = {n.id: n for n in await uow.notifications.claim_due(now, 10)}
        assert set(due) == {missed.id, backing_off.id}
        assert due[missed.id].socket_state is SocketState.PENDING
        assert due[missed.id].socket_error == "missed_during_broker_outage"
        assert (await uow.notifications.get(elsewhere.id)).socket_state is SocketState.NOT_CONNECTED


async def test_delivery_stats_count_by_derived_status_channel_and_error(uow_factory):
    seeker, (provider, _) = await add_people(uow_factory)
    async with uow_factory() as uow:
        order = await uow.work_orders.add(new_order(seeker, provider))
        failed = new_notification(
            provider,
            order,
            push_state=PushState.FAILED,
            push_error="UNREGISTERED",
            socket_state=SocketState.NOT_CONNECTED,
        )
        also_failed = new_notification(
            provider,
            order,
            push_state=PushState.FAILED,
            push_error="UNREGISTERED",
            socket_state=SocketState.NOT_CONNECTED,
        )
        sent = new_notification(seeker, order, push_state=PushState.SKIPPED, socket_state=SocketState.SENT)
        delivered = new_notification(
            seeker, order, push_state=PushState.SENT, socket_state=SocketState.SENT, delivered_at=T0
        )
        retrying = new_notification(provider, order, push_error="QUOTA_EXCEEDED", next_attempt_at=T0)
        old = new_notification(provider, order, T0 - timedelta(days=2))
        await uow.notifications.add_many([failed, also_failed, sent, delivered, retrying, old])
        await uow.commit()
    async with uow_factory() as uow:
        stats = await uow.notifications.delivery_stats(T0 - timedelta(hours=1), 20)
    assert stats.total == 5
    assert dict(stats.by_delivery_status) == {"failed": 2, "sent": 1, "delivered": 1, "pending": 1}
    assert dict(stats.by_push_state) == {"failed": 2, "skipped": 1, "sent": 1, "pending": 1}
    assert dict(stats.by_socket_state) == {"not_connected": 2, "sent": 2, "pending": 1}
    assert dict(stats.push_errors) == {"UNREGISTERED": 2, "QUOTA_EXCEEDED": 1}


async def test_a_batch_of_delivery_saves_writes_each_notification_as_last_given(uow_factory):
    """The outcome recorder saves many at once, one of them twice (its socket outcome, then its push's)."""
    seeker, (provider, _) = await add_people(uow_factory)
    async with uow_factory() as uow:
        order = await uow.work_orders.add(new_order(seeker, provider))
        twice, retried, acknowledged, untouched = (new_notification(provider, order) for _ in range(4))
        await uow.notifications.add_many([twice, retried, acknowledged, untouched])
        await uow.commit()
    twice.socket_sent()
    socket_only = Notification(**{**vars(twice)})
    twice.push_sent("projects/p/messages/1")
    twice.attempts = 1
    retried.push_retry("UNAVAILABLE")
    retried.socket_not_connected()
    retried.next_attempt_at = T0 + timedelta(seconds=30)
    acknowledged.acknowledge(T0)
    async with uow_factory() as uow:
        await uow.notifications.save_deliveries([socket_only, retried, twice, acknowledged])
        await uow.commit()
    async with uow_factory() as uow:
        stored = {n.id: n for n in await uow.notifications.get_many([n.id for n in (twice, retried, acknowledged)])}
        assert await uow.notifications.get(untouched.id) == untouched
    assert stored[twice.id] == twice and stored[twice.id].push_message_id == "projects/p/messages/1"
    assert stored[retried.id] == retried and stored[retried.id].next_attempt_at == T0 + timedelta(seconds=30)
    assert stored[acknowledged.id].delivered_at == T0 and stored[acknowledged.id].next_attempt_at is None


async def test_delivery_writes_never_move_back(uow_factory):
    """Writers race (outcome recorder, replay, ack): a sent channel and an acknowledgement stick."""
    seeker, (provider, _) = await add_people(uow_factory)
    async with uow_factory() as uow:
        order = await uow.work_orders.add(new_order(seeker, provider))
        n = new_notification(provider, order)
        await uow.notifications.add_many([n])
        await uow.commit()
    stale = Notification(**{**vars(n)})
    n.push_sent("projects/p/messages/9")
    n.mark_seen_on_socket()
    n.acknowledge(T0)
    async with uow_factory() as uow:
        await uow.notifications.save_delivery(n)
        await uow.commit()
    stale.push_retry("UNAVAILABLE")
    stale.socket_not_connected()
    stale.attempts = 2
    async with uow_factory() as uow:
        await uow.notifications.save_deliveries([stale])
        await uow.commit()
    async with uow_factory() as uow:
        stored = await uow.notifications.get(n.id)
    assert stored.push_state is PushState.SENT and stored.push_message_id == "projects/p/messages/9"
    assert stored.push_error is None and stored.socket_state is SocketState.SENT
    assert stored.delivered_at == T0 and stored.attempts == 2


async def test_assignment_reads_the_parties_the_pending_count_and_a_fresh_id_in_one_go(uow_factories):
    uow_factory, single_write = uow_factories
    seeker, (provider, other) = await add_people(uow_factory)
    async with uow_factory() as uow:
        await uow.devices.add(DeviceToken(provider.id, "tok-a", AddressKind.REGISTRATION_TOKEN, "android", T0))
        for at, status in [(T0, WorkStatus.PENDING), (T0, WorkStatus.PENDING), (T0, WorkStatus.ACCEPTED)]:
            await uow.work_orders.add(replace_status(new_order(seeker, other, at), status))
        await uow.work_orders.add(new_order(seeker, other, T0 - timedelta(hours=1)))  # pending but expired
        await uow.commit()
    async with single_write() as uow:
        first = await uow.work_orders.read_for_assignment(seeker.id, provider.id, T0, pending_cap=10)
        capped = await uow.work_orders.read_for_assignment(seeker.id, provider.id, T0, pending_cap=1)
        uncounted = await uow.work_orders.read_for_assignment(seeker.id, provider.id, T0, pending_cap=0)
    assert set(first.people) == {seeker.id, provider.id}
    assert first.people[provider.id] == provider
    assert [d.token for d in first.devices[provider.id]] == ["tok-a"] and seeker.id not in first.devices
    assert (first.seeker_pending, capped.seeker_pending, uncounted.seeker_pending) == (2, 1, 0)
    assert first.order_id > 4
    async with single_write() as uow:
        nobody = await uow.work_orders.read_for_assignment(999, 998, T0, pending_cap=10)
    assert nobody.people == {} and nobody.devices == {} and nobody.seeker_pending == 0 and nobody.order_id > 4


async def test_an_assignment_saves_its_order_with_the_reserved_id_and_its_notification_as_one(uow_factories):
    uow_factory, single_write = uow_factories
    seeker, (provider, _) = await add_people(uow_factory)
    async with uow_factory() as uow:
        await uow.devices.add(DeviceToken(provider.id, "tok-b", AddressKind.REGISTRATION_TOKEN, "ios", T0))
        await uow.devices.add(DeviceToken(seeker.id, "tok-s", AddressKind.REGISTRATION_TOKEN, "ios", T0))
        await uow.commit()
    async with single_write() as uow:
        reads, order = await order_with_a_reserved_id(uow, seeker, provider)
        notification = new_notification(provider, order, attempts=1, next_attempt_at=T0 + timedelta(seconds=30))
        devices = await uow.work_orders.add_assignment_if_current(order, notification, seeker, provider, 0)
        await uow.commit()
    assert [d.token for d in devices] == ["tok-b"]  # the recipient's
    async with uow_factory() as uow:
        assert await uow.work_orders.get(reads.order_id) == order
        assert await uow.notifications.get(notification.id) == notification
        # the next id is a new one
        again = await uow.work_orders.read_for_assignment(seeker.id, provider.id, T0, pending_cap=0)
        assert again.order_id > reads.order_id


async def test_an_assignment_saves_nothing_once_a_party_reads_differently_or_the_seeker_is_full(uow_factories):
    uow_factory, single_write = uow_factories
    seeker, (provider, other) = await add_people(uow_factory)
    moved = replace(provider, location=GeoPoint(1, 1), location_updated_at=T0)  # the location is not compared
    changes = {
        "renamed provider": (seeker, replace(provider, name="Someone else"), 0),
        "provider off duty": (seeker, replace(provider, is_active_for_work=False), 0),
        "seeker's new mobile": (replace(seeker, mobile="901"), provider, 0),
        "not that provider": (seeker, replace(other, id=provider.id), 0),
        "seeker full": (seeker, moved, 1),
    }
    async with uow_factory() as uow:
        await uow.work_orders.add(new_order(seeker, other))  # one pending order
        await uow.commit()
    for what, (as_seen_seeker, as_seen_provider, cap) in changes.items():
        async with single_write() as uow:
            reads, order = await order_with_a_reserved_id(uow, seeker, provider)
            notification = new_notification(provider, order)
            saved = await uow.work_orders.add_assignment_if_current(
                order, notification, as_seen_seeker, as_seen_provider, cap
            )
            await uow.commit()
        assert saved is None, what
        async with uow_factory() as uow:
            assert await uow.work_orders.get(reads.order_id) is None, what
    async with single_write() as uow:
        reads, order = await order_with_a_reserved_id(uow, seeker, provider)
        assert (
            await uow.work_orders.add_assignment_if_current(order, new_notification(provider, order), seeker, moved, 2)
            == []
        )
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.work_orders.get(reads.order_id) == order


async def test_a_reserved_order_id_is_fresh_and_given_once(uow_factories, request):
    uow_factory, single_write = uow_factories
    seeker, (provider, _) = await add_people(uow_factory)
    async with single_write() as uow:
        reads, order = await order_with_a_reserved_id(uow, seeker, provider)
        await uow.work_orders.add_assignment_if_current(order, new_notification(provider, order), seeker, provider, 0)
        await uow.commit()
    async with single_write() as uow:
        first, second = uow.work_orders.reserved_order_id(), uow.work_orders.reserved_order_id()
    if "sqlite" in request.node.callspec.id:
        assert first is None  # its next id is known only under the writer's lock: read_for_assignment
        return
    assert first is not None and first > reads.order_id
    assert second is None or second > first  # PostgreSQL holds one spare per earlier write
    async with single_write() as uow:
        order = new_order(seeker, provider)
        order.id = first
        await uow.work_orders.add_assignment_if_current(order, new_notification(provider, order), seeker, provider, 0)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.work_orders.get(first) == order


async def test_an_assignment_that_cannot_save_its_notification_saves_no_order(uow_factories, request):
    if "memory" in request.node.callspec.id:
        pytest.skip("the memory store checks no foreign keys")
    uow_factory, single_write = uow_factories
    seeker, (provider, _) = await add_people(uow_factory)
    async with single_write() as uow:
        reads, order = await order_with_a_reserved_id(uow, seeker, provider)
        ghost = Profile(Role.PROVIDER, "Ghost", "1", id=provider.id + 1000)
        with pytest.raises(IntegrityError):
            await uow.work_orders.add_assignment_if_current(order, new_notification(ghost, order), seeker, provider, 0)
    async with uow_factory() as uow:
        assert await uow.work_orders.get(reads.order_id) is None


async def order_with_a_reserved_id(uow, seeker, provider):
    reads = await uow.work_orders.read_for_assignment(seeker.id, provider.id, T0, pending_cap=0)
    order = new_order(seeker, provider)
    order.id = reads.order_id
    return reads, order


def replace_status(order: WorkOrder, status: WorkStatus) -> WorkOrder:
    order.status = status
    return order
