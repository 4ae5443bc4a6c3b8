"""Broadcast offers in the domain and the use cases: however answers interleave, one winner at most, and
everyone offered ends up told exactly once how it ended (or declined it themselves)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from adapters.memory.clock import FakeClock
from adapters.memory.store import MemoryStore, MemoryUnitOfWork
from application.live_locations import LiveLocations
from domain.errors import AlreadyAnswered, AlreadyTaken, InvalidTransition, NoProvidersNearby
from domain.events import WorkAnswered, WorkCancelled, WorkExpired, WorkOffered, WorkTaken
from domain.geo import GeoPoint
from domain.profiles import Profile, Role
from domain.work_orders import WorkOrder, WorkStatus

T0 = datetime(2026, 11, 25, 9, tzinfo=UTC)
PROVIDERS = 5


def people() -> tuple[Profile, list[Profile]]:
    seeker = Profile(Role.SEEKER, "S", "1", id=100)
    providers = [Profile(Role.PROVIDER, f"P{i}", "2", is_active_for_work=True, id=i) for i in range(1, PROVIDERS + 1)]
    return seeker, providers


def broadcast() -> WorkOrder:
    seeker, providers = people()
    order = WorkOrder.broadcast(
        seeker,
        providers,
        service_type="plumber",
        message="",
        distance="",
        location=GeoPoint(40, -3),
        now=T0,
        time_to_answer=timedelta(minutes=10),
    )
    order.id = 7
    order.record_assigned()
    return order


class BroadcastMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.order = broadcast()
        self.events = list(self.order.events)
        self.order.events.clear()
        self.now = T0
        self.winner: int | None = None
        self.declined: set[int] = set()

    def _collect(self) -> None:
        self.events += self.order.events
        self.order.events.clear()

    @rule(provider=st.integers(1, PROVIDERS), accepted=st.booleans())
    def answer(self, provider, accepted):
        before = self.order.status
        try:
            self.order.answer(provider, accepted, self.now)
        except AlreadyTaken:
            assert self.winner is not None and self.winner != provider
            return
        except AlreadyAnswered:
            assert before is not WorkStatus.PENDING or provider in self.declined
            return
        finally:
            self._collect()
        assert before is WorkStatus.PENDING
        if accepted:
            assert self.winner is None
            self.winner = provider
        else:
            self.declined.add(provider)

    @rule()
    def cancel(self):
        try:
            self.order.cancel(self.order.seeker_id, self.now)
        except InvalidTransition:
            assert self.order.is_terminal
        self._collect()

    @rule()
    def time_runs_out(self):
        self.now = T0 + timedelta(minutes=11)
        if self.order.is_overdue(self.now):
            self.order.expire(self.now)
        self._collect()

    @invariant()
    def one_winner_at_most(self):
        accepts = [e for e in self.events if isinstance(e, WorkAnswered) and e.accepted]
        assert len(accepts) == (1 if self.winner is not None else 0)
        assert self.order.provider_id == self.winner
        assert (self.order.status is WorkStatus.PENDING) <= (self.order.provider_id is None)

    @invariant()
    def everyone_offered_hears_once_how_it_ended(self):
        if self.order.status is WorkStatus.PENDING:
            return
        if self.order.status is WorkStatus.ACCEPTED or self.winner is not None:
            told = [e.provider_id for e in self.events if isinstance(e, WorkTaken)]
            others = set(range(1, PROVIDERS + 1)) - self.declined - {self.winner}
            assert sorted(told) == sorted(others)
            return
        enders = (WorkTaken, WorkCancelled, WorkExpired)
        told = [e.provider_id for e in self.events if isinstance(e, enders) and e.provider_id is not None]
        assert sorted(told) == sorted(set(range(1, PROVIDERS + 1)) - self.declined)
        if len(self.declined) == PROVIDERS:
            assert self.order.status is WorkStatus.EXPIRED


TestBroadcastMachine = BroadcastMachine.TestCase


def test_a_broadcast_offers_each_provider_once_and_nobody_is_assigned():
    order = broadcast()
    assert order.provider_id is None and order.status is WorkStatus.PENDING
    assert [e.provider_id for e in order.events if isinstance(e, WorkOffered)] == list(range(1, PROVIDERS + 1))


def test_nobody_in_reach_is_refused():
    seeker, _ = people()
    with pytest.raises(NoProvidersNearby):
        WorkOrder.broadcast(
            seeker,
            [],
            service_type="x",
            message="",
            distance="",
            location=GeoPoint(0, 0),
            now=T0,
            time_to_answer=timedelta(minutes=1),
        )


async def test_live_locations_coalesce_and_write_the_newest_in_one_batch():
    store, clock = MemoryStore(), FakeClock(T0)
    async with MemoryUnitOfWork(store) as uow:
        provider = await uow.profiles.add(Profile(Role.PROVIDER, "P", "1", is_active_for_work=True))
        await uow.commit()
    flushed = []
    locations = LiveLocations(
        lambda: MemoryUnitOfWork(store), clock, on_flush=lambda got, n, age: flushed.append((got, n, age))
    )
    for i in range(10):
        locations.note(provider.id, GeoPoint(40 + i / 100, -3))
        clock.advance(timedelta(milliseconds=100))
    assert locations.waiting == 1
    assert await locations.flush() == 1
    assert flushed == [(10, 1, pytest.approx(0.1))]  # ten received, one written: the newest waited 100 ms
    async with MemoryUnitOfWork(store) as uow:
        assert (await uow.profiles.get(provider.id)).location == GeoPoint(40.09, -3)
    assert await locations.flush() == 0  # nothing waiting: no write
