"""Who a token speaks for: lookups on the one-statement unit of work, provisioning in a transaction, a bounded cache."""

from __future__ import annotations

from datetime import timedelta

import pytest

from adapters.memory.clock import FakeClock
from adapters.memory.store import MemoryStore, MemoryUnitOfWork
from application.ports import VerifiedToken
from application.use_cases.identify_caller import AutoProvision, IdentifyCaller
from domain.errors import ProfileNotFound
from domain.profiles import Profile, Role


class SubjectIsToken:
    async def verify(self, token: str) -> VerifiedToken:
        return VerifiedToken(subject=token, claims={"role": "seeker", "name": "New Seeker"})


class CountingFactory:
    def __init__(self, store: MemoryStore) -> None:
        self.store, self.units = store, 0

    def __call__(self) -> MemoryUnitOfWork:
        self.units += 1
        return MemoryUnitOfWork(self.store)


async def a_profile(store: MemoryStore, external_id: str) -> int:
    profile = Profile.register(Role.SEEKER, "Known Seeker", "9000000001")
    profile.external_id = external_id
    async with MemoryUnitOfWork(store) as uow:
        await uow.profiles.add(profile)
        await uow.commit()
    assert profile.id is not None
    return profile.id


async def test_lookups_take_the_lookup_factory_and_are_cached_until_they_expire():
    store, clock = MemoryStore(), FakeClock()
    transactional, lookups = CountingFactory(store), CountingFactory(store)
    identify = IdentifyCaller(
        SubjectIsToken(), transactional, clock, cache_for=timedelta(seconds=30), lookup_uow_factory=lookups
    )
    known = await a_profile(store, "ext-1")
    assert await identify.execute("ext-1") == known
    assert await identify.execute("ext-1") == known
    assert (transactional.units, lookups.units) == (0, 1)
    clock.current += timedelta(seconds=31)
    assert await identify.execute("ext-1") == known
    assert (transactional.units, lookups.units) == (0, 2)
    with pytest.raises(ProfileNotFound):
        await identify.execute("nobody")


async def test_provisioning_writes_through_the_transactional_factory():
    store = MemoryStore()
    transactional, lookups = CountingFactory(store), CountingFactory(store)
    identify = IdentifyCaller(
        SubjectIsToken(), transactional, FakeClock(), AutoProvision(enabled=True), lookup_uow_factory=lookups
    )
    made = await identify.execute("ext-new")
    assert (transactional.units, lookups.units) == (1, 1)
    async with MemoryUnitOfWork(store) as uow:
        found = await uow.profiles.get_by_external_id("ext-new")
    assert found is not None and found.id == made and found.role is Role.SEEKER
