"""Provisioning and erasure by external id: the same on memory, SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest

from application.use_cases.provision_profile import (
    EraseProfile,
    GetProvisionedProfile,
    ProfileFields,
    ProvisionProfile,
)
from domain.errors import InvalidInput, RoleLocked, UnknownExternalId
from domain.geo import GeoPoint
from domain.notifications import Notification, NotificationKind
from domain.profiles import Profile, Role
from tests.integration.test_repository_contract import T0, new_order
from tests.unit.conftest import FakeClock

FIREBASE_UID = "kZ3x9QeYtWb2LmN8pR4sV7uA1cD0"  # 28 characters, as Firebase Auth makes them


async def test_profiles_are_created_updated_and_read_by_external_id(uow_factory):
    clock = FakeClock()
    provision, read = ProvisionProfile(uow_factory, clock), GetProvisionedProfile(uow_factory)
    made = await provision.execute(
        FIREBASE_UID,
        ProfileFields(Role.PROVIDER, "Ana", "+34600", True, GeoPoint(40.4, -3.7), fcm_token="tok-1"),
    )
    assert made.created and made.profile.id and made.profile.external_id == FIREBASE_UID
    again = await provision.execute(FIREBASE_UID, ProfileFields(Role.PROVIDER, "Ana María", "+34600"))
    assert not again.created and again.profile.id == made.profile.id
    profile, devices = await read.execute(FIREBASE_UID)
    assert profile.name == "Ana María" and profile.is_active_for_work and profile.location == GeoPoint(40.4, -3.7)
    assert [d.token for d in devices] == ["tok-1"]
    with pytest.raises(UnknownExternalId):
        await read.execute(FIREBASE_UID.lower())  # compared exactly: no case folding
    with pytest.raises(InvalidInput):
        await provision.execute("x" * 129, ProfileFields(Role.SEEKER, "A", "1"))
    with pytest.raises(InvalidInput):
        await provision.execute("bad\u0000id", ProfileFields(Role.SEEKER, "A", "1"))
    async with uow_factory() as uow:  # a profile made here (the CLI) is known by its id
        local = await uow.profiles.add(Profile(Role.SEEKER, "Local", "1"))
        await uow.commit()
    assert (await read.execute(str(local.id)))[0].id == local.id


async def test_a_role_cannot_change_under_open_orders(uow_factory):
    clock = FakeClock()
    provision = ProvisionProfile(uow_factory, clock)
    seeker = (await provision.execute("s-1", ProfileFields(Role.SEEKER, "S", "1"))).profile
    provider = (await provision.execute("p-1", ProfileFields(Role.PROVIDER, "P", "2", True))).profile
    async with uow_factory() as uow:
        await uow.work_orders.add(new_order(seeker, provider))
        await uow.commit()
    with pytest.raises(RoleLocked):
        await provision.execute("p-1", ProfileFields(Role.SEEKER, "P", "2"))
    assert (await provision.execute("p-1", ProfileFields(Role.PROVIDER, "P2", "2"))).profile.name == "P2"


async def test_erasing_forgets_the_person_and_keeps_anonymous_history(uow_factory):
    clock = FakeClock()
    provision = ProvisionProfile(uow_factory, clock)
    seeker = (await provision.execute("s-9", ProfileFields(Role.SEEKER, "Sam", "900", fcm_token="s-tok"))).profile
    provider = (await provision.execute("p-9", ProfileFields(Role.PROVIDER, "Pia", "800", True))).profile
    async with uow_factory() as uow:
        order = await uow.work_orders.add(new_order(seeker, provider))
        payload = {"work_id": order.id, "seeker_name": "Sam", "seeker_mobile": "900", "message": "Paint", "status": "x"}
        await uow.notifications.add_many(
            [Notification(provider.id, NotificationKind.WORK_ASSIGNED, order.id, payload, T0)]
        )
        await uow.commit()
    await EraseProfile(uow_factory, clock).execute("s-9")
    with pytest.raises(UnknownExternalId):
        await GetProvisionedProfile(uow_factory).execute("s-9")
    async with uow_factory() as uow:
        assert await uow.profiles.get(seeker.id) is None
        assert await uow.profiles.existing_ids([seeker.id, provider.id]) == {provider.id}
        assert await uow.profiles.erased_since(clock.now() - timedelta(seconds=1)) == {seeker.id}
        assert await uow.profiles.erased_since(clock.now() + timedelta(seconds=1)) == set()
        assert await uow.devices.get_by_token("s-tok") is None
        kept = await uow.work_orders.get(order.id)
        assert kept is not None and kept.message == "" and kept.seeker_id == seeker.id
        (note,) = await uow.notifications.list_for_user(provider.id, 10, None)
        assert note.payload == {"work_id": order.id, "status": "x"}
        people, _ = await uow.profiles.get_many_with_devices([seeker.id])
        assert people[seeker.id].name == "" and people[seeker.id].mobile == ""  # the row stays, empty
    # The external id is free again: the same person may come back as a new profile.
    back = await provision.execute("s-9", ProfileFields(Role.SEEKER, "Sam", "900"))
    assert back.created and back.profile.id != seeker.id
