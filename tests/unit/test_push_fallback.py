"""PUSH_POLICY=fallback: the socket goes first; the push only if no socket took the offer, or if the app
did not acknowledge it within PUSH_FALLBACK_MS."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from domain.notifications import PushState, SocketState
from tests.unit.conftest import make_world

FALLBACK = timedelta(milliseconds=1500)


@pytest.fixture
def world():
    world = make_world()
    world.delivery_policy = dataclasses.replace(world.delivery_policy, push_fallback=FALLBACK)
    world.__post_init__()  # rebuild the use cases with the policy
    return world


async def test_an_app_on_screen_that_acks_saves_the_push(world):
    seeker, provider = await world.seeker(), await world.provider()
    await world.register_device.execute(provider.id, "phone", "android")
    app = await world.connect(provider)

    assignment = await world.assign(seeker, provider)

    assert (assignment.websocket_sent, assignment.fcm_sent) == (True, False)
    assert app.types() == ["work_assigned"] and world.push.sent == []
    stored = await world.notification(assignment.notification_id)
    assert stored.push_state is PushState.PENDING and stored.next_attempt_at == world.clock.now() + FALLBACK
    await world.acknowledge.execute(provider.id, assignment.notification_id, over_socket=True)
    world.clock.advance(FALLBACK * 2)
    assert await world.dispatch.execute() == 0
    assert world.push.sent == []  # never pushed: the app had it on screen


async def test_without_an_ack_the_push_follows_after_the_wait(world):
    seeker, provider = await world.seeker(), await world.provider()
    await world.register_device.execute(provider.id, "phone", "android")
    await world.connect(provider)
    assignment = await world.assign(seeker, provider)
    await world.settle()
    world.clock.advance(FALLBACK - timedelta(milliseconds=1))
    assert await world.dispatch.execute() == 0  # not yet
    world.clock.advance(timedelta(milliseconds=1))

    assert await world.dispatch.execute() == 1

    (push,) = world.push.to_user(provider.id)
    assert push.message.data["type"] == "work_assigned"
    stored = await world.notification(assignment.notification_id)
    assert stored.push_state is PushState.SENT and stored.socket_state is SocketState.SENT


async def test_an_offline_provider_is_pushed_at_once(world):
    seeker, provider = await world.seeker(), await world.provider()
    await world.register_device.execute(provider.id, "phone", "android")

    assignment = await world.assign(seeker, provider)

    assert (assignment.websocket_sent, assignment.fcm_sent) == (False, True)
    assert len(world.push.to_user(provider.id)) == 1
