"""The audit trail and the console's overviews, the same on memory, SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from domain.audit import AttemptOutcome, DeliveryAttempt
from domain.devices import AddressKind, DeviceToken
from domain.notifications import NotificationKind, SocketState
from domain.work_orders import WorkStatus
from tests.integration.test_repository_contract import T0, add_people, new_notification, new_order


async def _order_with_notifications(uow_factory):
    seeker, (provider, other) = await add_people(uow_factory)
    async with uow_factory() as uow:
        order = await uow.work_orders.add(new_order(seeker, provider))
        elsewhere = await uow.work_orders.add(new_order(seeker, other))
        offer = new_notification(provider, order)
        later = new_notification(seeker, order, at=T0 + timedelta(seconds=5), kind=NotificationKind.WORK_ACCEPTED)
        unrelated = new_notification(other, elsewhere)
        await uow.notifications.add_many([offer, later, unrelated])
        await uow.commit()
    return seeker, provider, order, (offer, later, unrelated)


def attempt(n, at, outcome=AttemptOutcome.SENT, channel="push", **fields) -> DeliveryAttempt:
    return DeliveryAttempt(n.id, channel, at, outcome, duration_ms=12, instance="host:1", **fields)


async def test_attempts_are_kept_in_the_order_they_were_made_and_swept_by_age(uow_factory):
    _, _, _, (offer, later, unrelated) = await _order_with_notifications(uow_factory)
    long_detail = "UNAVAILABLE: " + "x" * 900
    async with uow_factory() as uow:
        await uow.attempts.add_many(
            [
                attempt(offer, T0 + timedelta(seconds=1), AttemptOutcome.RETRY, device_id=7, detail=long_detail),
                attempt(offer, T0, AttemptOutcome.NOT_CONNECTED, channel="socket"),
                attempt(later, T0 + timedelta(days=40), detail="projects/p/messages/1", device_id=8),
                attempt(unrelated, T0),
            ]
        )
        await uow.commit()
    async with uow_factory() as uow:
        found = await uow.attempts.for_notifications([offer.id, later.id])
        assert await uow.attempts.for_notifications([]) == []
    assert [(a.notification_id, a.channel, a.outcome) for a in found] == [
        (offer.id, "socket", AttemptOutcome.NOT_CONNECTED),
        (offer.id, "push", AttemptOutcome.RETRY),
        (later.id, "push", AttemptOutcome.SENT),
    ]
    retry = found[1]
    assert retry.at == T0 + timedelta(seconds=1) and retry.device_id == 7 and retry.duration_ms == 12
    assert retry.detail == long_detail[:500] and retry.instance == "host:1" and retry.id is not None

    async with uow_factory() as uow:
        assert await uow.attempts.delete_before(T0 + timedelta(days=1), limit=2) == 2
        assert await uow.attempts.delete_before(T0 + timedelta(days=1), limit=2) == 1
        assert await uow.attempts.delete_before(T0 + timedelta(days=1), limit=2) == 0
        await uow.commit()
    async with uow_factory() as uow:
        left = await uow.attempts.for_notifications([offer.id, later.id, unrelated.id])
    assert [a.detail for a in left] == ["projects/p/messages/1"]


async def test_an_orders_notifications_and_the_due_backlog(uow_factory):
    _, _, order, (offer, later, _) = await _order_with_notifications(uow_factory)
    async with uow_factory() as uow:
        assert [n.id for n in await uow.notifications.list_for_work(order.id, 10)] == [offer.id, later.id]
        assert await uow.notifications.due_backlog(T0) == (0, None)
        offer.next_attempt_at, later.next_attempt_at = T0 + timedelta(seconds=3), T0 + timedelta(seconds=30)
        await uow.notifications.save_deliveries([offer, later])
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.notifications.due_backlog(T0 + timedelta(seconds=10)) == (1, T0 + timedelta(seconds=3))
        assert await uow.notifications.due_backlog(T0 + timedelta(minutes=1)) == (2, T0 + timedelta(seconds=3))


async def test_operator_overviews(uow_factory):
    _, provider, order, (offer, _, unrelated) = await _order_with_notifications(uow_factory)
    async with uow_factory() as uow:
        offer.acknowledge(T0 + timedelta(seconds=2))
        unrelated.push_failed("SENDER_ID_MISMATCH: nope")
        unrelated.socket_state = SocketState.FAILED
        await uow.notifications.save_deliveries([offer, unrelated])
        old = await uow.devices.add(DeviceToken(provider.id, "tok-old", AddressKind.REGISTRATION_TOKEN, "android", T0))
        new = await uow.devices.add(DeviceToken(provider.id, "tok-new", AddressKind.REGISTRATION_TOKEN, "ios", T0))
        await uow.devices.invalidate({old.id: "UNREGISTERED: gone"}, T0)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.operator.orders_by_status() == {WorkStatus.PENDING.value: 2}
        assert [o.id for o in await uow.operator.recent_orders(10)] == [order.id + 1, order.id]
        assert [o.id for o in await uow.operator.recent_orders(10, party_id=provider.id)] == [order.id]
        assert [o.id for o in await uow.operator.recent_orders(1)] == [order.id + 1]
        devices = await uow.operator.devices_of(provider.id)
        assert [(d.id, d.invalid_reason) for d in devices] == [(new.id, None), (old.id, "UNREGISTERED: gone")]
        activity = await uow.operator.activity_per_minute(T0 - timedelta(minutes=5))
        assert await uow.operator.activity_per_minute(T0 + timedelta(minutes=1)) == []
    assert len(activity) == 1
    assert activity[0].minute == T0.replace(second=0, microsecond=0)
    assert (activity[0].created, activity[0].delivered, activity[0].failed) == (3, 1, 1)


async def test_retention_forgets_old_notifications_and_closed_orders_with_what_hangs_on_them(uow_factory):
    seeker, provider, order, (offer, later, unrelated) = await _order_with_notifications(uow_factory)
    async with uow_factory() as uow:
        await uow.attempts.add_many([attempt(offer, T0), attempt(later, T0)])
        still_open = await uow.work_orders.add(new_order(seeker, provider, at=T0))
        order.cancel(seeker.id, T0 + timedelta(minutes=1))
        await uow.work_orders.save_transition(order, WorkStatus.PENDING)
        await uow.commit()
    async with uow_factory() as uow:
        # Closed before the cutoff: the order goes, with both its notifications and their attempts.
        assert await uow.work_orders.delete_closed_before(T0 + timedelta(minutes=2), limit=10) == 1
        assert await uow.work_orders.delete_closed_before(T0 + timedelta(minutes=2), limit=10) == 0
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.work_orders.get(order.id) is None and await uow.work_orders.get(still_open.id) is not None
        assert await uow.notifications.get_many([offer.id, later.id]) == []
        assert await uow.attempts.for_notifications([offer.id, later.id]) == []
        # Notifications by age: the unrelated one (created at T0) goes, its order stays.
        assert await uow.notifications.delete_before(T0, limit=10) == 0
        assert await uow.notifications.delete_before(T0 + timedelta(seconds=1), limit=10) == 1
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.notifications.get(unrelated.id) is None
        assert await uow.work_orders.get(unrelated.work_id) is not None
