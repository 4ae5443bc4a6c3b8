"""Who is asking, as every use case checks it first: a valid token of a user we do not know is refused."""

from __future__ import annotations

from application.ports import UnitOfWork
from domain.errors import ProfileNotFound
from domain.profiles import Profile


async def caller_profile(uow: UnitOfWork, user_id: int) -> Profile:
    """The caller's profile, or ``ProfileNotFound`` (the API answers 401 ``unknown_user``)."""
    profile = await uow.profiles.get(user_id)
    if profile is None:
        raise ProfileNotFound("no profile for this user")
    return profile
