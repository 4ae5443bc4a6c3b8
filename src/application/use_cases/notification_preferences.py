"""A user's notification preferences: which kinds to push, and quiet hours (domain.preferences)."""

from __future__ import annotations

from application.ports import UnitOfWorkFactory
from application.use_cases._caller import caller_profile
from domain.preferences import NotificationPreferences


class ShowNotificationPreferences:
    def __init__(self, uow_factory: UnitOfWorkFactory) -> None:
        self._uow_factory = uow_factory

    async def execute(self, user_id: int) -> NotificationPreferences:
        async with self._uow_factory() as uow:
            return (await caller_profile(uow, user_id)).preferences


class ChangeNotificationPreferences:
    """Replace the caller's preferences. They apply to notifications created from now on (a push already
    created keeps the decision it was created with, retries included)."""

    def __init__(self, uow_factory: UnitOfWorkFactory) -> None:
        self._uow_factory = uow_factory

    async def execute(self, user_id: int, preferences: NotificationPreferences) -> NotificationPreferences:
        async with self._uow_factory() as uow:
            profile = await caller_profile(uow, user_id)
            profile.preferences = preferences
            await uow.profiles.save(profile)
            await uow.commit()
        return preferences
