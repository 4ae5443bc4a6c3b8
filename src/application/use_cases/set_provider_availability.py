from __future__ import annotations

from application.ports import Clock, UnitOfWorkFactory
from application.use_cases._caller import caller_profile
from domain.geo import GeoPoint
from domain.profiles import Profile


class SetProviderAvailability:
    """A provider goes on or off duty, optionally with their current location."""

    def __init__(self, uow_factory: UnitOfWorkFactory, clock: Clock) -> None:
        self._uow_factory = uow_factory
        self._clock = clock

    async def execute(self, user_id: int, active: bool, location: GeoPoint | None = None) -> Profile:
        async with self._uow_factory() as uow:
            profile = await caller_profile(uow, user_id)
            profile.set_availability(active, location, self._clock.now())
            await uow.profiles.save(profile)
            await uow.commit()
        return profile
