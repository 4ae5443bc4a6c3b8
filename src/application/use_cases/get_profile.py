from __future__ import annotations

from application.ports import UnitOfWorkFactory
from application.use_cases._caller import caller_profile
from domain.devices import DeviceToken
from domain.profiles import Profile


class GetProfile:
    """Who is this user? (A WebSocket checks the caller's role once, when it connects.)"""

    def __init__(self, uow_factory: UnitOfWorkFactory) -> None:
        self._uow_factory = uow_factory

    async def execute(self, user_id: int) -> Profile:
        async with self._uow_factory() as uow:
            profile = await caller_profile(uow, user_id)
        return profile


class ShowProfile:
    """The caller's own profile and active devices (the app shows it after login)."""

    def __init__(self, uow_factory: UnitOfWorkFactory) -> None:
        self._uow_factory = uow_factory

    async def execute(self, user_id: int) -> tuple[Profile, list[DeviceToken]]:
        async with self._uow_factory() as uow:
            profile = await caller_profile(uow, user_id)
            devices = await uow.devices.active_for_users([user_id])
        return profile, devices.get(user_id, [])
