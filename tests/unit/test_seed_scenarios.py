"""The seed's three testing scenarios, run through the use cases with in-memory adapters."""

from __future__ import annotations

from application.ports import PushTokenInvalid
from domain.notifications import DeliveryStatus, PushState, SocketState
from domain.work_orders import WorkStatus


async def test_complete_assignment_flow(world):
    seeker, provider = await world.seeker(), await world.provider()
    await world.register_device.execute(seeker.id, "seeker-phone-token", "android")
    await world.register_device.execute(provider.id, "provider-phone-token", "android")
    await world.set_availability.execute(provider.id, True)
    provider_socket, seeker_socket = await world.connect(provider), await world.connect(seeker)

    assignment = await world.assign(seeker, provider)

    assert (assignment.fcm_sent, assignment.websocket_sent) == (True, True)
    assert assignment.provider_name == "John Doe" and assignment.provider_mobile == "9876543210"
    (offer,) = provider_socket.frames
    assert offer["type"] == "work_assigned" and offer["work_id"] == assignment.order.id
    assert offer["notification_id"] == assignment.notification_id
    assert offer["service_type"] == "worker" and offer["seeker_name"] == "Sam Seeker"
    (push,) = world.push.to_user(provider.id)
    assert push.message.data["type"] == "work_assigned" and push.message.data["work_id"] == str(assignment.order.id)

    answer = await world.respond.execute(provider.id, offer["work_id"], accepted=True)

    assert answer.order.status is WorkStatus.ACCEPTED and answer.seeker_notified_live
    (accepted,) = seeker_socket.frames
    assert accepted["type"] == "work_accepted" and accepted["work_id"] == assignment.order.id
    assert accepted["provider_name"] == "John Doe"
    assert [p.message.data["type"] for p in world.push.to_user(seeker.id)] == ["work_accepted"]


async def test_push_fails_but_socket_delivers(world):
    seeker, provider = await world.seeker(), await world.provider()
    registered = await world.register_device.execute(provider.id, "stale-token", "android")
    world.push.outcome = lambda device: PushTokenInvalid("UNREGISTERED")
    provider_socket = await world.connect(provider)

    assignment = await world.assign(seeker, provider)

    assert (assignment.fcm_sent, assignment.websocket_sent) == (False, True)
    assert provider_socket.types() == ["work_assigned"]
    stored = await world.notification(assignment.notification_id)
    assert stored.push_state is PushState.FAILED and "UNREGISTERED" in stored.push_error
    assert stored.delivery_status is DeliveryStatus.SENT
    device = await world.device("stale-token")
    assert device.id == registered.device.id and not device.is_active and device.invalid_reason == "UNREGISTERED"
    assert stored.next_attempt_at is None  # a dead token is not retried


async def test_offline_provider_sees_job_after_reconnect(world):
    seeker, provider = await world.seeker(), await world.provider()
    await world.register_device.execute(provider.id, "provider-phone-token", "ios")

    assignment = await world.assign(seeker, provider)

    assert (assignment.fcm_sent, assignment.websocket_sent) == (True, False)
    stored = await world.notification(assignment.notification_id)
    assert stored.socket_state is SocketState.NOT_CONNECTED and stored.delivery_status is DeliveryStatus.SENT

    socket = await world.connect(provider)

    assert socket.types() == ["work_assigned"] and socket.frames[0]["work_id"] == assignment.order.id
    stored = await world.notification(assignment.notification_id)
    assert stored.socket_state is SocketState.SENT

    await world.acknowledge.execute(provider.id, assignment.notification_id)
    assert (await world.notification(assignment.notification_id)).delivery_status is DeliveryStatus.DELIVERED
    assert (await world.connect(provider)).frames == []  # acknowledged: not replayed again
