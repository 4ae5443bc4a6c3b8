from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from application.ports import Clock, UnitOfWork, UnitOfWorkFactory
from domain.devices import DeviceToken
from domain.errors import InvalidInput, UnknownExternalId
from domain.geo import GeoPoint
from domain.profiles import Profile, Role, check_external_id


@dataclass(frozen=True)
class ProfileFields:
    """Who a user is, as the app's own backend says (the provisioning API and import)."""

    role: Role
    name: str
    mobile: str
    is_active_for_work: bool | None = None  # None: unchanged (new profiles: not active)
    location: GeoPoint | None = None
    fcm_token: str | None = None


class ProvisionProfile:
    """Create or update the profile the app's tokens call ``external_id``.

    The app's backend owns its users; workcast keeps the profile they need here. Upserting by the
    external id makes the call safe to repeat. A role cannot change while the profile has open orders
    (an accepted order's provider turning seeker would strand it).
    """

    def __init__(self, uow_factory: UnitOfWorkFactory, clock: Clock) -> None:
        self._uow_factory = uow_factory
        self._clock = clock

    async def execute(self, external_id: str, fields: ProfileFields) -> Upsert:
        check_external_id(external_id)
        now = self._clock.now()
        async with self._uow_factory() as uow:
            known = await uow.profiles.get_by_external_id(external_id)
            planned = await plan_upsert(uow, external_id, fields, known, now)
            await write_upserts(uow, [planned], now)
            await uow.commit()
        return planned


@dataclass
class Upsert:
    """One record's outcome, before anything is written: the profile to add or save, and its device."""

    profile: Profile
    created: bool
    device: DeviceToken | None


async def plan_upsert(
    uow: UnitOfWork, external_id: str, fields: ProfileFields, known: Profile | None, now: datetime
) -> Upsert:
    """Apply the fields to the known profile (or a new one); every rule is checked here, nothing is written,
    so a refused record leaves nothing half-done."""
    profile = known
    created = profile is None
    if profile is None:
        profile = Profile.register(fields.role, fields.name, fields.mobile)
        profile.external_id = external_id
    else:
        locked = fields.role is not profile.role and await uow.profiles.has_open_orders(profile.id)  # type: ignore[arg-type]
        profile.update(fields.role, fields.name, fields.mobile, locked)
    if fields.is_active_for_work is not None or fields.location is not None:
        if profile.role is not Role.PROVIDER:
            raise InvalidInput("only providers have availability and a location", field="is_active_for_work")
        active = profile.is_active_for_work if fields.is_active_for_work is None else fields.is_active_for_work
        profile.set_availability(active, fields.location, now)
    device = DeviceToken.register(0, fields.fcm_token, None, now) if fields.fcm_token is not None else None
    return Upsert(profile, created, device)


async def write_upserts(uow: UnitOfWork, planned: list[Upsert], now: datetime) -> None:
    """Write planned upserts: new profiles in one statement, changed ones in another, then their devices."""
    await uow.profiles.add_many([u.profile for u in planned if u.created])
    await uow.profiles.save_many([u.profile for u in planned if not u.created])
    with_device = [u for u in planned if u.device is not None]
    if not with_device:
        return
    existing = await uow.devices.by_tokens({u.device.token for u in with_device})  # type: ignore[union-attr]
    new: dict[str, DeviceToken] = {}
    for u in with_device:
        token = u.device.token  # type: ignore[union-attr]
        if token in existing:
            existing[token].reregister(u.profile.id, existing[token].platform, now)  # type: ignore[arg-type]
        else:
            u.device.user_id = u.profile.id  # type: ignore[union-attr,assignment]
            new[token] = u.device  # type: ignore[assignment]  # the same token twice: the later record's user
    await uow.devices.add_many(list(new.values()))
    await uow.devices.save_many(list(existing.values()))


class GetProvisionedProfile:
    """The profile the app's tokens call ``external_id``, with its active devices."""

    def __init__(self, uow_factory: UnitOfWorkFactory) -> None:
        self._uow_factory = uow_factory

    async def execute(self, external_id: str) -> tuple[Profile, list[DeviceToken]]:
        async with self._uow_factory() as uow:
            profile = await uow.profiles.get_by_external_id(external_id)
            if profile is None:
                raise UnknownExternalId(f"there is no profile {external_id!r}", field="external_id")
            devices = await uow.devices.active_for_users([profile.id])  # type: ignore[list-item]
        return profile, devices.get(profile.id, [])  # type: ignore[arg-type]


class EraseProfile:
    """The app's backend deleted a user: forget the person, keep anonymised history.

    Name, mobile, location, devices and the external id go; the orders and delivery records stay for
    the operator's statistics, without what they said about the person. The user's tokens then answer
    401 ``unknown_user``, and every instance closes the user's sockets within SOCKET_USER_RECHECK_SECONDS.
    """

    def __init__(self, uow_factory: UnitOfWorkFactory, clock: Clock) -> None:
        self._uow_factory = uow_factory
        self._clock = clock

    async def execute(self, external_id: str) -> Profile:
        async with self._uow_factory() as uow:
            profile = await uow.profiles.get_by_external_id(external_id)
            if profile is None:
                raise UnknownExternalId(f"there is no profile {external_id!r}", field="external_id")
            profile.erase(self._clock.now())
            await uow.profiles.save(profile)
            await uow.devices.remove_for_user(profile.id)  # type: ignore[arg-type]
            await uow.work_orders.anonymise_for_user(profile.id)  # type: ignore[arg-type]
            await uow.notifications.anonymise_for_user(profile.id)  # type: ignore[arg-type]
            await uow.commit()
        return profile
