"""Who is asking, as every use case checks it first: a valid token of a user we do not know is refused."""

from __future__ import annotations

from application.ports import UnitOfWork
from domain.devices import DeviceToken
from domain.errors import NotAProvider, ProfileNotFound, WorkOrderNotFound
from domain.profiles import Profile
from domain.work_orders import WorkOrder


async def caller_profile(uow: UnitOfWork, user_id: int) -> Profile:
    """The caller's profile, or ``ProfileNotFound`` (the API answers 401 ``unknown_user``)."""
    profile = await uow.profiles.get(user_id)
    if profile is None:
        raise ProfileNotFound("no profile for this user")
    return profile


async def providers_order(
    uow: UnitOfWork, provider_id: int, work_id: int, action: str, lock: bool = False
) -> tuple[WorkOrder, dict[int, Profile], dict[int, list[DeviceToken]]]:
    """The order a provider acts on, with its parties and their devices, in one read of the people.

    Who asks is checked before what they ask about, and someone else's order reads exactly like a
    missing one: the answer must not reveal which ids exist. A broadcast is the order of each
    provider it was offered to.
    """
    order = await uow.work_orders.get(work_id, lock=lock)
    parties = {provider_id} if order is None else order.parties() | {provider_id}
    people, devices = await uow.profiles.get_many_with_devices(parties)
    caller = people.get(provider_id)
    if caller is None or caller.deleted_at is not None:
        raise ProfileNotFound("no profile for this user")
    if not caller.is_provider:
        raise NotAProvider(f"only providers {action} work orders")
    if order is None or not (order.provider_id == provider_id or provider_id in order.offers):
        raise WorkOrderNotFound(f"there is no work order {work_id}")
    return order, people, devices
