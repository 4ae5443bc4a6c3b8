from __future__ import annotations

from dataclasses import dataclass

from application.ports import Clock, UnitOfWorkFactory
from application.use_cases._caller import caller_profile
from domain.devices import AddressKind, DeviceToken
from domain.profiles import Profile


@dataclass(frozen=True)
class DeviceRegistered:
    profile: Profile
    device: DeviceToken


class RegisterDevice:
    """A user's app tells us where to push: an FCM registration token or a Firebase installation id.

    Registering a token that is already known moves it to the caller and makes it live again (the
    same phone, logged in as someone else, or a token FCM had reported dead that the app sends again).
    """

    def __init__(self, uow_factory: UnitOfWorkFactory, clock: Clock) -> None:
        self._uow_factory = uow_factory
        self._clock = clock

    async def execute(
        self, user_id: int, token: str, platform: str | None = None, kind: AddressKind = AddressKind.REGISTRATION_TOKEN
    ) -> DeviceRegistered:
        now = self._clock.now()
        candidate = DeviceToken.register(user_id, token, platform, now, kind)
        async with self._uow_factory() as uow:
            profile = await caller_profile(uow, user_id)
            device = await uow.devices.get_by_token(candidate.token)
            if device is None:
                device = await uow.devices.add(candidate)
            else:
                device.reregister(user_id, candidate.platform, now)
                await uow.devices.save(device)
            await uow.commit()
        return DeviceRegistered(profile, device)
