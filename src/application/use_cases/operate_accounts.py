"""For operators: stop a bad device or an absent provider from being offered work."""

from __future__ import annotations

from application.ports import Clock, UnitOfWorkFactory
from domain.errors import ProfileNotFound
from domain.profiles import Profile

OPERATOR_REASON = "invalidated by an operator"


class InvalidateDevice:
    def __init__(self, uow_factory: UnitOfWorkFactory, clock: Clock) -> None:
        self._uow_factory = uow_factory
        self._clock = clock

    async def execute(self, user_id: int, device_id: int) -> None:
        """The user's device stops receiving pushes (the app registers again to come back)."""
        async with self._uow_factory() as uow:
            if device_id not in {d.id for d in await uow.operator.devices_of(user_id)}:
                raise ProfileNotFound(f"user {user_id} has no device {device_id}")
            await uow.devices.invalidate({device_id: OPERATOR_REASON}, self._clock.now())
            await uow.commit()


class DeactivateProvider:
    def __init__(self, uow_factory: UnitOfWorkFactory, clock: Clock) -> None:
        self._uow_factory = uow_factory
        self._clock = clock

    async def execute(self, user_id: int) -> Profile:
        """The provider goes off duty: no longer listed as active or offered new work until they go on again."""
        async with self._uow_factory() as uow:
            profile = await uow.profiles.get(user_id)
            if profile is None:
                raise ProfileNotFound(f"there is no profile {user_id}")
            profile.set_availability(False, None, self._clock.now())
            await uow.profiles.save(profile)
            await uow.commit()
        return profile
