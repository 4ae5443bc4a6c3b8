from __future__ import annotations

from application.ports import UnitOfWorkFactory
from domain.profiles import Profile, Role


class CreateProfile:
    """Register a user of the service (operators and the CLI do this; profiles live in our database)."""

    def __init__(self, uow_factory: UnitOfWorkFactory) -> None:
        self._uow_factory = uow_factory

    async def execute(self, role: Role, name: str, mobile: str, active: bool = False) -> Profile:
        profile = Profile.register(role, name, mobile, active=active)
        async with self._uow_factory() as uow:
            await uow.profiles.add(profile)
            await uow.commit()
        return profile
