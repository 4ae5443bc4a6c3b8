"""Every delivery attempt leaves a record; operators read them as an order's timeline and can retry."""

from __future__ import annotations

from datetime import timedelta

import pytest

from application.ports import PushRetryLater, PushSent, PushTokenInvalid
from application.use_cases.get_work_order_timeline import GetWorkOrderTimeline
from application.use_cases.retry_notification_now import RetryNotificationNow
from application.use_cases.sweep_old_records import Retention, SweepOldRecords
from domain.audit import AttemptOutcome
from domain.errors import InvalidTransition, NotificationNotFound, WorkOrderNotFound
from domain.notifications import DeliveryStatus, PushState


async def _attempts(world, notification_id):
    await world.settle()
    async with world.uow() as uow:
        return await uow.attempts.for_notifications([notification_id])


async def test_each_channel_and_device_leaves_a_record(world):
    seeker, provider = await world.seeker(), await world.provider()
    good = await world.register_device.execute(provider.id, "good-token", "android")
    dead = await world.register_device.execute(provider.id, "dead-token", "ios")
    world.push.outcome = lambda d: PushSent("projects/p/messages/9") if d.token == "good-token" else (
        PushTokenInvalid("UNREGISTERED: the app was uninstalled")
    )  # fmt: skip

    assignment = await world.assign(seeker, provider)

    records = await _attempts(world, assignment.notification_id)
    assert len(records) == 3
    assert {(a.channel, a.device_id, a.outcome, a.detail) for a in records} == {
        ("socket", None, AttemptOutcome.NOT_CONNECTED, None),
        ("push", good.device.id, AttemptOutcome.SENT, "projects/p/messages/9"),
        ("push", dead.device.id, AttemptOutcome.INVALID_DEVICE, "UNREGISTERED: the app was uninstalled"),
    }
    assert {a.at for a in records} == {world.clock.now()} and all(a.duration_ms >= 0 for a in records)
    assert {a.instance for a in records} == {"local"}


async def test_retries_add_records_and_the_timeline_tells_the_whole_story(world):
    seeker, provider = await world.seeker(), await world.provider()
    await world.register_device.execute(provider.id, "phone", "android")
    world.push.outcome = lambda d: PushRetryLater("UNAVAILABLE: try later")
    assignment = await world.assign(seeker, provider)
    await world.settle()
    world.push.outcome = None
    world.clock.advance(timedelta(minutes=5))
    await world.dispatch.execute()
    await world.connect(provider)
    await world.respond.execute(provider.id, assignment.order.id, True)
    await world.settle()

    timeline = await GetWorkOrderTimeline(world.uow).execute(assignment.order.id)

    offer_attempts = [a for a in timeline.attempts if a.notification_id == assignment.notification_id]
    push = [a.outcome for a in offer_attempts if a.channel == "push"]
    assert push == [AttemptOutcome.RETRY, AttemptOutcome.SENT]
    socket = [(a.outcome, a.detail) for a in offer_attempts if a.channel == "socket"]
    assert socket[-1] == (AttemptOutcome.SENT, "replayed on connect")  # the provider came online
    events = [e.event for e in timeline.events]
    assert events[0] == "order_created" and events[1] == "notification_created"
    assert "answered" in events and "acknowledged" in events
    assert [e.at for e in timeline.events] == sorted(e.at for e in timeline.events)
    answered = next(e for e in timeline.events if e.event == "answered")
    assert answered.details == {"status": "accepted"}
    kinds = [n.kind.value for n in timeline.notifications]
    assert kinds == ["work_assigned", "work_accepted"]
    with pytest.raises(WorkOrderNotFound):
        await GetWorkOrderTimeline(world.uow).execute(assignment.order.id + 100)


async def test_the_sweep_forgets_attempts_past_retention_only(world):
    seeker, provider = await world.seeker(), await world.provider()
    first = await world.assign(seeker, provider)
    await world.settle()
    world.clock.advance(timedelta(days=20))
    second = await world.assign(seeker, provider)
    await world.settle()
    world.clock.advance(timedelta(days=15))
    old = len(await _attempts(world, first.notification_id))
    assert old == 2  # socket (not connected) + push (skipped: no device)

    keep = Retention(attempts=timedelta(days=30), notifications=timedelta(days=365))
    deleted, backlog = await SweepOldRecords(world.uow, world.clock, keep).execute()

    assert deleted == old and backlog is False
    assert await _attempts(world, first.notification_id) == []
    assert len(await _attempts(world, second.notification_id)) == 2


async def test_an_operator_retries_a_failed_notification_with_a_fresh_set_of_attempts(world):
    seeker, provider = await world.seeker(), await world.provider()
    await world.register_device.execute(provider.id, "dead", "android")
    world.push.outcome = lambda d: PushTokenInvalid("UNREGISTERED")
    assignment = await world.assign(seeker, provider)
    failed = await world.notification(assignment.notification_id)
    assert failed.push_state is PushState.FAILED
    world.push.outcome = None
    await world.register_device.execute(provider.id, "new-phone", "android")
    retry = RetryNotificationNow(world.uow, world.delivery, world.clock, world.delivery_policy)

    retried = await retry.execute(assignment.notification_id)

    assert retried.push_state is PushState.SENT and retried.delivery_status is DeliveryStatus.SENT
    assert retried.attempts == 1
    outcomes = [a.outcome for a in await _attempts(world, assignment.notification_id) if a.channel == "push"]
    assert outcomes == [AttemptOutcome.INVALID_DEVICE, AttemptOutcome.SENT]
    with pytest.raises(NotificationNotFound):
        await retry.execute(assignment.notification_id + 100)
    await world.acknowledge.execute(provider.id, assignment.notification_id)
    with pytest.raises(InvalidTransition):
        await retry.execute(assignment.notification_id)


async def test_a_sweep_that_hits_its_cap_says_more_is_left(world, monkeypatch):
    import application.use_cases.sweep_old_records as sweeping

    monkeypatch.setattr(sweeping, "SWEEP_BATCH", 1)
    seeker, provider = await world.seeker(), await world.provider()
    for _ in range(3):
        await world.assign(seeker, provider)
    await world.settle()
    world.clock.advance(timedelta(days=40))
    keep = Retention(attempts=timedelta(days=30), notifications=timedelta(days=365))
    deleted, backlog = await SweepOldRecords(world.uow, world.clock, keep).execute(max_batches=2)
    assert (deleted, backlog) == (2, True)  # 6 attempts old, 2 batches of 1 allowed: the dispatcher comes back soon
