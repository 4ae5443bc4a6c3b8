"""A whole workcast built from in-memory adapters: no database, no network, no framework."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import pytest

from adapters.memory.broker import InProcessBroker
from adapters.memory.clock import FakeClock
from adapters.memory.push import RecordingPushSender
from adapters.memory.store import MemoryStore, MemoryUnitOfWork
from application.delivery import NotificationDelivery
from application.policy import DeliveryPolicy, WorkPolicy
from application.ports import UnitOfWork
from application.remembered_profiles import RememberedProfiles
from application.use_cases.acknowledge_notification import AcknowledgeNotification
from application.use_cases.assign_work import AssignWork, AssignWorkCommand, WorkAssignment
from application.use_cases.cancel_work import CancelWork
from application.use_cases.create_profile import CreateProfile
from application.use_cases.dispatch_due_notifications import DispatchDueNotifications
from application.use_cases.expire_overdue_work import ExpireOverdueWork
from application.use_cases.list_active_providers import ListActiveProviders
from application.use_cases.list_notifications import ListNotifications
from application.use_cases.list_work_orders import ListWorkOrders
from application.use_cases.register_device import RegisterDevice
from application.use_cases.replay_undelivered import ReplayUndelivered
from application.use_cases.respond_to_work import RespondToWork
from application.use_cases.set_provider_availability import SetProviderAvailability
from domain.geo import GeoPoint
from domain.profiles import Profile, Role


@dataclass
class FakeSocket:
    """A connected app: collects every frame the server writes to it."""

    frames: list[dict] = field(default_factory=list)
    broken: bool = False
    replay_complete: dict | None = None  # the message that ended the replay on connect

    async def __call__(self, text: str) -> None:
        if self.broken:
            raise ConnectionResetError("socket closed")
        self.frames.append(json.loads(text))

    def types(self) -> list[str]:
        return [f["type"] for f in self.frames]


class FlakyBroker(InProcessBroker):
    """The in-process broker, with an outage switch for tests."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    async def publish(self, user_id, message):
        from application.errors import BrokerUnavailable

        if self.down:
            raise BrokerUnavailable("broker is down (test)")
        return await super().publish(user_id, message)


@dataclass
class World:
    store: MemoryStore | None
    clock: FakeClock
    push: RecordingPushSender
    broker: FlakyBroker
    delivery_policy: DeliveryPolicy
    work_policy: WorkPolicy
    uow_factory: Callable[[], UnitOfWork] | None = None  # another store (the SQL ones); default: ``store``

    def __post_init__(self) -> None:
        uow = self.uow
        self.delivery = NotificationDelivery(uow, self.push, self.broker, self.clock, self.delivery_policy)
        self.create_profile = CreateProfile(uow)
        self.register_device = RegisterDevice(uow, self.clock)
        self.set_availability = SetProviderAvailability(uow, self.clock)
        self.list_active_providers = ListActiveProviders(uow, self.broker)
        self.remembered = RememberedProfiles()  # shared, as the container shares it
        self.assign_work = AssignWork(
            uow, self.delivery, self.clock, self.work_policy, self.delivery_policy, remembered=self.remembered
        )
        self.respond = RespondToWork(uow, self.delivery, self.clock, self.delivery_policy)
        self.cancel = CancelWork(uow, self.delivery, self.clock, self.delivery_policy)
        self.expire = ExpireOverdueWork(uow, self.delivery, self.clock, self.work_policy)
        self.list_work_orders = ListWorkOrders(uow)
        self.list_notifications = ListNotifications(uow)
        self.acknowledge = AcknowledgeNotification(uow, self.clock)
        self.dispatch = DispatchDueNotifications(uow, self.delivery, self.clock, self.delivery_policy)
        self.replay = ReplayUndelivered(uow, self.clock, self.delivery_policy, remembered=self.remembered)

    def uow(self) -> UnitOfWork:
        return self.uow_factory() if self.uow_factory else MemoryUnitOfWork(self.store)

    async def device(self, token: str):
        await self.settle()
        async with self.uow() as uow:
            return await uow.devices.get_by_token(token)

    async def seeker(self, name: str = "Sam Seeker") -> Profile:
        return await self.create_profile.execute(Role.SEEKER, name, "9000000001")

    async def provider(self, name: str = "John Doe", active: bool = True) -> Profile:
        return await self.create_profile.execute(Role.PROVIDER, name, "9876543210", active=active)

    async def connect(self, user: Profile) -> FakeSocket:
        """Open a socket the way the WebSocket endpoint does: subscribe, then replay what is undelivered."""
        socket = FakeSocket()
        await self.broker.subscribe(user.id, socket)
        _, replay = await self.replay.on_connect(user.id)
        for message in replay.messages:
            await socket(json.dumps(message))
        socket.replay_complete = replay.complete()
        await self.replay.record_shown(user.id, [m["notification_id"] for m in replay.messages])
        return socket

    async def assign(self, seeker: Profile, provider: Profile, **overrides) -> WorkAssignment:
        fields = dict(
            seeker_id=seeker.id,
            provider_id=provider.id,
            service_type="worker",
            message="Need help with painting work",
            distance="2.5km",
            location=GeoPoint(12.345, 67.890),
        )
        fields.update(overrides)
        return await self.assign_work.execute(AssignWorkCommand(**fields))

    async def settle(self) -> None:
        """Wait for delivery outcomes to be written (the recorder writes them behind the request)."""
        await self.delivery.flush()

    async def notification(self, notification_id: int):
        await self.settle()
        async with self.uow() as uow:
            return await uow.notifications.get(notification_id)

    async def all_notifications(self):
        await self.settle()
        return list(self.store.tables.notifications.values())


def make_world(seed: int = 0, uow_factory: Callable[[], UnitOfWork] | None = None) -> World:
    return World(
        uow_factory=uow_factory,
        store=None if uow_factory else MemoryStore(),
        clock=FakeClock(),
        push=RecordingPushSender(),
        broker=FlakyBroker(),
        delivery_policy=DeliveryPolicy(rng=random.Random(seed), request_budget=timedelta(seconds=1)),
        work_policy=WorkPolicy(time_to_answer=timedelta(minutes=10)),
    )


@pytest.fixture
def world() -> World:
    return make_world()
